"""Exact resume: CUT and FastCUT stopped after 2 steps and resumed give the same losses and
final weights (G, D and the lazily created F) as 4 uninterrupted steps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cut_recipes import tiny_toml
from ganzoo.cli import cli


def ganzoo(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def losses(run_dir: Path) -> list[tuple[int, dict]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def final_weights(run_dir: Path, out: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The run's networks as the reference's latest_net_*.pth files."""
    ganzoo("export", "--checkpoint", run_dir, "--output", out)
    return {name: torch.load(out / f"latest_net_{name}.pth", weights_only=True) for name in ("G", "D", "F")}


@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_stopped_and_resumed_equals_uninterrupted(unaligned_root, tmp_path, method):
    recipe = tmp_path / "recipe.toml"
    # batch 1 over 4 A images: the stop falls mid-epoch; FastCUT also draws its flips
    recipe.write_text(tiny_toml(unaligned_root, run={"seed": 3}, method={"name": method}))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    ganzoo("run", recipe, "--out", straight, "--steps", 4)
    ganzoo("run", recipe, "--out", resumed, "--steps", 2)
    mid = final_weights(resumed, tmp_path / "mid")
    ganzoo("run", "--resume", resumed, "--steps", 4)

    assert [s for s, _ in losses(resumed)] == [1, 2, 3, 4]
    assert losses(resumed) == losses(straight)  # floats compared exactly
    a, b = final_weights(straight, tmp_path / "a"), final_weights(resumed, tmp_path / "b")
    for name in a:
        assert a[name].keys() == b[name].keys()
        differ = [k for k in a[name] if not torch.equal(a[name][k], b[name][k])]
        assert not differ, f"{name}: {differ[:5]}"
        assert any(not torch.equal(mid[name][k], a[name][k]) for k in a[name])  # steps 3-4 moved it

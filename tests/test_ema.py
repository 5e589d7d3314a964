"""Generator EMA: the average follows the formula, is checkpointed and resumed exactly, and
translate/export use it by default (``--weights raw`` for the trained weights)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ganzoo import checkpoint
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.ema import GeneratorEMA
from ganzoo.reference_checkpoints import read_reference_state_dict
from cliinvoke import invoke
from imagefiles import write_images
from recipefiles import tiny_toml


def test_the_average_follows_the_formula_after_the_start_step():
    net = nn.Linear(2, 2)
    ema = GeneratorEMA({"G": net}, decay=0.9, start_step=2)
    expected = None
    for step in range(1, 6):
        with torch.no_grad():
            net.weight.add_(1.0)
        ema.update(step)
        w = net.weight.detach().clone()
        expected = w if step <= 2 else 0.9 * expected + 0.1 * w  # copies until the start step
        torch.testing.assert_close(ema.averaged("G").weight, expected, rtol=0, atol=1e-6)
    restored = GeneratorEMA({"G": copy.deepcopy(net)}, decay=0.9, start_step=2)
    restored.load_state_dict(ema.state_dict())
    torch.testing.assert_close(restored.averaged("G").weight, ema.averaged("G").weight, rtol=0, atol=0)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ema")
    write_images(base / "ds" / "trainA", 3, seed=1)
    write_images(base / "ds" / "trainB", 3, seed=2)
    path = base / "recipe.toml"
    path.write_text(tiny_toml(base / "ds", run={"seed": 2, "n_epochs": 2, "n_epochs_decay": 0},
                              optim={"ema_decay": 0.5, "ema_start_step": 1}))
    return path


def test_ema_is_checkpointed_resumed_exactly_and_used_by_default(recipe, tmp_path):
    invoke("run", recipe, "--out", tmp_path / "straight", "--steps", 5)
    invoke("run", recipe, "--out", tmp_path / "split", "--steps", 2)
    invoke("run", "--resume", tmp_path / "split", "--steps", 5)
    a = checkpoint.load(RunCheckpoints(tmp_path / "straight").latest())
    b = checkpoint.load(RunCheckpoints(tmp_path / "split").latest())
    assert set(a["ema"]) == {"G_A", "G_B"}  # the generators only
    for name in a["ema"]:
        assert int(a["ema"][name]["n_averaged"]) == int(b["ema"][name]["n_averaged"]) == 5
        for key, value in a["ema"][name]["weights"].items():
            assert torch.equal(value, b["ema"][name]["weights"][key]), f"{name}.{key}"
    raw, avg = a["networks"]["G_A"]["model.1.weight"], a["ema"]["G_A"]["weights"]["model.1.weight"]
    assert not torch.equal(raw, avg)

    invoke("export", "--checkpoint", tmp_path / "straight", "--output", tmp_path / "ema")
    invoke("export", "--checkpoint", tmp_path / "straight", "--output", tmp_path / "raw", "--weights", "raw")
    assert torch.equal(read_reference_state_dict(tmp_path / "ema" / "latest_net_G_A.pth")["model.1.weight"], avg)
    assert torch.equal(read_reference_state_dict(tmp_path / "raw" / "latest_net_G_A.pth")["model.1.weight"], raw)
    assert torch.equal(read_reference_state_dict(tmp_path / "ema" / "latest_net_D_A.pth")["model.0.weight"],
                       a["networks"]["D_A"]["model.0.weight"])  # discriminators have no average

    src = write_images(tmp_path / "in", 1, size=32, seed=5)[0]
    invoke("translate", "--checkpoint", tmp_path / "straight", "--input", src, "--output", tmp_path / "t_ema")
    invoke("translate", "--checkpoint", tmp_path / "straight", "--input", src, "--output", tmp_path / "t_raw",
           "--weights", "raw")
    assert (tmp_path / "t_ema" / src.name).read_bytes() != (tmp_path / "t_raw" / src.name).read_bytes()


def test_bad_decay_is_a_recipe_error(recipe, tmp_path):
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "x"), "--set", "optim.ema_decay=1.0"])
    assert result.exit_code == 2 and "[optim] ema_decay: ema_decay must be in [0, 1)" in result.output

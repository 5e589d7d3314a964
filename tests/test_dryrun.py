"""``ganzoo run --dry-run``: parameter counts, FLOPs and a memory estimate, without data or training."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganzoo.cli import cli
from ganzoo.flops import MetaScalars, TensorMemory, count

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
META = torch.device("meta")


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from an empty folder, so the recipes' relative data roots do not exist."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return tmp_path


def dry_run(*args) -> str:
    result = CliRunner().invoke(cli, ["run", *map(str, args), "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _params(report: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^(\w+)\s+([\d,]+)\s+[\d,]+$", report, re.M)}


def test_horse2zebra_dry_run_needs_no_data(elsewhere):
    report = dry_run(RECIPES / "cyclegan_horse2zebra.toml")
    assert not (elsewhere / "data").exists() and not (elsewhere / "runs").exists()
    assert "not present; a dry run does not need it" in report
    # the reference's networks: ResNet-9 generators and 70x70 PatchGANs
    assert _params(report) == {"G_A": 11_378_179, "G_B": 11_378_179, "D_A": 2_764_737, "D_B": 2_764_737}
    assert re.search(r"^total +28,285,832$", report, re.M)
    # 1.88 TFLOP per 256 px step, the reference's figure, counted at the real size
    assert "training step: 1,879.2 GFLOP" in report and "256x256, batch 1" in report
    assert "inference AtoB: 99.1 GFLOP per 256x256 image" in report
    estimate = float(re.search(r"peak memory estimate: ([\d.]+) GiB", report)[1])
    # live tensors only; the measured peak RSS (2.2 GiB with the runtime) is in docs/benchmarks.md
    assert 1.0 < estimate < 1.6


def test_dry_run_counts_at_the_recipes_batch_and_size(elsewhere):
    one = dry_run(RECIPES / "cyclegan_horse2zebra.toml", "--set", "augment.crop_size=128",
                  "--set", "augment.load_size=143")
    four = dry_run(RECIPES / "cyclegan_horse2zebra.toml", "--set", "augment.crop_size=128",
                   "--set", "augment.load_size=143", "--set", "data.batch_size=4")
    flops = [float(re.search(r"training step: ([\d,.]+) GFLOP", r)[1].replace(",", "")) for r in (one, four)]
    assert flops[0] == pytest.approx(1879.2 / 4, rel=0.01)  # 128 px: a quarter of the pixels
    assert flops[1] == pytest.approx(4 * flops[0], rel=1e-4)  # (the report rounds to 0.1 GFLOP)


def test_pix2pix_dry_run_with_mixed_precision_and_compile(elsewhere):
    recipe = elsewhere / "p2p.toml"
    recipe.write_text(textwrap.dedent("""
        [run]
        precision = "bf16-mixed"
        compile = true
        [data]
        root = "data/facades"
        pairing = "aligned"
        [augment]
        crop_size = 256
        [method]
        name = "pix2pix"
        [generator]
        name = "unet_256"
        [discriminator]
        name = "patchgan_70"
        norm = "batch"
        [loss]
        name = "vanilla"
    """))
    report = dry_run(recipe)
    assert set(_params(report)) == {"G", "D"}
    assert "training step: 86.9 GFLOP" in report  # the reference: 0.087 TFLOP
    assert "inference BtoA" not in report  # pix2pix translates A to B only
    assert "precision bf16-mixed, compile" in report and "expect less than this" in report


def test_bad_recipe_is_still_an_error(elsewhere):
    result = CliRunner().invoke(cli, ["run", str(RECIPES / "cyclegan_horse2zebra.toml"), "--dry-run",
                                      "--set", "generator.ngf=0"])
    assert result.exit_code == 2 and "ngf must be >= 1" in result.output


def test_tensor_memory_follows_allocations_and_frees():
    with TensorMemory() as mem:
        a = torch.empty(1000, device=META)  # 4000 bytes
        b = a * 2  # 8000 live
        view = b[:10]  # a view: no new storage
        b.add_(1)  # in place: no new storage
        del a
        c = torch.empty(500, device=META)  # 6000 live after the prune
    assert mem.peak_bytes == 8000
    mem.reset_peak()
    assert mem.peak_bytes == 6000
    del b, view, c


def test_count_runs_a_whole_step_that_reads_its_loss():
    net = torch.nn.Linear(8, 4).to(META)
    opt = torch.optim.Adam(net.parameters())

    def step():
        loss = net(torch.zeros(16, 8, device=META)).square().mean()
        loss.backward()
        opt.step()
        return float(loss)  # impossible on meta without MetaScalars

    counted = count(step, list(net.parameters()))
    assert counted.flops == 2 * (16 * 8 * 4) * 3 - 2 * 16 * 8 * 4  # forward + weight grad (no input grad)
    assert opt.state[net.weight]["exp_avg"].shape == (4, 8)  # the optimiser step ran
    assert counted.persistent_bytes == (32 + 4) * 4
    with MetaScalars():
        assert torch.ones(2, device=META).tolist() == [0.0, 0.0]

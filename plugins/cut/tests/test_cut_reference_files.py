"""The reference's saved files, end to end: ``{epoch}_net_{G,D,F}.pth`` written with plain
torch.save in its key layout translate with ``ganzoo translate --checkpoint`` (no other hint)
and start a run with ``ganzoo run --init-from``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganzoo_cut
from cut_layouts import cut_resnet_reference, expect_cut_patchgan, expect_cut_resnet, random_state
from cut_recipes import tiny_toml, write_images
from ganzoo import ReferenceLayout
from ganzoo.cli import cli

NGF, NDF, NC = 4, 4, 16
F_CHANNELS = [3, 2 * NGF, 4 * NGF, 4 * NGF, 4 * NGF]  # nce_layers 0,4,8,12,16 of the generator


def ganzoo(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def sampler_state(channels, nc, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for i, c in enumerate(channels):
        for j, shape in ((0, (nc, c)), (2, (nc, nc))):
            out[f"mlp_{i}.{j}.weight"] = torch.randn(shape, generator=gen) * 0.1
            out[f"mlp_{i}.{j}.bias"] = torch.randn(shape[:1], generator=gen) * 0.1
    return out


@pytest.fixture
def reference_dir(tmp_path) -> Path:
    """What the reference's train.py saves, as 5_net_G/D/F.pth and latest_net_G/D/F.pth."""
    folder = tmp_path / "checkpoints" / "h2z_CUT"
    folder.mkdir(parents=True)
    states = {
        "G": random_state(expect_cut_resnet(NGF, 6, 3, 3)[0], seed=1),
        "D": random_state(expect_cut_patchgan(NDF, 3, 3), seed=2),
        "F": sampler_state(F_CHANNELS, NC, seed=3),
    }
    for epoch in ("5", "latest"):
        for name, state in states.items():
            torch.save(state, folder / f"{epoch}_net_{name}.pth")
    return folder


def test_the_plugin_reads_its_layouts(reference_dir):
    def read(name, kind):
        state = torch.load(reference_dir / f"latest_net_{name}.pth", weights_only=True)
        return ganzoo_cut.ganzoo_read_reference_state(state=state, kind=kind, source=name)

    assert read("G", "generator") == ReferenceLayout(
        "generator", "cut_resnet_6blocks",
        {"ngf": NGF, "norm": "instance", "dropout": False, "no_antialias": False, "no_antialias_up": False},
        {"padding_type": "reflect"}, 3, 3)
    assert read("D", "discriminator") == ReferenceLayout(
        "discriminator", "cut_patchgan_70", {"ndf": NDF, "norm": "instance"}, in_channels=3)
    assert read("F", "patch_sampler") == ReferenceLayout("patch_sampler", "mlp", {"nc": NC})
    assert read("G", "discriminator") is None and read("D", "generator") is None and read("F", "generator") is None
    d5 = random_state(expect_cut_patchgan(NDF, 5, 1, norm="batch"))
    assert ganzoo_cut.ganzoo_read_reference_state(state=d5, kind="discriminator", source="x") == ReferenceLayout(
        "discriminator", "cut_patchgan", {"ndf": NDF, "norm": "batch", "n_layers": 5}, in_channels=1)


def test_translate_a_reference_generator_file(reference_dir, tmp_path):
    write_images(tmp_path / "in", 2, seed=5, size=36)
    ganzoo("translate", "--checkpoint", reference_dir / "latest_net_G.pth", "--input", tmp_path / "in",
           "--output", tmp_path / "out", "--device", "cpu")
    state = torch.load(reference_dir / "latest_net_G.pth", weights_only=True)
    for src in sorted((tmp_path / "in").iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(src), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            want, _ = cut_resnet_reference(state, x * 2 - 1, 6)
        got = np.asarray(Image.open(tmp_path / "out" / f"{src.stem}.png"), dtype=np.float32) / 255
        diff = np.abs(got - ((want[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()).max()
        assert diff <= 0.5 / 255 + 1e-6  # 8-bit rounding only


def test_translate_names_a_discriminator_file_by_its_own_layout(reference_dir, tmp_path):
    write_images(tmp_path / "in", 1, seed=5, size=36)
    result = CliRunner().invoke(cli, ["translate", "--checkpoint", str(reference_dir / "latest_net_D.pth"),
                                      "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "It looks like a cut_patchgan_70 discriminator (a *_net_D*.pth file)" in result.output


def test_init_from_reference_files(reference_dir, unaligned_root, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_toml(unaligned_root, sampler={"nc": NC}))
    lr = 1e-7  # one Adam step moves each weight by at most lr
    ganzoo("run", recipe, "--out", tmp_path / "run", "--steps", 1, "--init-from", reference_dir,
           "--init-epoch", "5", "--set", f"optim.lr={lr}")
    record = (tmp_path / "run" / "init_from.toml").read_text()
    assert all(f"5_net_{n}.pth" in record for n in ("G", "D", "F"))
    ganzoo("export", "--checkpoint", tmp_path / "run", "--output", tmp_path / "export")
    for name in ("G", "D", "F"):
        start = torch.load(reference_dir / f"5_net_{name}.pth", weights_only=True)
        trained = torch.load(tmp_path / "export" / f"latest_net_{name}.pth", weights_only=True)
        assert trained.keys() == start.keys()
        moved = max((trained[k] - start[k]).abs().max().item() for k in start)
        assert moved <= 2 * lr, f"{name} moved {moved}: not started from the file"
        assert any(not torch.equal(trained[k], start[k]) for k in start), f"{name} did not train"


def test_init_from_says_which_file_does_not_fit(reference_dir, unaligned_root, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_toml(unaligned_root, sampler={"nc": 2 * NC}))
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "run"), "--steps", "1",
                                      "--init-from", str(reference_dir)])
    assert result.exit_code == 2, result.output
    # F is made from the first batch; its file is checked against a meta build before the run starts
    assert "latest_net_F.pth: does not fit network F" in result.output
    assert "mlp_0.0.weight is (16, 3) in the file, (32, 3) in the recipe's network" in result.output
    assert not (tmp_path / "run").exists()

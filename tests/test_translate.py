"""ganzoo translate never destroys: no output inside the input, no silent name collisions,
atomic files and exit 130 on Ctrl-C; one generator loaded; tiles, batches and autocast."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganzoo import checkpoint
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.data.images import read_image, write_image
from ganzoo.inference import load_generator
from cliinvoke import invoke, trained_run
from imagefiles import write_images


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("translate"), name="run")


def test_output_inside_input_is_refused(run, tmp_path):
    write_images(tmp_path / "in", 2, size=32)
    for out in (tmp_path / "in", tmp_path / "in" / "out"):
        result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", out, code=2)
        assert "it is inside --input" in result.output
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["img000.png", "img001.png"]


def test_names_never_collide_and_subfolders_are_kept(run, tmp_path):
    src = tmp_path / "in"
    write_images(src, 1, size=32, names=["x"])
    write_images(src / "sub", 1, size=36, names=["x"])
    (src / "x.jpg").write_bytes((src / "x.png").read_bytes())  # a PNG under another name: still an image
    result = invoke("translate", "--checkpoint", run, "--input", src, "--output", tmp_path / "out")
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["sub/x.png", "x.jpg.png", "x.png.png"]
    assert "wrote 3 image(s)" in result.output
    assert read_image(tmp_path / "out" / "sub" / "x.png", 3)[0].shape == (3, 36, 36)


def test_only_the_asked_generator_is_loaded(run):
    tree = checkpoint.load(RunCheckpoints(run).latest())
    net, channels, _ = load_generator(run, _registry(), torch.device("cpu"), "BtoA")
    assert channels == 3 and not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, tree["networks"]["G_B"][key])


def _registry():
    from ganzoo.plugins import get_plugin_manager
    from ganzoo.registry import Registry

    return Registry(get_plugin_manager())


def test_tiles_batches_and_bf16(run, tmp_path):
    # a smooth photo-like image: tiles see statistics like the whole image's (white noise would not)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(4)),
                                             size=(100, 100), mode="bicubic", align_corners=False)[0]
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "img000.png", smooth.clamp(0, 1))
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "whole")
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "tiled",
           "--tile", "48", "--overlap", "16", "--batch-size", "2")
    whole = read_image(tmp_path / "whole" / "img000.png", 3)[0]
    tiled = read_image(tmp_path / "tiled" / "img000.png", 3)[0]
    assert tiled.shape == whole.shape == (3, 100, 100)
    assert (tiled - whole).abs().mean() < 0.05  # instance-norm statistics differ a little per tile
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "bf16",
           "--precision", "bf16")
    assert (read_image(tmp_path / "bf16" / "img000.png", 3)[0] - whole).abs().max() < 0.1


def test_too_large_without_tiles_suggests_a_tile(run, tmp_path, monkeypatch):
    write_images(tmp_path / "in", 1, size=64)
    monkeypatch.setattr("ganzoo.translate.WHOLE_CHECK_PIXELS", 0)
    monkeypatch.setattr("ganzoo.tiling.available_memory", lambda device: 600_000)
    result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "o", code=2)
    assert "Translate it in tiles: --tile" in result.output
    assert not list((tmp_path / "o").rglob("*.png")) if (tmp_path / "o").exists() else True


def test_ctrl_c_leaves_complete_files_and_exits_130(run, tmp_path, monkeypatch):
    write_images(tmp_path / "in", 3, size=32)
    import ganzoo.data.images as images

    real_write, calls = images.write_image, []

    def write_then_interrupt(path, image, bits=8):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(path, image, bits=bits)

    monkeypatch.setattr(images, "write_image", write_then_interrupt)
    result = CliRunner().invoke(cli, ["translate", "--checkpoint", str(run), "--input", str(tmp_path / "in"),
                                      "--output", str(tmp_path / "out"), "--batch-size", "1"])
    assert result.exit_code == 130, result.output
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["img000.png"]  # the finished one; no partial file of the interrupted one
    assert "1 of 3 image(s) written" in result.output

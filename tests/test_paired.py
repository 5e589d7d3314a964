"""Paired translation end to end: pix2pix on aligned and named layouts, other channel
counts, 16-bit images through translate, and paired evaluation."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganzoo.cli import cli
from ganzoo.data.images import read_image, write_image
from ganzoo.evaluate import _metrics, format_table

PIX2PIX = """
[run]
name = "p2p"
device = "cpu"
max_steps = 2
log_every = 1
image_every = 1
save_every = 0

[data]
root = "{root}"
pairing = "{pairing}"
batch_size = 2
num_workers = 0
channels_a = {ca}
channels_b = {cb}
{extra}

[augment]
load_size = 36
crop_size = 32

[method]
name = "pix2pix"

[generator]
name = "unet"
num_downs = 5
ngf = 4

[discriminator]
name = "patchgan_70"
ndf = 4
norm = "batch"

[loss]
name = "vanilla"
"""


def _recipe(tmp_path, root, pairing="aligned", ca=3, cb=3, extra=""):
    path = tmp_path / "p2p.toml"
    path.write_text(textwrap.dedent(PIX2PIX.format(root=root.as_posix(), pairing=pairing, ca=ca, cb=cb, extra=extra)))
    return path


def _aligned_root(tmp_path, n=3, size=40):
    rng = np.random.default_rng(0)
    root = tmp_path / "aligned"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(n):
            ab = rng.integers(0, 256, size=(size, 2 * size, 3), dtype=np.uint8)
            Image.fromarray(ab).save(root / split / f"{i}.png")
    return root


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_pix2pix_two_steps_on_aligned_pairs_with_eval(tmp_path):
    recipe = _recipe(tmp_path, _aligned_root(tmp_path), extra='direction = "BtoA"')
    out = tmp_path / "run"
    result = _run("run", recipe, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "checkpoints" / "step_000000002.safetensors").exists()
    report = json.loads((out / "eval_test_AtoB.json").read_text())
    assert report["images"] == 3 and report["input"] is not None
    result = _run("eval", out, "--metrics", "psnr,ssim,l1")
    assert result.exit_code == 0 and "translated" in result.output and "untranslated input" in result.output


def test_pix2pix_refuses_unpaired_data(tmp_path, unaligned_root):
    result = _run("run", _recipe(tmp_path, unaligned_root, pairing="unaligned"), "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "needs aligned pairs" in result.output and 'pairing = "aligned"' in result.output


@pytest.mark.parametrize("ca, cb", [(1, 1), (1, 3), (4, 4)])
def test_named_pairs_with_other_channel_counts(tmp_path, ca, cb, write_images):
    root = tmp_path / "named"
    mode = {1: "L", 3: "RGB", 4: "RGB"}
    for split in ("train", "test"):
        write_images(root / f"{split}A", 3, mode=mode[ca], names=["a", "b", "c"], seed=1)
        write_images(root / f"{split}B", 3, mode=mode[cb], names=["a", "b", "c"], seed=2)
    out = tmp_path / "run"
    result = _run("run", _recipe(tmp_path, root, pairing="named", ca=ca, cb=cb), "--out", out)
    assert result.exit_code == 0, result.output
    dest = tmp_path / "translated"
    result = _run("translate", "--checkpoint", out, "--input", root / "testA", "--output", dest)
    assert result.exit_code == 0, result.output
    img, _ = read_image(dest / "a.png", cb)
    assert img.shape == (cb, 40, 40)
    with Image.open(dest / "a.png") as png:
        assert len(png.getbands()) == cb


def test_sixteen_bit_in_sixteen_bit_out(tmp_path):
    # 16-bit grey values that 8 bits cannot hold survive reading and come back as 16-bit PNG
    root = tmp_path / "named16"
    values = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 37 + 11).astype(np.uint16)
    for split in ("train", "test"):
        for side in "AB":
            (root / f"{split}{side}").mkdir(parents=True)
            for name in ("a", "b"):
                write_image(root / f"{split}{side}" / f"{name}.png", torch.from_numpy(values / 65535.0).float()[None], bits=16)
    img, bits = read_image(root / "trainA" / "a.png", 1)
    assert bits == 16
    assert torch.allclose(img[0] * 65535, torch.from_numpy(values).double().float(), atol=0.5)
    assert len(torch.unique(img)) > 256  # not truncated to 8 bits
    out = tmp_path / "run"
    result = _run("run", _recipe(tmp_path, root, pairing="named", ca=1, cb=1), "--out", out, "--steps", 1)
    assert result.exit_code == 0, result.output
    dest = tmp_path / "translated"
    assert _run("translate", "--checkpoint", out, "--input", root / "testA", "--output", dest).exit_code == 0
    with Image.open(dest / "a.png") as png:
        assert png.mode in ("I;16", "I;16B", "I")
    _, bits = read_image(dest / "a.png", 1)
    assert bits == 16


def test_metrics_on_known_inputs():
    x = torch.rand(2, 3, 32, 32)
    same = _metrics(x, x.clone())
    assert torch.allclose(same["ssim"], torch.ones(2), atol=1e-5)
    assert torch.all(same["psnr"] > 90) and torch.all(same["l1"] == 0)
    half = _metrics(torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), 0.5))
    assert half["psnr"].item() == pytest.approx(10 * np.log10(1 / 0.25), abs=1e-4)  # 6.02 dB
    assert half["l1"].item() == pytest.approx(0.5)
    table = format_table({"split": "test", "direction": "AtoB", "images": 1, "real_images": 1,
                          "translated": {"psnr": 20.0, "ssim": 0.9, "l1": 0.1}, "input": None})
    assert "translated" in table and "20.00" in table

"""Translating a folder of 256 px photos: ``ganzoo translate``'s path (batches of 8, one generator)
beside the reference's test.py loop (one image at a time: read, normalise, forward, tensor2im,
save), on the same files with the same network, in one run.

``extra_info`` gives images per second; the ratio of the two is the figure of docs/deployment.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _bench import OtherLoad, build, make_recipe, record
from ganzoo.translate import plan_outputs, translate_images

N_IMAGES = 16


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_IMAGES):
        path = folder / f"p{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths


def _reference_loop(net: torch.nn.Module, files: list[Path], out: Path) -> None:
    """The reference's test.py per image: PIL RGB, ToTensor, Normalize(0.5, 0.5), forward on a
    batch of one, tensor2im ((x + 1) / 2 * 255, uint8, HWC), save as PNG."""
    out.mkdir(exist_ok=True)
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
        x = (torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5
        with torch.no_grad():
            y = net(x)
        arr = ((y[0].permute(1, 2, 0).numpy() + 1) / 2 * 255.0).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(out / f"{f.stem}.png")


@pytest.mark.parametrize("how", ["reference-test-py", "ganzoo-b8", "ganzoo-b8-bf16"])
def test_translate_folder(benchmark, registry, device, photos, tmp_path, how):
    recipe = make_recipe(registry, "cyclegan", 256, 1)
    net = build(recipe, registry, device).generator("AtoB").eval()
    benchmark.group = "translate 256px folder"
    if how == "reference-test-py":
        def run():
            _reference_loop(net, photos, tmp_path / "ref")
    else:
        pairs = plan_outputs(photos, photos[0].parent, tmp_path / "ours")

        def run():
            translate_images(net, pairs, channels=3, device=device, batch_size=8,
                             precision="bf16" if how.endswith("bf16") else "fp32")

    with OtherLoad() as load:
        benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
    record(benchmark, load=load, items=N_IMAGES, generator=recipe.generator.name, size=256, how=how)

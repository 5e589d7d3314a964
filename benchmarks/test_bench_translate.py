"""Translating a folder of 256 px photos: ``ganzoo translate``'s path (``--batch-size 8``, one
generator) beside the reference's test.py loop, on the same files with the same network, in one run.

The reference's loop, per image: PIL RGB, ToTensor, Normalize(0.5, 0.5), forward on a batch of
one under no_grad, tensor2im ((x + 1) / 2 * 255, uint8, HWC) of both visuals of its test model
(``real`` and ``fake``), each saved as a PNG. ``extra_info`` gives images per second and, for
every ganzoo path, how far its PNGs are from the reference's in 8-bit levels (fp32 differs by
rounding only; bf16 and compiled paths by their arithmetic) and the generator's achieved GFLOP/s.
The ratios are the table of docs/deployment.md. The compiled cases need ``--bench-compile``;
``first_round_s`` is the warm-up round, which includes compiling. The one-forward cases run each
batch in one forward (as on a GPU) instead of the parts ganzoo uses on a CPU; the default-heap
cases run before ``ganzoo.heap.hold_large_blocks()``, which the command applies (and the later
cases with it), and show what that setting gives.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _bench import OtherLoad, build, make_recipe, record
from _images import photo
from ganzoo.flops import forward_flops
from ganzoo import heap, inference
from ganzoo.inference import compile_generator
from ganzoo.translate import plan_outputs, translate_images

N_IMAGES = 16
_HEAP = {"held": False}  # ganzoo.heap.hold_large_blocks() applied in this process


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """16 JPEGs of 256 px cut from synthetic photos (smooth fields, discs, fine noise)."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(N_IMAGES):
        image = ((photo(256, seed=i)[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        path = folder / f"p{i:02d}.jpg"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=95)
        paths.append(path)
    return paths


def _tensor2im(x: torch.Tensor) -> np.ndarray:
    return ((x[0].cpu().float().permute(1, 2, 0).numpy() + 1) / 2 * 255.0).clip(0, 255).astype(np.uint8)


def _reference_loop(net: torch.nn.Module, files: list[Path], out: Path) -> None:
    out.mkdir(exist_ok=True)
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
        x = (torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5
        with torch.no_grad():
            y = net(x)
        Image.fromarray(_tensor2im(x)).save(out / f"{f.stem}_real.png")
        Image.fromarray(_tensor2im(y)).save(out / f"{f.stem}_fake.png")


def _levels(ours: Path, reference: Path, files: list[Path]) -> dict[str, float]:
    """Mean and max |difference| of our PNGs from the reference's, in 8-bit levels."""
    diffs = [np.abs(np.asarray(Image.open(ours / f"{f.stem}.png"), dtype=np.int16)
                    - np.asarray(Image.open(reference / f"{f.stem}_fake.png"), dtype=np.int16)) for f in files]
    return {"levels_vs_reference_mean": round(float(np.mean(diffs)), 3),
            "levels_vs_reference_max": int(max(d.max() for d in diffs))}


CASES = [  # in this order: the heap setting, once made, holds for the rest of the process
    pytest.param("reference-test-py", id="reference-test-py"),
    pytest.param("ganzoo-b8-default-heap", id="ganzoo-b8-default-heap"),
    pytest.param("ganzoo-b8-bf16-default-heap", id="ganzoo-b8-bf16-default-heap"),
    pytest.param("ganzoo-b8", id="ganzoo-b8"),
    pytest.param("ganzoo-b8-bf16", id="ganzoo-b8-bf16"),
    pytest.param("ganzoo-b8-one-forward", id="ganzoo-b8-one-forward"),
    pytest.param("ganzoo-b8-bf16-one-forward", id="ganzoo-b8-bf16-one-forward"),
    pytest.param("ganzoo-b8-compile", id="ganzoo-b8-compile", marks=pytest.mark.compile),
    pytest.param("ganzoo-b8-bf16-compile", id="ganzoo-b8-bf16-compile", marks=pytest.mark.compile),
]


@pytest.mark.parametrize("how", CASES)
def test_translate_folder(benchmark, registry, device, photos, tmp_path, monkeypatch, how):
    if how.endswith("default-heap") and _HEAP["held"]:
        pytest.skip("glibc's allocator was set up by an earlier case of this process; run this case first")
    recipe = make_recipe(registry, "cyclegan", 256, 1)
    net = build(recipe, registry, device).generator("AtoB").eval()
    benchmark.group = "translate 256px folder"
    reference_out = tmp_path / "ref"
    _reference_loop(net, photos, reference_out)  # also the warm-up of the reference case
    extra = {}
    if how == "reference-test-py":
        def run():
            _reference_loop(net, photos, reference_out)
    else:
        pairs = plan_outputs(photos, photos[0].parent, tmp_path / "ours")
        if not how.endswith("default-heap"):  # as `ganzoo translate` does for whole images on a CPU
            _HEAP["held"] = _HEAP["held"] or (device.type == "cpu" and heap.hold_large_blocks())
        precision = "bf16" if "bf16" in how else "fp32"
        forward = compile_generator(net, device) if how.endswith("compile") else net
        if how.endswith("one-forward"):  # each batch of 8 in one forward, as on a GPU
            monkeypatch.setattr(inference, "CPU_PIXELS_PER_FORWARD", 1 << 40)

        def run():
            translate_images(forward, pairs, channels=3, device=device, batch_size=8, precision=precision)

    with OtherLoad() as load:
        started = time.perf_counter()
        run()  # the warm-up round; with --compile it compiles
        extra["first_round_s"] = round(time.perf_counter() - started, 2)
        benchmark.pedantic(run, rounds=2, iterations=1)
    if how != "reference-test-py":
        extra |= _levels(tmp_path / "ours", reference_out, photos)
    flops = forward_flops(copy.deepcopy(net).to("meta"), torch.empty(1, 3, 256, 256, device="meta")) * N_IMAGES
    record(benchmark, load=load, flops=flops, items=N_IMAGES, generator=recipe.generator.name, size=256, how=how,
           glibc_heap="held" if _HEAP["held"] else "default", **extra)

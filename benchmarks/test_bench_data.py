"""Data-pipeline throughput: JPEG decode + resize in the Dataset, then Kornia crop/flip/normalise on the device.

The folder holds generated 256x256 JPEGs (the size of horse2zebra's files), so the
Dataset's resize to load_size 286 does real work before the device-side random 256 crop,
as in the reference's CycleGAN recipe. The loader is built as the Trainer builds it (the
recipe's pairing via ``build_dataset``, an ``EpochSampler``, batch 1). Worker start-up
is paid once per epoch by the Trainer; it is measured apart (``worker_startup_s``) and the
timed rounds consume an already started iterator, giving the steady-state rate
(``items_per_s`` = training pairs per second) to compare with what a training step
consumes (docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from _bench import OtherLoad, PeakMemory, make_recipe, record, sync
from ganzoo.build import build_dataset
from ganzoo.data.augment import build_augment
from ganzoo.data.sampler import EpochSampler

N_IMAGES = 96  # per domain
SOURCE_SIZE = 256


def _photo_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour fields plus mild noise: JPEG-compresses like a photo, unlike white noise."""
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
    img = img + rng.integers(-12, 13, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def jpeg_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for sub in ("trainA", "trainB"):
        (root / sub).mkdir()
        for i in range(N_IMAGES):
            Image.fromarray(_photo_like(rng, SOURCE_SIZE)).save(root / sub / f"{i:04d}.jpg", quality=90)
    return root


@pytest.mark.parametrize("num_workers", [0, 2], ids=lambda n: f"workers{n}")
def test_data_pipeline(benchmark, registry, device, jpeg_root, num_workers):
    recipe = make_recipe(registry, "cyclegan", 256, 1)
    recipe = dataclasses.replace(
        recipe, data=dataclasses.replace(recipe.data, root=str(jpeg_root), num_workers=num_workers))
    dataset = build_dataset(recipe, registry, "train")
    sampler = EpochSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=recipe.data.batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))
    augment = build_augment(recipe.augment, aligned=dataset.aligned, train=True)
    per_round = 16  # pairs per timed round
    rounds = (len(dataset) - 1) // per_round - 1  # one round of warm-up
    benchmark.group = "data pipeline 256px crops"

    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    startup = time.perf_counter() - t0

    def consume():
        for _ in range(per_round):
            batch = next(it)
            a = batch["A"].to(device, non_blocking=True)
            b = batch["B"].to(device, non_blocking=True)
            a, b = augment(a, b)
        sync(device)
        return a, b

    with PeakMemory(device) as memory:
        with OtherLoad() as load:
            a, b = benchmark.pedantic(consume, rounds=rounds, iterations=1, warmup_rounds=1)
    del it
    assert first["A"].shape == (1, 3, 286, 286)
    assert a.shape == b.shape == (1, 3, 256, 256) and a.min() >= -1 and a.max() <= 1
    record(benchmark, load=load, items=per_round * recipe.data.batch_size, memory=memory, num_workers=num_workers,
           source_size=SOURCE_SIZE, load_size=recipe.augment.load_size, crop_size=recipe.augment.crop_size,
           worker_startup_s=round(startup, 3))

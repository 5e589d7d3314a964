"""Tiny CUT recipes and image folders for end-to-end tests (importable as ``cut_recipes``)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from PIL import Image

from ganzoo.config import dump_toml

# CUT at 32 px with 4-channel networks: cut_resnet_6blocks (so the reference's nce_layers
# 0,4,8,12,16 exist), the 70x70 PatchGAN, a 16-wide F sampling 16 patches per layer.
TINY = {
    "run": {"seed": 0, "device": "cpu", "n_epochs": 1, "n_epochs_decay": 1, "log_every": 1, "image_every": 0,
            "save_every": 0},
    "data": {"root": "", "num_workers": 0},
    "augment": {"load_size": 36, "crop_size": 32},
    "method": {"name": "cut"},
    "generator": {"name": "cut_resnet_6blocks", "ngf": 4},
    "discriminator": {"name": "cut_patchgan_70", "ndf": 4},
    "loss": {"name": "lsgan"},
    "sampler": {"name": "mlp", "nc": 16, "num_patches": 16},
}


def tiny(root: Path | str = "unused", **sections) -> dict:
    """:data:`TINY` on the data in ``root``, each named section updated."""
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = Path(root).as_posix()
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def tiny_toml(root: Path | str, **sections) -> str:
    return dump_toml(tiny(root, **sections))


def write_images(folder: Path, n: int, seed: int, size: int = 36) -> None:
    """``n`` random RGB PNGs of ``size`` px."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")

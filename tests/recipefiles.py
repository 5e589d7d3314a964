"""The tiny CycleGAN recipe that end-to-end tests train (importable as ``recipefiles``).

32 px crops of 36 px images, ResNet-6 and PatchGAN 4 channels wide, one epoch at a constant
lr and one of decay, CPU, in-process data loading, no images or intermediate checkpoints.
Tests change only what they are about: ``tiny_toml(root, run={"seed": 7}, method={"pool_size": 3})``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ganzoo.config import dump_toml

TINY: dict[str, dict[str, Any]] = {
    "run": {"seed": 0, "device": "cpu", "n_epochs": 1, "n_epochs_decay": 1, "log_every": 1, "image_every": 0,
            "save_every": 0},
    "data": {"root": "", "num_workers": 0},
    "augment": {"load_size": 36, "crop_size": 32},
    "method": {"name": "cyclegan"},
    "generator": {"name": "resnet_6blocks", "ngf": 4},
    "discriminator": {"name": "patchgan_70", "ndf": 4},
    "loss": {"name": "lsgan"},
}


def tiny_toml(root: Path | str, **sections: dict[str, Any]) -> str:
    """The TOML text of :data:`TINY` on the data in ``root``, each named section updated."""
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = Path(root).as_posix()
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return dump_toml(raw)

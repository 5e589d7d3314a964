"""Small random image folders for tests (importable as ``imagefiles`` from any test)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_images(folder: Path, n: int, size: int = 40, mode: str = "RGB", seed: int = 0, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    channels = {"RGB": 3, "L": 1}[mode]
    for i in range(n):
        arr = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=None)
        path = folder / f"{names[i] if names else f'img{i:03d}'}.png"
        img.save(path)
        paths.append(path)
    return paths

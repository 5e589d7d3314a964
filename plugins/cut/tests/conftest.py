"""A registry with ganzoo's built-ins and this plugin only; a tiny unaligned image folder."""
from __future__ import annotations

from pathlib import Path

import pytest

import ganzoo_cut
from cut_recipes import write_images
from ganzoo import testing


@pytest.fixture
def registry():
    return testing.registry(ganzoo_cut)


@pytest.fixture
def unaligned_root(tmp_path) -> Path:
    """trainA (4 images) and trainB (3 images) of random 36 px RGB images."""
    root = tmp_path / "ds"
    write_images(root / "trainA", 4, seed=1)
    write_images(root / "trainB", 3, seed=2)
    return root

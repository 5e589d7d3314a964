"""Shared fixtures: a fresh plugin manager without entry points, tiny datasets, recipes."""
from __future__ import annotations

from pathlib import Path

import pytest

import ganzoo_cut
import ganzoo_cyclegan
import ganzoo_pix2pix
from ganzoo.plugins import get_plugin_manager
from ganzoo.registry import Registry
from imagefiles import write_images
from recipefiles import tiny_toml


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for tests that accept one (cpu, cuda)")


@pytest.fixture
def device(request):
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(name)


@pytest.fixture
def pm():
    """Builtins plus the bundled plugins, registered by hand; no other installed plugins."""
    manager = get_plugin_manager(load_entrypoints=False)
    manager.register(ganzoo_cyclegan, name="cyclegan")
    manager.register(ganzoo_pix2pix, name="pix2pix")
    manager.register(ganzoo_cut, name="cut")
    return manager


@pytest.fixture
def registry(pm):
    return Registry(pm)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny test models run faster on one thread, and two spinning OpenMP threads per test
    process slow everything down when the machine is shared. The count never changes during
    the session, which the bit-exact resume tests rely on (oneDNN splits reductions by it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(name="write_images")
def _write_images_fixture():
    """The :func:`write_images` helper, for tests that make their own folders."""
    return write_images


@pytest.fixture
def unaligned_root(tmp_path) -> Path:
    """trainA/trainB/testA/testB with a few random 40 px RGB images (test names shared)."""
    root = tmp_path / "ds"
    write_images(root / "trainA", 4, seed=1)
    write_images(root / "trainB", 3, seed=2)
    write_images(root / "testA", 2, seed=3, names=["x", "y"])
    write_images(root / "testB", 2, seed=4, names=["x", "y"])
    return root




@pytest.fixture
def tiny_recipe(tmp_path, unaligned_root) -> Path:
    """A 2-step CycleGAN recipe with tiny widths on ``unaligned_root``."""
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_toml(unaligned_root, run={"name": "tiny", "max_steps": 2, "image_every": 1}))
    return path

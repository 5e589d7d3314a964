"""Options and fixtures of the benchmark suite.

Run with ``pytest --benchmark-only`` (or ``pytest benchmarks --benchmark-only``; a plain ``pytest`` collects tests/ only);
helpers shared by the suites live in ``_bench.py``.
Options (declared in the repository's conftest.py): ``--bench-device cuda`` to benchmark a GPU,
``--bench-compile`` to add the torch.compile cases (each compiles for a minute or more on CPU).
"""
from __future__ import annotations

import pytest
import torch

import ganzoo_cyclegan
import ganzoo_pix2pix
from ganzoo.plugins import get_plugin_manager
from ganzoo.registry import Registry


def pytest_collection_modifyitems(config, items):
    if config.getoption("--bench-compile"):
        return
    skip = pytest.mark.skip(reason="torch.compile cases need --bench-compile")
    for item in items:
        if "compile" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "compile: a torch.compile case, run only with --bench-compile")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    dev = torch.device(request.config.getoption("--bench-device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return dev


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The bundled plugins only, registered by hand as in tests/conftest.py."""
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(ganzoo_cyclegan, name="cyclegan")
    pm.register(ganzoo_pix2pix, name="pix2pix")
    return Registry(pm)

"""Repository-level pytest setup: a bare ``pytest --benchmark-only`` runs the benchmark suite.

A plain ``pytest`` collects the tests (``testpaths`` in pyproject.toml), where no case uses the
benchmark fixture, so ``--benchmark-only`` alone would skip everything. With that flag and no
paths given, collection switches to ``benchmarks/``. The suite's options live here because
pytest reads ``pytest_addoption`` only from conftest files it loads before collecting.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("ganzoo benchmarks")
    group.addoption("--bench-device", default="cpu", help="device to benchmark (cpu, cuda, cuda:N)")
    group.addoption("--bench-compile", action="store_true", help="also benchmark torch.compile (slow to compile)")


def pytest_configure(config):
    if config.getoption("benchmark_only", False) and config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        config.args[:] = [str(config.rootpath / "benchmarks")]

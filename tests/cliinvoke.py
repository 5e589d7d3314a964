"""Run the ganzoo CLI in-process and check its exit code (importable as ``cliinvoke``)."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from ganzoo.cli import cli
from imagefiles import write_images
from recipefiles import tiny_toml


def invoke(*args, code: int = 0) -> Result:
    """``ganzoo ARGS...`` (any path-like or number is converted); asserts the exit code."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def trained_run(base: Path, name: str = "run", **run) -> Path:
    """A tiny CycleGAN trained for one step on random images under ``base``; its run directory."""
    write_images(base / "ds" / "trainA", 2, seed=1)
    write_images(base / "ds" / "trainB", 2, seed=2)
    (base / "r.toml").write_text(tiny_toml(base / "ds", run={"name": name, "max_steps": 1, **run}))
    invoke("run", base / "r.toml", "--out", base / "run")
    return base / "run"

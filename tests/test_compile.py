"""[run] compile = true: a compiled run trains like an eager one; a machine where
torch.compile cannot work gets one clear error (exit 2), before or at the first step."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganzoo.runlog import read_metrics
from ganzoo.cli import cli
from imagefiles import write_images
from recipefiles import tiny_toml




@pytest.fixture
def recipe(tmp_path) -> callable:
    write_images(tmp_path / "ds" / "trainA", 3, size=34, seed=1)
    write_images(tmp_path / "ds" / "trainB", 3, size=34, seed=2)

    def make(compile: bool) -> Path:
        path = tmp_path / f"compile_{compile}.toml"
        path.write_text(tiny_toml(tmp_path / "ds", run={"seed": 3, "n_epochs_decay": 0, "compile": compile},
                                  augment={"load_size": 34}, method={"pool_size": 2},
                                  discriminator={"name": "patchgan", "n_layers": 2}))
        return path

    return make


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def run(*args):
    return CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)


def losses(run_dir: Path) -> list[dict]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def run_process(*args) -> subprocess.CompletedProcess:
    """``ganzoo run`` in a fresh interpreter, as a user runs it: torch.compile's code generation
    imports setuptools/distutils, which breaks in a process where other tests imported them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ganzoo.cli", "run", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_compiled_run_follows_the_eager_run(recipe, tmp_path):
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    for path, compile in ((eager, False), (compiled, True)):
        result = run_process(recipe(compile), "--out", path, "--steps", 3)
        assert result.returncode == 0, result.stderr
    want, got = losses(eager), losses(compiled)
    assert len(want) == len(got) == 3
    for step, (w, g) in enumerate(zip(want, got), 1):
        assert w.keys() == g.keys()
        for key in w:  # fused kernels round differently; three steps stay close
            assert g[key] == pytest.approx(w[key], rel=2e-3, abs=1e-4), (step, key)


def _one_error(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def test_no_cpp_compiler_is_an_error_before_anything_is_written(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-ganzoo")
    out = tmp_path / "run"
    result = run(recipe(True), "--out", out, "--steps", 1)
    assert result.exit_code == 2
    line = _one_error(result.output)
    assert "[run] compile = true" in line and "no-such-compiler-ganzoo" in line and "run.compile=false" in line
    assert not out.exists()


def test_a_compiler_failure_at_the_first_step_is_one_clear_error(recipe, tmp_path, monkeypatch):
    import torch._inductor.compile_fx as compile_fx

    def broken(*args, **kwargs):
        raise RuntimeError("cc1plus: fatal error: out of memory")

    monkeypatch.setattr(compile_fx, "compile_fx", broken)
    result = run(recipe(True), "--out", tmp_path / "run", "--steps", 1)
    assert result.exit_code == 2
    line = _one_error(result.output)
    assert "torch.compile failed at step 1" in line and "out of memory" in line and "run.compile=false" in line

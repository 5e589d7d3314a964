"""Watching ``ganzoo run`` child processes through their metrics.jsonl (importable as ``childruns``)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest


def logged_steps(run_dir: Path) -> list[int]:
    """The training steps logged so far, in order."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.endswith("}")]  # not a line being written
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, kill: Callable[[subprocess.Popen], str],
                  timeout: float = 60) -> int:
    """Wait until the run has logged ``step``; return the last logged step. Fails the test
    (after ``kill``, which stops the process and returns its output) if the process exits first
    or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = logged_steps(run_dir)
        if steps and steps[-1] >= step:
            return steps[-1]
        if proc.poll() is not None:
            pytest.fail(f"the process exited with {proc.returncode} before step {step}:\n{kill(proc)}")
        time.sleep(0.02)
    pytest.fail(f"the process did not reach step {step} in {timeout}s:\n{kill(proc)}")

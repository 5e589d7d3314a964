"""``metrics.jsonl``: one JSON object per logged step in the run directory, for people and scripts.

Each line is flushed as it is written. Non-finite numbers are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` so every line is strict JSON. A resumed run first drops
the lines past its checkpoint's step (steps the crashed run did but never saved), so the
file always describes one consistent history. Writing is best effort: a full disk warns once
and training goes on (the checkpoint write reports it properly).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from ganzoo.checkpoint import atomic_write


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line torn by a crash: drop it


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a ``metrics.jsonl`` file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends records to ``path``.

    Args:
        path: the ``metrics.jsonl`` file (created on the first write).
        enabled: False makes every call a no-op (ranks other than 0 under torchrun).
    """

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self._file = None
        self._failed = not enabled

    def rewind(self, step: int) -> None:
        """Drop the records of steps after ``step`` (and a torn last line)."""
        if self._failed:
            return
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            keep = [line for line in lines if line.endswith("\n") and _step_of(line) <= step]
            if keep != lines:
                atomic_write(self.path, "".join(keep).encode())
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            print(f"warning: {self.path}: cannot rewind the metrics to step {step} ({exc}); "
                  "later lines may repeat steps.", file=sys.stderr, flush=True)

    def write(self, record: dict[str, Any]) -> None:
        if self._failed:
            return
        try:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
            self._file.write(json.dumps(_plain(record)) + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed = True
            print(f"warning: {self.path}: cannot write metrics ({exc.strerror or exc}); training goes on "
                  "and TensorBoard keeps logging.", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

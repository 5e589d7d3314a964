"""The run log: ``metrics.jsonl``, TensorBoard (scalars, sample grids, ``samples/*.png``) and the console.

``metrics.jsonl`` holds one JSON object per logged step, for people and scripts. Each line is flushed as it is written. Non-finite numbers are written as the strings
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


class RunLog:
    """Everything a run reports while it trains, in one place; rank 0 alone writes files.

    Args:
        run_dir: the run directory (``metrics.jsonl``, ``tb/``, ``samples/``).
        total_steps: the run's length, for the progress bar and console lines.
        enabled: False on ranks other than 0.
    """

    def __init__(self, run_dir: Path, total_steps: int, enabled: bool = True) -> None:
        self.run_dir, self.total_steps, self.enabled = Path(run_dir), total_steps, enabled
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled=enabled)
        self.tb = None
        self.bar = None

    def open(self, step: int) -> None:
        """Start (or continue at ``step``): drop records a crashed run logged past its checkpoint."""
        from tqdm import tqdm

        from ganzoo.tb import TensorBoard

        self.metrics.rewind(step)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=self.enabled, purge_step=step + 1 if step else None)
        self.bar = tqdm(total=self.total_steps, initial=step, unit="step", dynamic_ncols=True,
                        disable=not sys.stderr.isatty())

    def tick(self) -> None:
        self.bar.update(1)

    def step(self, step: int, epoch: int, metrics: dict[str, float], lrs: dict[str, float], seconds: float,
             counts: dict[str, int], nonfinite: str = "") -> None:
        """One logged training step: metrics.jsonl, TensorBoard and the bar (or a console line)."""
        self.record({"step": step, "epoch": epoch, "loss": metrics, "lr": lrs, "seconds": seconds,
                     **({"nonfinite": nonfinite} if nonfinite else {}), **counts})
        self.tb.scalars(metrics, step, prefix="loss/")
        self.tb.scalars(lrs, step, prefix="lr/")
        self.tb.scalars({"step_seconds": seconds, "epoch": epoch}, step, prefix="time/")
        shown = {k: metrics[k] for k in list(metrics)[:4]}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
        if self.bar.disable:  # every rank prints its own line (files are rank 0's)
            losses = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
            print(f"step {step}/{self.total_steps} epoch {epoch} {seconds:.2f}s/step {losses}",
                  file=sys.stderr, flush=True)

    def scalars(self, values: dict[str, float], step: int, prefix: str) -> None:
        self.tb.scalars(values, step, prefix=prefix)

    def record(self, record: dict[str, Any]) -> None:
        """A line of metrics.jsonl as it is."""
        self.metrics.write(record)

    def samples(self, visuals: dict, step: int) -> None:
        """An image grid of the step's visuals, to TensorBoard and ``samples/step_N.png``."""
        if not visuals or not self.enabled:
            return
        from ganzoo.data.images import write_image
        from ganzoo.tb import image_grid

        grid = image_grid(visuals)
        self.tb.image("samples", grid, step)
        try:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            write_image(self.run_dir / "samples" / f"step_{step:09d}.png", grid)
        except OSError as exc:  # a sample is not worth a run; a full disk is reported by the checkpoint
            print(f"warning: {self.run_dir / 'samples'}: cannot write a sample ({exc.strerror or exc}).",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.metrics.close()
        if self.tb is not None:
            self.tb.close()

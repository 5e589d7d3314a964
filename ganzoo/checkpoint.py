"""Checkpoint files: one safetensors file holding every tensor, plus JSON for the rest.

A checkpoint is a nested tree of dicts, lists, tensors and JSON scalars (networks,
optimisers, schedulers, pools, RNG states, counters, the resolved recipe). Tensors go into
the safetensors payload under their path in the tree; everything else goes into the file's
metadata as JSON. Loading therefore never unpickles anything. Writes are atomic: a
temporary file in the same folder is written, fsynced and renamed over the target, and the
folder is fsynced, so a crash (even kill -9 or a power cut) leaves the old file or the new
one under the final name, never a partial one. See docs/reliability.md.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from ganzoo.errors import CheckpointError

FORMAT = "ganzoo-checkpoint"
FORMAT_VERSION = 1
_TENSOR, _DICT, _TUPLE = "__tensor__", "__dict__", "__tuple__"
_TMP_SUFFIX = ".tmp"
_STEP_FILE = re.compile(r"step_\d{9,}\.safetensors")


def _flatten(node: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, torch.Tensor):
        tensors[path] = node.detach().to("cpu").contiguous().clone()
        return {_TENSOR: path}
    if isinstance(node, dict):
        if all(isinstance(k, str) for k in node):
            return {k: _flatten(v, f"{path}/{k}", tensors) for k, v in node.items()}
        # optimiser state is keyed by int parameter ids; JSON would turn them into strings
        return {_DICT: [[k, _flatten(v, f"{path}/{k}", tensors)] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {_TUPLE: [_flatten(v, f"{path}/{i}", tensors) for i, v in enumerate(node)]}
    if isinstance(node, list):
        return [_flatten(v, f"{path}/{i}", tensors) for i, v in enumerate(node)]
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"checkpoint value at {path!r} has unsupported type {type(node).__name__}")


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if _TENSOR in node:
            return tensors[node[_TENSOR]]
        if _DICT in node:
            return {k: _unflatten(v, tensors) for k, v in node[_DICT]}
        if _TUPLE in node:
            return tuple(_unflatten(v, tensors) for v in node[_TUPLE])
        return {k: _unflatten(v, tensors) for k, v in node.items()}
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    return node


def to_bytes(tree: dict[str, Any]) -> bytes:
    """Serialise a checkpoint tree to the bytes of a safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(tree, "", tensors)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "tree": json.dumps(skeleton)}
    return st_save(tensors, metadata=meta)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave our temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable. Some filesystems cannot fsync a folder; the rename still happened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(dir_fd)


def save(path: Path, tree: dict[str, Any]) -> None:
    """Atomically write a checkpoint tree to ``path``."""
    atomic_write(Path(path), to_bytes(tree))


def load(path: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint tree; anything that is not a ganzoo checkpoint is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found.")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable ganzoo checkpoint ({exc}). The file may be truncated or "
            "of another format; use an earlier checkpoint of the run or retrain."
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file but not a ganzoo checkpoint (no '{FORMAT}' metadata). "
            "Reference-format .pth files are read by `ganzoo translate --checkpoint FILE.pth`."
        )
    try:
        tree = _unflatten(json.loads(meta["tree"]), tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{path}: checkpoint metadata is damaged ({type(exc).__name__}: {exc}). "
            "Use an earlier checkpoint of the run."
        ) from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is damaged (the tree is not a table).")
    return tree


class RunCheckpoints:
    """The checkpoints of one run directory: ``checkpoints/step_NNNNNNNNN.safetensors`` plus a
    ``checkpoints/latest`` pointer (a text file naming the newest), moved only after the file
    it names is complete. Keeps the newest ``keep_last`` files.

    One process writes a run directory at a time. Temporary files left by a killed writer
    (``.step_*.tmp``) are ignored by readers and removed by the next :meth:`save`.
    """

    def __init__(self, run_dir: Path, keep_last: int = 3) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.dir / f"step_{step:09d}.safetensors"

    def save(self, step: int, tree: dict[str, Any]) -> Path:
        """Write the checkpoint of ``step``, move ``latest`` to it, drop the oldest.

        An OSError (disk full, read-only or vanished folder, no permission) becomes a
        CheckpointError naming the file; the previous checkpoints are left as they were.
        """
        path = self.path_for(step)
        data = to_bytes(tree)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp()
            atomic_write(path, data)
            atomic_write(self.dir / "latest", f"{path.name}\n".encode())
        except OSError as exc:
            raise self._write_error(path, exc) from None
        for old in self.all()[: -self.keep_last]:
            try:
                old.unlink(missing_ok=True)
            except OSError:
                pass  # an old checkpoint we cannot delete does no harm; the new one is safe
        return path

    @property
    def best_path(self) -> Path:
        """The validation-selected checkpoint (``[eval] select``), kept apart from ``keep_last``."""
        return self.dir / "best.safetensors"

    def save_best(self, tree: dict[str, Any]) -> Path:
        """Atomically (re)write the best checkpoint; errors as in :meth:`save`."""
        data = to_bytes(tree)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.best_path, data)
        except OSError as exc:
            raise self._write_error(self.best_path, exc) from None
        return self.best_path

    def _remove_stale_tmp(self) -> None:
        for tmp in self.dir.glob(f".*{_TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)

    def _write_error(self, path: Path, exc: OSError) -> CheckpointError:
        try:
            previous = self.latest()
        except OSError:
            previous = None
        kept = (f"the previous checkpoint {previous} is intact: continue later with "
                f"`ganzoo run --resume {self.dir.parent}`" if previous else "no earlier checkpoint exists")
        fix = {
            errno.ENOSPC: "Free space on that disk",
            errno.EDQUOT: "Free space on that disk (the quota is exceeded)",
            errno.EROFS: "The filesystem is read-only",
            errno.EACCES: "Fix the folder's permissions",
            errno.EPERM: "Fix the folder's permissions",
        }.get(exc.errno, "Check the disk and the folder")
        return CheckpointError(
            f"{path}: cannot write the checkpoint: {exc.strerror or exc}. {fix}, or start the run "
            f"in another directory with --out; {kept}."
        )

    def all(self) -> list[Path]:
        return sorted(self.dir.glob("step_*.safetensors"))

    def latest(self) -> Path | None:
        pointer = self.dir / "latest"
        if pointer.is_file():
            try:
                named = pointer.read_text(encoding="utf-8", errors="replace")[:64].strip()
            except OSError:
                named = ""
            # the pointer is file content: only a step file of this folder may be named
            if _STEP_FILE.fullmatch(named) and (self.dir / named).is_file():
                return self.dir / named
        files = self.all()
        return files[-1] if files else None

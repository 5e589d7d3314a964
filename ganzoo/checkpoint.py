"""Checkpoint files: one safetensors file holding every tensor, plus JSON for the rest.

A checkpoint is a nested tree of dicts, lists, tensors and JSON scalars (networks,
optimisers, schedulers, pools, RNG states, counters, the resolved recipe). Tensors go into
the safetensors payload under their path in the tree; everything else goes into the file's
metadata as JSON. Loading therefore never unpickles anything. Writes are atomic: a
temporary file in the same folder is written, fsynced and renamed over the target.
"""
from __future__ import annotations

import json
import os
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
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
        return _unflatten(json.loads(meta["tree"]), tensors)
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({exc}).") from None


class RunCheckpoints:
    """The checkpoints of one run directory: ``checkpoints/step_NNNNNNNNN.safetensors`` plus a
    ``checkpoints/latest`` pointer (a text file naming the newest), moved only after the file
    it names is complete. Keeps the newest ``keep_last`` files.
    """

    def __init__(self, run_dir: Path, keep_last: int = 3) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.dir / f"step_{step:09d}.safetensors"

    def save(self, step: int, tree: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        save(path, tree)
        atomic_write(self.dir / "latest", f"{path.name}\n".encode())
        for old in self.all()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def all(self) -> list[Path]:
        return sorted(self.dir.glob("step_*.safetensors"))

    def latest(self) -> Path | None:
        pointer = self.dir / "latest"
        if pointer.is_file():
            candidate = self.dir / pointer.read_text().strip()
            if candidate.is_file():
                return candidate
        files = self.all()
        return files[-1] if files else None

"""An on-disk cache of Inception features for image sets, keyed by content.

A set's key is a SHA-256 over the feature extractor's identity and the SHA-256 of every
image's bytes, in order, so renaming or touching files keeps the entry and changing one
pixel (or the extractor, or its resize) misses it. Entries are safetensors files (no pickle)
written atomically, so a crash or a concurrent writer never leaves half an entry; an entry
that does not load or has the wrong shape counts as a miss and is rewritten.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

FORMAT = "ganzoo-features-v1"


def cache_dir() -> Path:
    """ganzoo's cache folder: ``$GANZOO_CACHE``, else ``$XDG_CACHE_HOME/ganzoo``, else ``~/.cache/ganzoo``."""
    if os.environ.get("GANZOO_CACHE"):
        return Path(os.environ["GANZOO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ganzoo"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_digest(images: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and values."""
    data = images.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class FeatureCache:
    """Features of image sets stored under ``root``, found again by the sets' content.

    Args:
        root: folder for the entries; default ``cache_dir() / "features"``.

    Example:
        >>> cache = FeatureCache()
        >>> feats = image_features("data/h2z/testB", cache=cache)   # computed, stored
        >>> feats = image_features("data/h2z/testB", cache=cache)   # read back, cache.hits == 1
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "features"
        self.hits = 0
        self.misses = 0

    def key(self, digests: Sequence[str], identity: str) -> str:
        """The entry name for a set whose items have ``digests``, seen by extractor ``identity``."""
        digest = hashlib.sha256(f"{FORMAT}\n{identity}\n{len(digests)}\n".encode())
        for item in digests:
            digest.update(item.encode() + b"\n")
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str, n: int) -> Tensor | None:
        """The stored (n, D) features for ``key``, or None (counted as a miss)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        features = None
        if path.is_file():
            try:
                features = load_file(path)["features"]
            except (SafetensorError, OSError, KeyError, ValueError):
                features = None  # unreadable entry: recompute and overwrite
            if features is not None and (features.dim() != 2 or features.shape[0] != n):
                features = None
        if features is None:
            self.misses += 1
        else:
            self.hits += 1
        return features

    def save(self, key: str, features: Tensor, identity: str) -> None:
        from safetensors.torch import save_file

        data = {"features": features.detach().cpu().float().contiguous()}
        meta = {"format": FORMAT, "extractor": identity}
        atomic_write(self.path(key), lambda tmp: save_file(data, tmp, metadata=meta))

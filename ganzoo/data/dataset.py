"""PairDataset: the base of every pairing, and the deterministic CPU part of preprocessing.

A pairing's dataset yields dicts ``{"A", "B", "A_path", "B_path"}`` of float tensors in
[0, 1], already resized the way the reference's ``--preprocess`` resizes (``resize_for``);
the random part (crop, flip) and the normalisation to [-1, 1] run later on the training
device (:mod:`ganzoo.data.augment`), so a dataset item depends only on (index, epoch, seed).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ganzoo.config import AugmentConfig
from ganzoo.data.images import Decoded, convert_channels, open_image, to_tensor
from ganzoo.errors import DataError, GanzooError

_MAKE_POWER_2_BASE = 4  # the reference rounds sizes to a multiple of 4 for preprocess "none"


def image_size(img: Decoded) -> tuple[int, int]:
    """(width, height) of a decoded image, PIL-style."""
    if isinstance(img, Image.Image):
        return img.size
    return img.shape[-1], img.shape[-2]


def target_size(width: int, height: int, augment: AugmentConfig) -> tuple[int, int]:
    """The (width, height) an image of this size is resized to before the random crop."""
    load, crop = augment.load_size, augment.crop_size
    if augment.preprocess == "resize_and_crop":
        return load, load
    if augment.preprocess in ("scale_width", "scale_width_and_crop"):
        if width == load and height >= crop:
            return width, height
        return load, int(max(load * height / width, crop))
    if augment.preprocess == "none":
        base = _MAKE_POWER_2_BASE
        return max(base, int(round(width / base) * base)), max(base, int(round(height / base) * base))
    return width, height  # "crop": the crop itself happens on the device


def resize_for(img: Decoded, augment: AugmentConfig) -> Decoded:
    """Apply the deterministic resize of ``augment.preprocess`` to one image.

    ``resize_and_crop`` resizes to (load_size, load_size); ``scale_width[_and_crop]`` scales
    the width to load_size keeping the aspect ratio, but never below crop_size in height (the
    reference's ``__scale_width``); ``none`` rounds both sides to a multiple of 4 (the
    reference's ``__make_power_2``); ``crop`` leaves the image alone.

    8-bit PIL images are resized by PIL bicubic exactly as the reference. 16-bit tensors are
    resized in float by ``F.interpolate(mode="bicubic", antialias=True)``, which uses PIL's
    kernel (a = -0.5) but does not round to 8 bits; results differ from an 8-bit resize by at
    most about one 8-bit step, and overshoot is clamped to [0, 1].
    """
    width, height = image_size(img)
    new = target_size(width, height, augment)
    if new == (width, height):
        return img
    if isinstance(img, Image.Image):
        return img.resize(new, Image.Resampling.BICUBIC)
    out = F.interpolate(img[None], size=(new[1], new[0]), mode="bicubic", antialias=True, align_corners=False)
    return out[0].clamp(0, 1)


def crop_box(img: Decoded, left: int, right: int) -> Decoded:
    """The columns [left, right) of a decoded image (used to split A|B images)."""
    if isinstance(img, Image.Image):
        return img.crop((left, 0, right, img.size[1]))
    return img[..., left:right].clone()


class PairDataset(Dataset):
    """Base class of the datasets a pairing builds: items of two images, A and B.

    Subclasses implement ``__len__`` and ``__getitem__``; :meth:`load` reads, converts and
    resizes one file. Random choices must come from ``(seed, epoch, index)`` only, so that
    every DataLoader worker and a resumed run see the same items.

    Args:
        augment: the recipe's [augment] section; only its resize part is applied here.
        channels_a: channels of item["A"].
        channels_b: channels of item["B"].
        seed: the run's seed.

    Shape:
        - item["A"]: (channels_a, H, W), float in [0, 1].
        - item["B"]: (channels_b, H', W'), float in [0, 1].

    Attributes:
        aligned: True when A and B of an item are a true pair, so augmentation must crop and
            flip both identically.
    """

    aligned: bool = False

    def __init__(self, *, augment: AugmentConfig, channels_a: int, channels_b: int, seed: int = 0) -> None:
        self.augment = augment
        self.channels_a = channels_a
        self.channels_b = channels_b
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that random pairings depend on.

        Call it before creating the DataLoader iterator of that epoch: workers receive a copy
        of the dataset when the iterator starts (so do not use ``persistent_workers=True``
        with random pairing).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def hold_out(self, n: int, seed: int) -> tuple[PairDataset, PairDataset]:
        """``(the rest, n held out)``: the same dataset split by its files, the held-out ones
        chosen by ``seed``, for validation on images never trained on (``[eval] holdout``).

        Pairings that can split implement it (the built-in ones do); the default raises
        NotImplementedError. Raises ValueError when fewer than ``n + 1`` files are there.
        """
        raise NotImplementedError

    def load(self, path: Path, channels: int) -> Tensor:
        """Read ``path`` with ``channels`` channels and apply :func:`resize_for`."""
        img, _ = open_image(path)
        return to_tensor(resize_for(convert_channels(img, channels, path), self.augment))

    def item(self, a: Tensor, b: Tensor, a_path: Path, b_path: Path) -> dict[str, Any]:
        """The item dict every pairing returns."""
        return {"A": a, "B": b, "A_path": str(a_path), "B_path": str(b_path)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(len={len(self)}, aligned={self.aligned}, channels=({self.channels_a}, "
            f"{self.channels_b}), preprocess={self.augment.preprocess!r})"
        )


def seeded_split(items: list[Any], n: int, seed: int, what: str) -> tuple[list[Any], list[Any]]:
    """``(rest, held)``: ``n`` of ``items`` chosen by ``seed``, both in their original order.
    Raises ValueError naming ``what`` unless at least one item is left."""
    if n >= len(items):
        raise ValueError(f"holding out {n} leaves none of the {len(items)} {what} to train on")
    chosen = set(np.random.default_rng([seed % 2**63, 0x401D]).permutation(len(items))[:n].tolist())
    return ([x for i, x in enumerate(items) if i not in chosen], [x for i, x in enumerate(items) if i in chosen])


def random_index(seed: int, epoch: int, index: int, n: int) -> int:
    """A random integer in [0, n) that depends only on (seed, epoch, index)."""
    rng = np.random.default_rng([seed % 2**63, epoch % 2**63, index])
    return int(rng.integers(n))


class SkipUnreadable(Dataset):
    """``[data] bad_images = "skip"``: an item whose file cannot be read is replaced by the
    next readable one (index + 1, + 2, ... wrapping around), so the substitute depends only on
    (index, epoch) and a resumed run sees the same data.

    Validation is lazy (the real decode in ``__getitem__``, which also catches truncated files
    a header scan would pass), so it costs nothing up front. The message of every file skipped
    on the way travels with the item as ``item["skipped"]``, a JSON list in a string (strings
    survive DataLoader collation and worker processes); the trainer warns once per file.

    Args:
        dataset: the PairDataset to read from.

    Raises:
        DataError: when no item at all can be read.
    """

    def __init__(self, dataset: PairDataset) -> None:
        self.dataset = dataset
        self.aligned = dataset.aligned

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n, skipped = len(self.dataset), []
        for offset in range(n):
            try:
                item = self.dataset[(index + offset) % n]
            except DataError as exc:
                skipped.append(str(exc))
                continue
            item["skipped"] = json.dumps(skipped)
            return item
        raise DataError(
            f'[data] bad_images = "skip": none of the {n} items could be read, so there is nothing to '
            f"train on. The first problem: {skipped[0] if skipped else 'the dataset is empty'}"
        )


def skipped_messages(batch: dict[str, Any]) -> list[str]:
    """The messages of files skipped while loading ``batch`` (see :class:`SkipUnreadable`)."""
    return [msg for packed in batch.get("skipped", ()) for msg in json.loads(packed)]


def unwrap_worker_error(exc: Exception) -> Exception:
    """The user-facing error a DataLoader worker raised, without the worker's traceback.

    A DataLoader re-raises a worker's exception as ``type(exc)("Caught X in DataLoader worker
    process N.\\nOriginal Traceback ...\\nmodule.X: <message>")``; a GanzooError must reach
    the user as its own one message, so this returns ``type(exc)(<message>)``. Any other
    exception is returned unchanged.
    """
    text = str(exc)
    if not (text.startswith("Caught ") and "\nOriginal Traceback" in text):
        return exc
    cls = type(exc)
    _, found, message = text.rpartition(f"\n{cls.__module__}.{cls.__qualname__}: ")
    return cls(message.rstrip("\n")) if found else exc


@contextlib.contextmanager
def loader_batches(loader: DataLoader) -> Iterator[Iterator[Any]]:
    """Iterate a DataLoader for one epoch, as ``with loader_batches(loader) as batches:``.

    A GanzooError raised in a worker process comes out as its own message
    (:func:`unwrap_worker_error`), and the workers are shut down on every way out of the
    block: the traceback of an exception would otherwise keep them alive until exit.
    """
    it = iter(loader)

    def batches() -> Iterator[Any]:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except GanzooError as exc:
                raise unwrap_worker_error(exc) from None
            yield batch

    try:
        yield batches()
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # multi-process iterators only
        if shutdown is not None:
            shutdown()

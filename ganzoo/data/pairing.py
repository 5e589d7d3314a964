"""Built-in pairings: ``unaligned`` (CycleGAN), ``aligned`` (pix2pix A|B images) and ``named``.

Each pairing's ``build(cfg, *, split, data, augment, seed)`` lists the files of one split
under ``data.root`` and returns a :class:`~ganzoo.data.dataset.PairDataset`. File lists are
sorted, then cut to ``data.max_dataset_size`` when it is above 0, as the reference does.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

from ganzoo.components import ComponentSpec
from ganzoo.config import AugmentConfig, DataConfig
from ganzoo.data.dataset import PairDataset, crop_box, image_size, random_index, resize_for, seeded_split
from ganzoo.data.download import download_hint
from ganzoo.data.images import IMAGE_EXTENSIONS, convert_channels, list_images, open_image, to_tensor
from ganzoo.errors import DataError
from ganzoo.hookspecs import hookimpl

SPLITS = ("train", "test", "val")
_TREES = {
    "unaligned": "  {split}A/   images of domain A (any file names)\n  {split}B/   images of domain B\n"
    "  (trainA/ trainB/ for training, testA/ testB/ for testing)",
    "aligned": "  {split}/   A|B images: A in the left half, B in the right half\n"
    "  (train/ for training, test/ or val/ for testing)",
    "named": "  {a_dir}/   images of domain A, e.g. {a_dir}/0001.png\n  {b_dir}/   the partner of each, "
    "same name: {b_dir}/0001.png (the extension may differ)",
}


@dataclasses.dataclass(frozen=True)
class UnalignedConfig:
    """``direction = "BtoA"`` swaps the domains: ``<split>B`` becomes A (the reference's
    --direction for unaligned data). Channels, max_dataset_size and serial_batches come from
    [data]."""

    direction: Literal["AtoB", "BtoA"] = "AtoB"


@dataclasses.dataclass(frozen=True)
class AlignedConfig:
    """``direction = "BtoA"`` makes the right half the input A and the left half the target B."""

    direction: Literal["AtoB", "BtoA"] = "AtoB"


@dataclasses.dataclass(frozen=True)
class NamedConfig:
    """Two folders under the root, ``{split}`` replaced by the split; files pair by name."""

    a_dir: str = "{split}A"
    b_dir: str = "{split}B"

    def __post_init__(self) -> None:
        for key in ("a_dir", "b_dir"):
            try:
                getattr(self, key).format(split="train")
            except (KeyError, IndexError, ValueError) as exc:
                value = getattr(self, key)
                raise ValueError(f"{key} may only use the placeholder {{split}}, got {value!r} ({exc})") from None


class UnalignedDataset(PairDataset):
    """Two independent folders; item i is A[i % len A] with a random B (or B[i % len B])."""

    aligned = False

    def __init__(self, a_paths: list[Path], b_paths: list[Path], *, serial: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a_paths, self.b_paths, self.serial = a_paths, b_paths, serial

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def b_index(self, index: int) -> int:
        """B's index for item ``index``: serial, or drawn from (seed, epoch, index)."""
        if self.serial:
            return index % len(self.b_paths)
        return random_index(self.seed, self.epoch, index, len(self.b_paths))

    def hold_out(self, n: int, seed: int) -> tuple[UnalignedDataset, UnalignedDataset]:
        """``n`` A images and ``n`` B images held out; the held-out set pairs them serially."""
        a_rest, a_held = seeded_split(self.a_paths, n, seed, "A images")
        b_rest, b_held = seeded_split(self.b_paths, n, seed + 1, "B images")
        rest, held = copy.copy(self), copy.copy(self)
        rest.a_paths, rest.b_paths = a_rest, b_rest
        held.a_paths, held.b_paths, held.serial = a_held, b_held, True
        return rest, held

    def __getitem__(self, index: int) -> dict[str, Any]:
        a_path = self.a_paths[index % len(self.a_paths)]
        b_path = self.b_paths[self.b_index(index)]
        return self.item(self.load(a_path, self.channels_a), self.load(b_path, self.channels_b), a_path, b_path)


class AlignedDataset(PairDataset):
    """Side-by-side A|B images split at half width; ``swap`` makes the right half A."""

    aligned = True

    def __init__(self, paths: list[Path], *, swap: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths, self.swap = paths, swap

    def __len__(self) -> int:
        return len(self.paths)

    def hold_out(self, n: int, seed: int) -> tuple[AlignedDataset, AlignedDataset]:
        rest, held = copy.copy(self), copy.copy(self)
        rest.paths, held.paths = seeded_split(self.paths, n, seed, "A|B images")
        return rest, held

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        img, _ = open_image(path)
        width, _height = image_size(img)
        if width < 2:
            raise DataError(f"{path}: image is {width} pixel wide, too narrow to hold A and B side by side. Remove it.")
        # Equal halves (an odd last column is dropped) so aligned crops fit both.
        half = width // 2
        left, right = crop_box(img, 0, half), crop_box(img, half, 2 * half)
        a, b = (right, left) if self.swap else (left, right)
        a = to_tensor(resize_for(convert_channels(a, self.channels_a, path), self.augment))
        b = to_tensor(resize_for(convert_channels(b, self.channels_b, path), self.augment))
        return self.item(a, b, path, path)


class NamedDataset(PairDataset):
    """Pairs of files with the same name in two folders."""

    aligned = True

    def __init__(self, pairs: list[tuple[Path, Path]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def hold_out(self, n: int, seed: int) -> tuple[NamedDataset, NamedDataset]:
        rest, held = copy.copy(self), copy.copy(self)
        rest.pairs, held.pairs = seeded_split(self.pairs, n, seed, "pairs")
        return rest, held

    def __getitem__(self, index: int) -> dict[str, Any]:
        a_path, b_path = self.pairs[index]
        return self.item(self.load(a_path, self.channels_a), self.load(b_path, self.channels_b), a_path, b_path)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _layout_error(folder: Path, root: Path, pairing: str, tree: str, what: str) -> DataError:
    hint = download_hint(root, pairing) or " Check [data] root in the recipe."
    return DataError(f"{folder}: {what}. The {pairing} pairing expects:\n{root}/\n{tree}\n{hint.strip()}")


def _images(root: Path, sub: str, pairing: str, tree: str, max_size: int) -> list[Path]:
    """Sorted images of ``root/sub``; a missing or empty folder is a DataError."""
    if not root.is_dir():
        raise _layout_error(root, root, pairing, tree, "dataset folder ([data] root) not found")
    folder = root / sub
    if not folder.is_dir():
        raise _layout_error(folder, root, pairing, tree, "folder not found")
    paths = list_images(folder)
    if not paths:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(
            f"{folder}: no images found (looked for {exts}, any case; hidden files are skipped). "
            "Put the images there, or check [data] root."
        )
    return paths[:max_size] if max_size > 0 else paths


def _common(data: DataConfig, augment: AugmentConfig, seed: int) -> dict[str, Any]:
    return {"augment": augment, "channels_a": data.channels_a, "channels_b": data.channels_b, "seed": seed}


def build_unaligned(
    cfg: UnalignedConfig, *, split: str, data: DataConfig, augment: AugmentConfig, seed: int
) -> UnalignedDataset:
    """``<root>/<split>A`` and ``<root>/<split>B``, randomly paired per epoch when training.

    Test and val splits pair serially (A[i] with B[i % len B]), as the reference's test
    script forces ``serial_batches``.
    """
    root, tree = Path(data.root), _TREES["unaligned"].format(split=_check_split(split))
    a_paths = _images(root, f"{split}A", "unaligned", tree, data.max_dataset_size)
    b_paths = _images(root, f"{split}B", "unaligned", tree, data.max_dataset_size)
    if cfg.direction == "BtoA":
        a_paths, b_paths = b_paths, a_paths
    serial = data.serial_batches or split != "train"
    return UnalignedDataset(a_paths, b_paths, serial=serial, **_common(data, augment, seed))


def build_aligned(
    cfg: AlignedConfig, *, split: str, data: DataConfig, augment: AugmentConfig, seed: int
) -> AlignedDataset:
    """``<root>/<split>/`` of A|B images; channels_a applies to A after the direction swap."""
    root, tree = Path(data.root), _TREES["aligned"].format(split=_check_split(split))
    paths = _images(root, split, "aligned", tree, data.max_dataset_size)
    return AlignedDataset(paths, swap=cfg.direction == "BtoA", **_common(data, augment, seed))


def _key(folder: Path, path: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def _by_name(folder: Path, paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        key = _key(folder, path)
        if key in found:
            raise DataError(
                f"{folder}: {found[key].name} and {path.name} have the same name, so their partner is ambiguous. "
                "Keep one of them."
            )
        found[key] = path
    return found


def _unmatched(keys: list[str]) -> str:
    shown = ", ".join(keys[:10])
    return f"{shown} (and {len(keys) - 10} more)" if len(keys) > 10 else shown


def build_named(
    cfg: NamedConfig, *, split: str, data: DataConfig, augment: AugmentConfig, seed: int
) -> NamedDataset:
    """``<root>/<a_dir>`` and ``<root>/<b_dir>``; a file pairs with the same name on the other side.

    ``max_dataset_size`` cuts the sorted list of pairs (not each folder, which would unpair them).
    """
    root = Path(data.root)
    a_dir, b_dir = cfg.a_dir.format(split=_check_split(split)), cfg.b_dir.format(split=split)
    tree = _TREES["named"].format(a_dir=a_dir, b_dir=b_dir)
    a_folder, b_folder = root / a_dir, root / b_dir
    a_files = _by_name(a_folder, _images(root, a_dir, "named", tree, 0))
    b_files = _by_name(b_folder, _images(root, b_dir, "named", tree, 0))
    only_a, only_b = sorted(a_files.keys() - b_files.keys()), sorted(b_files.keys() - a_files.keys())
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} file(s) in {a_folder} have no partner in {b_folder}: {_unmatched(only_a)}")
        if only_b:
            parts.append(f"{len(only_b)} file(s) in {b_folder} have no partner in {a_folder}: {_unmatched(only_b)}")
        raise DataError(
            f"{root}: the named pairing matches files by name (without extension), but "
            + "; ".join(parts)
            + ". Give both files of a pair the same name, or move the unpaired files out of these folders."
        )
    pairs = [(a_files[key], b_files[key]) for key in sorted(a_files)]
    if data.max_dataset_size > 0:
        pairs = pairs[: data.max_dataset_size]
    return NamedDataset(pairs, **_common(data, augment, seed))


@hookimpl
def ganzoo_register_pairings() -> list[ComponentSpec]:
    return [
        ComponentSpec("unaligned", UnalignedConfig, build_unaligned, "<split>A and <split>B, randomly paired (CycleGAN)"),
        ComponentSpec("aligned", AlignedConfig, build_aligned, "A|B side-by-side images in <split>/ (pix2pix)"),
        ComponentSpec("named", NamedConfig, build_named, "two folders, files paired by name (pix2pix, no A|B images)"),
    ]

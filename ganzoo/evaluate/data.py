"""The images an evaluation scores: a run's test split at test-time geometry, or two folders.

A run's split gives the inputs to translate, the real images of the target domain (FID's
reference set) and, when the split holds true pairs, each input's ground truth. Pairs come from
the recipe's own pairing when it is aligned, otherwise from test folders whose A and B files
share names (as the built-in glyph sets do). Every image is a float (C, H, W) tensor in [-1, 1].
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from ganzoo.config import Recipe
from ganzoo.data.images import IMAGE_EXTENSIONS, list_images
from ganzoo.errors import DataError, GanzooError
from ganzoo.registry import Registry


@dataclasses.dataclass
class ImageSets:
    """What one direction of an evaluation scores.

    Args:
        inputs: images to translate (or, for two folders, the images scored: the "fakes").
        reals: the target domain's real images, the reference set of FID and KID.
        targets: the ground truth of each input, or None when there are no pairs.
        labels: how messages name ``inputs`` and ``reals``.
        no_pairs: why ``targets`` is None, in a few words.
        pairs_error: the full error for someone who asked for PSNR/SSIM/L1 anyway.
    """

    inputs: list[Tensor]
    reals: list[Tensor]
    targets: list[Tensor] | None
    labels: tuple[str, str]
    no_pairs: str = ""
    pairs_error: str = ""


def _test_geometry(recipe: Recipe):
    # As the reference's test options: images are resized to crop_size, never cropped.
    return dataclasses.replace(recipe.augment, load_size=recipe.augment.crop_size)


def ground_truth_dataset(recipe: Recipe, registry: Registry, split: str):
    """A dataset of true (A, B) pairs for ``split`` at test-time geometry (no crop, no flip)."""
    augment = _test_geometry(recipe)
    spec = registry.get("pairing", recipe.pairing.name)
    dataset = spec.build(recipe.pairing.config, split=split, data=recipe.data, augment=augment, seed=0)
    if dataset.aligned:
        return dataset
    named = registry.get("pairing", "named")
    a_dir, b_dir = f"{split}A", f"{split}B"
    if getattr(recipe.pairing.config, "direction", "AtoB") == "BtoA":
        a_dir, b_dir = b_dir, a_dir
    cfg = named.config_cls(a_dir=a_dir, b_dir=b_dir)
    try:
        return named.build(cfg, split=split, data=recipe.data, augment=augment, seed=0)
    except DataError as exc:
        raise GanzooError(
            f"{recipe.data.root}: no ground truth for split '{split}': the pairing "
            f"'{recipe.pairing.name}' is unpaired and {split}A/{split}B do not share file names "
            f"({str(exc).splitlines()[0]}). Evaluation needs paired test images."
        ) from None


def _signed(image: Tensor) -> Tensor:
    return image * 2 - 1


def split_images(recipe: Recipe, registry: Registry, split: str, direction: str, max_images: int = 0) -> ImageSets:
    """The inputs, real targets and (when paired) ground truth of ``split`` for ``direction``.

    ``max_images`` > 0 keeps the first that many of each set (sorted by file name).
    """
    src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
    labels = (f"the {src} images of split '{split}'", f"the {dst} images of split '{split}'")
    limit = max_images if max_images > 0 else None
    try:
        pairs = ground_truth_dataset(recipe, registry, split)
    except DataError:
        raise
    except GanzooError as exc:
        pairs, pairs_error = None, str(exc)
    if pairs is not None:
        items = [pairs[i] for i in range(len(pairs))[:limit]]
        targets = [_signed(it[dst]) for it in items]
        return ImageSets([_signed(it[src]) for it in items], targets, targets, labels)
    # Unpaired: every image of each side once (the test split pairs A[i] with B[i % len B]).
    spec = registry.get("pairing", recipe.pairing.name)
    dataset = spec.build(recipe.pairing.config, split=split, data=recipe.data, augment=_test_geometry(recipe), seed=0)
    seen: dict[str, dict[str, Tensor]] = {"A": {}, "B": {}}
    for i in range(len(dataset)):
        item = dataset[i]
        for side in ("A", "B"):
            if limit is None or len(seen[side]) < limit:
                seen[side].setdefault(item[f"{side}_path"], item[side])
        if limit is not None and min(len(s) for s in seen.values()) >= limit:
            break
    no_pairs = f"pairing '{recipe.pairing.name}' is unpaired and the {split}A/{split}B file names differ"
    return ImageSets([_signed(x) for x in seen[src].values()], [_signed(x) for x in seen[dst].values()], None,
                     labels, no_pairs, pairs_error)


def folder_files(folder: Path, option: str) -> list[Path]:
    """The image files of a folder given as ``option``; a missing or empty folder is a GanzooError."""
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise GanzooError(f"ganzoo eval {option} {folder}: {what}. Give a folder of images.")
    files = list_images(folder)
    if not files:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise GanzooError(f"ganzoo eval {option} {folder}: no images in this folder (looked for {exts}). "
                          "Point it at the folder that holds the images.")
    return files


def folder_images(fake_dir: Path, real_dir: Path, max_images: int = 0) -> tuple[ImageSets, list[Path], list[Path]]:
    """Two folders as image sets: the fakes as ``inputs``; ``targets`` when every fake has a real
    image of the same name (without extension) and size. Also returns the file lists."""
    from ganzoo.data.images import read_image

    fake_files, real_files = folder_files(fake_dir, "--fake"), folder_files(real_dir, "--real")
    if max_images > 0:
        fake_files, real_files = fake_files[:max_images], real_files[:max_images]

    def read(path: Path) -> Tensor:
        return _signed(read_image(path, 3)[0])

    fakes, reals = [read(p) for p in fake_files], [read(p) for p in real_files]
    by_name = {p.relative_to(real_dir).with_suffix("").as_posix(): x for p, x in zip(real_files, reals)}
    names = [p.relative_to(fake_dir).with_suffix("").as_posix() for p in fake_files]
    targets = [by_name.get(n) for n in names]
    no_pairs = ""
    if any(t is None for t in targets):
        targets, no_pairs = None, f"the files of {fake_dir} and {real_dir} do not pair by name"
    elif any(t.shape != f.shape for t, f in zip(targets, fakes)):
        targets, no_pairs = None, f"files of the same name in {fake_dir} and {real_dir} differ in size"
    pairs_error = (f"ganzoo eval --fake {fake_dir} --real {real_dir}: PSNR, SSIM and L1 need pairs, but {no_pairs}. "
                   "Name each image like its real partner, or use --metrics fid,kid.")
    labels = (f"--fake {fake_dir}", f"--real {real_dir}")
    return ImageSets(fakes, reals, targets, labels, no_pairs, pairs_error), fake_files, real_files


def same_shape_groups(images: list[Tensor]) -> list[list[int]]:
    """Indices of ``images`` grouped by shape, each group in order (for batching)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    return list(groups.values())


def stack(images: list[Tensor], indices: list[int]) -> Tensor:
    return torch.stack([images[i] for i in indices])

"""FID and KID through torchmetrics, on features of the offline FID Inception-v3.

Images become 8-bit RGB first (tensors in [-1, 1] are rounded to 0..255, files are read with
:func:`ganzoo.data.images.read_image`; one channel is replicated, alpha dropped), then the
network resizes each to 299x299 with TensorFlow-1.x-style bilinear interpolation, as
torch-fidelity and the original TF FID do. Features are computed once per set, in batches
with a progress bar, and optionally cached (:class:`~ganzoo.metrics.cache.FeatureCache`);
the distances themselves are torchmetrics' ``FrechetInceptionDistance`` and
``KernelInceptionDistance`` fed with those features.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ganzoo.data.images import IMAGE_EXTENSIONS, list_images, read_image
from ganzoo.metrics.cache import FeatureCache, file_digest, tensor_digest
from ganzoo.metrics.inception import FEATURE_DIMS, MetricsError, extractor_identity, load_fid_extractor

RESIZE = "bilinear to 299x299, TensorFlow 1.x style without antialiasing (torch-fidelity's resize)"
MIN_IMAGES = 2
Images = Tensor | str | os.PathLike | Sequence[str | os.PathLike]


def _image_files(images: str | os.PathLike | Sequence[str | os.PathLike], what: str) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise MetricsError(f"{what} {folder}: not a folder. Pass a folder of images (or a list of image files).")
        files = list_images(folder)
        if not files:
            raise MetricsError(
                f"{what} {folder}: no image files found ({', '.join(sorted(IMAGE_EXTENSIONS))}). "
                "Point it at the folder that holds the images."
            )
        return files
    files = [Path(p) for p in images]
    for path in files:
        if not path.is_file():
            raise MetricsError(f"{what} {path}: no such image file. Check the path.")
    return files


def _as_uint8_rgb(images: Tensor, what: str) -> Tensor:
    """(B, C, H, W) float in [-1, 1] with C in 1..4 -> uint8 (B, 3, H, W)."""
    if images.dim() != 4 or images.shape[1] not in (1, 2, 3, 4):
        raise MetricsError(f"{what}: Expected images of shape (B, C, H, W) with C in 1..4. Got {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise MetricsError(f"{what}: Expected float images in [-1, 1]. Got dtype {images.dtype}.")
    if images.numel():
        low, high = images.min().item(), images.max().item()
        if low < -1.01 or high > 1.01 or low != low:  # low != low: NaN
            raise MetricsError(
                f"{what}: Expected images in [-1, 1] (a generator's tanh output). Got values in "
                f"[{low:.3g}, {high:.3g}]; map them to [-1, 1] first (x * 2 - 1 for [0, 1])."
            )
    colour = images[:, :3] if images.shape[1] >= 3 else images[:, :1].expand(-1, 3, -1, -1)
    return ((colour.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _file_batches(files: list[Path], batch_size: int):
    """uint8 (B, 3, H, W) batches and their indices; files of one size share a batch."""
    for start in range(0, len(files), batch_size):
        by_size: dict[tuple[int, int], list[tuple[int, Tensor]]] = {}
        for index in range(start, min(start + batch_size, len(files))):
            image, _bits = read_image(files[index], channels=3)
            pixels = (image * 255).round().clamp(0, 255).to(torch.uint8)
            by_size.setdefault(tuple(pixels.shape[1:]), []).append((index, pixels))
        for group in by_size.values():
            yield [i for i, _ in group], torch.stack([p for _, p in group])


def image_features(
    images: Images,
    extractor: nn.Module | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> Tensor:
    """Inception pool3 features of a set of images.

    Args:
        images: float tensor (B, C, H, W) in [-1, 1] (C = 1 is replicated to RGB, C = 4 loses
            its alpha), or a folder of image files (searched recursively, any sizes and
            modes), or a list of image files.
        extractor: from :func:`load_fid_extractor`; loaded on ``device`` when None (and only
            if the cache does not already hold the features).
        device: where to run the network when ``extractor`` is None.
        batch_size: images per forward pass.
        cache: a :class:`FeatureCache`; the set is looked up by the content of its images
            and the extractor's identity, and stored after computing.
        progress: show a tqdm bar (on stderr).

    Returns:
        float32 (N, 2048) on the CPU, in the order of the images (files sorted by path).

    Example:
        >>> real = image_features("data/horse2zebra/testB", cache=FeatureCache())
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    is_tensor = isinstance(images, Tensor)
    what = "images" if is_tensor or not isinstance(images, (str, os.PathLike)) else "folder"
    if is_tensor:
        pixels = _as_uint8_rgb(images, what)
        files: list[Path] = []
        count = pixels.shape[0]
    else:
        files = _image_files(images, what)
        count = len(files)

    key = identity = None
    if cache is not None:
        identity = extractor_identity() if extractor is None else getattr(extractor, "identity", None)
        if identity is None:
            raise ValueError("a feature cache needs an extractor with an `identity` (use load_fid_extractor)")
        digests = [tensor_digest(pixels)] if is_tensor else [file_digest(p) for p in files]
        key = cache.key(digests, identity)
        cached = cache.load(key, count)
        if cached is not None:
            return cached

    if extractor is None:
        extractor = load_fid_extractor(device)
    run_on = next(extractor.parameters()).device
    features = torch.empty(count, FEATURE_DIMS)
    if is_tensor:
        batches = ((list(range(s, min(s + batch_size, count))), pixels[s:s + batch_size]) for s in range(0, count, batch_size))
    else:
        batches = _file_batches(files, batch_size)
    from tqdm.auto import tqdm

    label = Path(images).name if what == "folder" else "images"
    with torch.inference_mode(), tqdm(total=count, unit="img", desc=f"FID features ({label})", disable=not progress, leave=False) as bar:
        for indices, batch in batches:
            features[indices] = extractor(batch.to(run_on)).float().cpu()
            bar.update(len(indices))
    if cache is not None:
        cache.save(key, features, identity)
    return features


class _Features(nn.Module):
    """Passes precomputed features to torchmetrics, whose metrics take a module as ``feature``."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.num_features = dims

    def forward(self, x: Tensor) -> Tensor:
        return x


def fid_kid(
    fake_features: Tensor,
    real_features: Tensor,
    *,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
) -> dict:
    """FID and KID between two feature sets, computed by torchmetrics (in float64).

    Args:
        fake_features: (N_fake, D) from :func:`image_features`, e.g. translated test A.
        real_features: (N_real, D), e.g. real test B.
        kid_subset_size: images per KID subset; clipped to the smaller set (with a note).
        kid_subsets: number of random subsets KID averages over.
        seed: seeds the KID subsets, so a score is reproducible.

    Returns:
        ``{"fid", "kid_mean", "kid_std", "n_fake", "n_real", "kid_subset_size", "kid_subsets",
        "notes"}``; ``notes`` is a list of plain-language caveats (possibly empty).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    for name, feats in (("fake_features", fake_features), ("real_features", real_features)):
        if feats.dim() != 2:
            raise MetricsError(f"fid_kid: Expected {name} of shape (N, D). Got {tuple(feats.shape)}.")
        if feats.shape[0] < MIN_IMAGES:
            raise MetricsError(
                f"fid_kid: {name} has {feats.shape[0]} image(s); FID and KID need at least {MIN_IMAGES} "
                "per set (a covariance from one image is undefined). Score more images."
            )
    if fake_features.shape[1] != real_features.shape[1]:
        raise MetricsError(
            f"fid_kid: feature sizes differ (fake {fake_features.shape[1]}, real {real_features.shape[1]}); "
            "compute both with the same extractor."
        )
    if kid_subset_size < 2 or kid_subsets < 1:
        raise ValueError(f"kid_subset_size must be >= 2 and kid_subsets >= 1, got {kid_subset_size}, {kid_subsets}")
    n_fake, n_real = fake_features.shape[0], real_features.shape[0]
    fake, real = fake_features.detach().cpu().double(), real_features.detach().cpu().double()
    notes = []
    if min(n_fake, n_real) < fake.shape[1]:
        notes.append(
            f"FID from fewer images ({min(n_fake, n_real)}) than feature dimensions ({fake.shape[1]}) is "
            "biased upwards; compare only scores computed on the same numbers of images."
        )
    subset = min(kid_subset_size, n_fake, n_real)
    if subset < kid_subset_size:
        notes.append(f"KID subset size clipped from {kid_subset_size} to {subset} (the smaller set has {subset} images).")

    identity = _Features(fake.shape[1])
    fid = FrechetInceptionDistance(feature=identity)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with warnings.catch_warnings():
        # torchmetrics warns that KID keeps all features in memory: here they are already.
        warnings.filterwarnings("ignore", message=".*Kernel Inception Distance.*", category=UserWarning)
        kid = KernelInceptionDistance(feature=identity, subsets=kid_subsets, subset_size=subset)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "n_fake": n_fake,
        "n_real": n_real,
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
        "notes": notes,
    }


def score_folders(
    fake_dir: str | os.PathLike,
    real_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 32,
    kid_subset_size: int = 1000,
    cache: FeatureCache | None = None,
    extractor: nn.Module | None = None,
    progress: bool = True,
) -> dict:
    """FID and KID of the images in ``fake_dir`` against those in ``real_dir``.

    Images may have any size and mode; each is made 8-bit RGB and resized to 299x299 (see
    ``RESIZE``). ``cache`` stores the real set's features only: they are the same from one
    evaluation to the next, while the translations change.

    Returns:
        :func:`fid_kid`'s dict plus ``fake_dir``, ``real_dir`` and ``resize``.

    Raises:
        MetricsError: a folder is missing, empty or holds a single image.
        DataError: an image file cannot be read.
    """
    fake_files = _image_files(fake_dir, "fake folder")
    real_files = _image_files(real_dir, "real folder")
    for what, folder, files in (("fake", fake_dir, fake_files), ("real", real_dir, real_files)):
        if len(files) < MIN_IMAGES:
            raise MetricsError(
                f"{what} folder {folder}: {len(files)} image; FID and KID need at least {MIN_IMAGES} "
                "(and are only stable with hundreds). Add images."
            )
    if extractor is None:
        extractor = load_fid_extractor(device)
    options = {"batch_size": batch_size, "progress": progress}
    fake = image_features(fake_dir, extractor, **options)
    real = image_features(real_dir, extractor, cache=cache, **options)
    scores = fid_kid(fake, real, kid_subset_size=kid_subset_size)
    return {**scores, "fake_dir": str(fake_dir), "real_dir": str(real_dir), "resize": RESIZE}

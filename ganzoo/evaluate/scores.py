"""The yardsticks: PSNR, SSIM and L1 against ground truth, FID and KID against the real set.

FID and KID run on the offline FID Inception-v3 of :mod:`ganzoo.metrics`, loaded once per
:class:`FeatureScores` and shared by every run and direction of one ``ganzoo eval``. Real
images (the targets and the untranslated inputs) have their features cached by content, and
a pair of feature sets is scored once, so runs side by side on the same data share the
baseline's score.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ganzoo.evaluate.data import same_shape_groups, stack
from ganzoo.metrics import FeatureCache, MetricsUnavailableError, fid_kid, image_features
from ganzoo.metrics import load_fid_extractor as _load_fid_extractor

PIXEL = ("psnr", "ssim", "l1")
FEATURE = ("fid", "kid")
ALL = (*FEATURE, *PIXEL)
MIN_IMAGES = 2
KID_SUBSETS = 100


def _metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image PSNR, SSIM and L1 for batches in [0, 1]."""
    import kornia.metrics

    mse = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return {
        "psnr": 10 * torch.log10(1.0 / mse),
        "ssim": kornia.metrics.ssim(pred, target, window_size=11).flatten(1).mean(1),
        "l1": (pred - target).abs().flatten(1).mean(1),
    }


def pixel_scores(images: list[Tensor], targets: list[Tensor], wanted: tuple[str, ...], batch_size: int = 16) -> dict:
    """Mean PSNR (dB), SSIM and L1 (on [0, 1]) of images in [-1, 1] against their targets."""
    sums = dict.fromkeys(wanted, 0.0)
    for group in same_shape_groups(images):
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            values = _metrics((stack(images, chunk) + 1) / 2, (stack(targets, chunk) + 1) / 2)
            for key in wanted:
                sums[key] += float(values[key].sum())
    return {key: total / len(images) for key, total in sums.items()}


def load_fid_extractor(device):
    """The FID Inception (a seam: tests replace it to share one network between commands)."""
    return _load_fid_extractor(device)


class FeatureScores:
    """FID and KID for one evaluation session: the network, the feature cache and the scores.

    Args:
        device: where Inception runs.
        cache: stores the features of real image sets (None: no cache).
        progress: show a progress bar while computing features.

    Example:
        >>> scores = FeatureScores("cpu", FeatureCache())
        >>> scores.available()          # None, or why FID/KID cannot be computed
        >>> scores.score(scores.features(fakes), scores.features(reals, real=True), ("fid", "kid"))
    """

    def __init__(self, device: torch.device | str, cache: FeatureCache | None = None, *, progress: bool = True) -> None:
        self.device, self.cache, self.progress = device, cache, progress
        self._extractor = None
        self._missing: str | None = None
        self._scored: dict[tuple, dict] = {}

    def available(self) -> str | None:
        """None when FID/KID can be computed, else the one-line reason with the install command."""
        if self._extractor is None and self._missing is None:
            try:
                self._extractor = load_fid_extractor(self.device)
            except MetricsUnavailableError as exc:
                self._missing = str(exc).removeprefix("FID/KID: ")
        return self._missing

    @property
    def cache_counts(self) -> tuple[int, int]:
        return (self.cache.hits, self.cache.misses) if self.cache is not None else (0, 0)

    def features(self, images: list[Tensor], *, real: bool = False) -> Tensor:
        """(N, 2048) features of images in [-1, 1] (any sizes); real sets go through the cache."""
        if self.available() is not None:
            raise MetricsUnavailableError(f"FID/KID: {self._missing}")
        out = torch.empty(len(images), 2048)
        for group in same_shape_groups(images):
            out[group] = image_features(stack(images, group), self._extractor, cache=self.cache if real else None,
                                        progress=self.progress)
        return out

    def file_features(self, files, *, real: bool = False) -> Tensor:
        """Features of image files, cached by the files' bytes for real sets."""
        if self.available() is not None:
            raise MetricsUnavailableError(f"FID/KID: {self._missing}")
        return image_features(files, self._extractor, cache=self.cache if real else None, progress=self.progress)

    def score(self, fake: Tensor, real: Tensor, wanted: tuple[str, ...]) -> tuple[dict, list[str]]:
        """``{"fid", "kid_mean", "kid_std"}`` (those wanted) and torchmetrics' caveats.

        A pair of feature sets already scored in this session is not scored again.
        """
        from ganzoo.metrics.cache import tensor_digest

        key = (tensor_digest(fake), tensor_digest(real), "fid" in wanted)
        if key not in self._scored:
            # KID alone skips FID's 2048x2048 eigendecomposition, the slow part (seconds per score)
            self._scored[key] = fid_kid(fake, real, kid_subsets=KID_SUBSETS) if "fid" in wanted else _kid(fake, real)
        found = self._scored[key]
        scores = {"fid": found["fid"]} if "fid" in wanted else {}
        if "kid" in wanted:
            scores.update({key: found[key] for key in ("kid_mean", "kid_std", "kid_subset_size")})
        return scores, list(found["notes"])


def _kid(fake: Tensor, real: Tensor, subset_size: int = 1000, seed: int = 0) -> dict:
    """KID as :func:`ganzoo.metrics.fid_kid` computes it (torchmetrics, same subsets and seed), without FID."""
    from torchmetrics.image.kid import KernelInceptionDistance

    from ganzoo.metrics.fid import _Features

    subset = min(subset_size, fake.shape[0], real.shape[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Kernel Inception Distance.*", category=UserWarning)
        kid = KernelInceptionDistance(feature=_Features(fake.shape[1]), subsets=KID_SUBSETS, subset_size=subset)
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    notes = [f"KID subset size clipped from {subset_size} to {subset} (the smaller set has {subset} images)."]
    return {"kid_mean": float(mean), "kid_std": float(std), "kid_subset_size": subset,
            "notes": notes if subset < subset_size else []}


def too_few(count: int, what: str) -> str | None:
    """Why FID/KID cannot score a set of ``count`` images, or None."""
    if count < MIN_IMAGES:
        return (f"{what} has {count} image(s); FID and KID need at least {MIN_IMAGES} per set "
                "(and are only stable with hundreds)")
    return None



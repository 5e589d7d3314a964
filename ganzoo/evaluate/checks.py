"""Warnings that save runs: a generator that copies its input, or whose outputs are all alike.

Both are measured on pixels in [-1, 1] (range 2): the translation distance is the mean
|translation - input| as a fraction of that range; the spread of a set is the mean L1 distance
between two of its images, each shrunk to 32x32 so that the cost stays small and texture noise
does not hide a collapse. A translation FID within noise of the untranslated inputs' (KID
means within their standard deviations, FID within 1%) also reads as copying.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

COPY_FRACTION = 0.01  # of the pixel range: below this a "translation" is the input
COLLAPSE_RATIO = 0.1  # outputs' spread below this fraction of the inputs': one output for all
SPREAD_IMAGES = 64
RANGE = 2.0


def translation_distance(inputs: list[Tensor], fakes: list[Tensor]) -> float:
    """Mean |fake - input| as a fraction of the pixel range (channel means when channel counts differ)."""
    total = 0.0
    for x, y in zip(inputs, fakes):
        if x.shape[0] != y.shape[0]:
            x, y = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
        total += float((y - x).abs().mean())
    return total / len(inputs) / RANGE


def spread(images: list[Tensor]) -> float | None:
    """Mean L1 distance between two distinct images of the set (first 64, at 32x32, grey), or None for one image."""
    images = images[:SPREAD_IMAGES]
    if len(images) < 2:
        return None
    small = torch.stack([F.adaptive_avg_pool2d(x.float().mean(0, keepdim=True), 32) for x in images]).flatten(1)
    distances = torch.cdist(small, small, p=1) / small.shape[1]
    n = len(images)
    return float(distances.sum() / (n * (n - 1)))


def copy_and_collapse(subject: str, stats: dict, translated: dict, baseline: dict | None, *,
                      reference: str = "the inputs") -> list[str]:
    """Plain-words warnings from the distances in ``stats`` and the scores of translations and inputs.

    ``subject`` names the images checked ("AtoB outputs"); ``reference`` the set whose spread
    ``stats["input_spread"]`` is.
    """
    warnings = []
    distance = stats.get("translation_distance")
    if distance is not None and distance < COPY_FRACTION:
        warnings.append(
            f"warning: {subject} are nearly identical to the inputs (mean |translation - input| is "
            f"{distance:.2%} of the pixel range, below {COPY_FRACTION:.0%}): the generator copies its input instead "
            "of translating. Train longer, or lower the identity/cycle weights that make copying the easy answer."
        )
    elif baseline and _within_noise(translated, baseline):
        warnings.append(
            f"warning: the FID of {subject}, {translated['fid']:.2f}, is within noise of the untranslated inputs' "
            f"{baseline['fid']:.2f} (KID {translated['kid_mean']:.4f} vs {baseline['kid_mean']:.4f}): the generator "
            "changes nothing FID can see and may be copying its input. Train longer, or check that A and B differ."
        )
    outputs, inputs = stats.get("output_spread"), stats.get("input_spread")
    if outputs is not None and inputs and outputs < COLLAPSE_RATIO * inputs:
        warnings.append(
            f"warning: {subject} are nearly all alike (they differ from each other by {outputs:.4f} on "
            f"average, {outputs / inputs:.1%} of what {reference} differ by, {inputs:.4f}): the generator gives one "
            "output whatever the input (mode collapse). Resume from an earlier checkpoint, or lower the learning rate."
        )
    return warnings


def _within_noise(translated: dict, baseline: dict) -> bool:
    if not {"fid", "kid_mean", "kid_std"} <= translated.keys() & baseline.keys():
        return False
    fid_close = abs(translated["fid"] - baseline["fid"]) <= 0.01 * max(baseline["fid"], 1.0)
    kid_noise = translated["kid_std"] + baseline["kid_std"]
    return fid_close and abs(translated["kid_mean"] - baseline["kid_mean"]) <= kid_noise

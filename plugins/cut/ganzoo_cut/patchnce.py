"""The PatchNCE loss of CUT (Park et al. 2020, eq. 2-3), as the reference computes it.

A query patch of the output should match the key patch of the input at the same position
(the positive) better than the keys at other positions (the negatives). Per query: logits
``[q.k+, q.k-_1, ..., q.k-_N] / T``, cross-entropy with the positive as class 0. The key's own
position among the negatives is masked with -10 (cosine similarities live in [-1, 1], so
exp(-10 / T) is nothing). Keys are detached: gradients reach the generator and the patch
sampler only through the queries.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_MASKED = -10.0  # the reference's fill value for a query's similarity to its own key


def patch_nce_loss(
    feat_q: Tensor,
    feat_k: Tensor,
    *,
    batch_size: int,
    temperature: float = 0.07,
    all_negatives_from_minibatch: bool = False,
) -> Tensor:
    """Per-query PatchNCE loss, no reduction.

    Args:
        feat_q: queries ``(B * P, D)``, image-major (as :class:`~ganzoo_cut.sampler.PatchSampler`
            returns them), normally L2-normalised.
        feat_k: keys at the same positions, same shape; detached here.
        batch_size: B, the number of images the rows come from.
        temperature: the reference's ``nce_T``.
        all_negatives_from_minibatch: negatives from every image of the batch (``B * P - 1``
            each) instead of only the query's own image (``P - 1``); the reference's
            ``--nce_includes_all_negatives_from_minibatch``, meant for single-image training.

    Returns:
        ``(B * P,)`` losses.

    Example:
        >>> q = F.normalize(torch.randn(2 * 16, 8), dim=1)
        >>> patch_nce_loss(q, q.clone(), batch_size=2).shape
        torch.Size([32])
    """
    if feat_q.dim() != 2 or feat_q.shape != feat_k.shape:
        raise ValueError(
            f"Expected feat_q and feat_k of the same shape (B * P, D). Got {tuple(feat_q.shape)} and "
            f"{tuple(feat_k.shape)}."
        )
    n, dim = feat_q.shape
    if batch_size < 1 or n % batch_size:
        raise ValueError(f"Expected {n} rows to split into batch_size={batch_size} images of equal patch counts.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    feat_k = feat_k.detach()
    # Positive logits: q_i . k_i, one per row (a batched 1xD @ Dx1 product).
    l_pos = torch.bmm(feat_q.view(n, 1, dim), feat_k.view(n, dim, 1)).view(n, 1)
    # Negative logits: every query against every key of its group (one image, or all of them).
    groups = 1 if all_negatives_from_minibatch else batch_size
    q = feat_q.view(groups, -1, dim)
    k = feat_k.view(groups, -1, dim)
    per_group = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    own = torch.eye(per_group, device=feat_q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(own, _MASKED).view(-1, per_group)
    logits = torch.cat((l_pos, l_neg), dim=1) / temperature
    target = torch.zeros(n, dtype=torch.long, device=feat_q.device)
    return F.cross_entropy(logits, target, reduction="none")


def multilayer_patch_nce_loss(
    feats_q: Sequence[Tensor],
    feats_k: Sequence[Tensor],
    *,
    batch_size: int,
    weight: float = 1.0,
    temperature: float = 0.07,
    all_negatives_from_minibatch: bool = False,
) -> Tensor:
    """CUT's NCE term: the mean over layers of ``mean(patch_nce_loss(q_l, k_l) * weight)``.

    The weight (``lambda_NCE``) multiplies the per-query losses before the mean, in the
    reference's order of operations.

    Args:
        feats_q: per layer, the queries (from the translated image).
        feats_k: per layer, the keys (from the source image).
        batch_size, temperature, all_negatives_from_minibatch: as :func:`patch_nce_loss`.
        weight: the reference's ``lambda_NCE``.

    Returns:
        A scalar.
    """
    if not feats_q or len(feats_q) != len(feats_k):
        raise ValueError(
            f"Expected as many query layers as key layers (at least 1). Got {len(feats_q)} and {len(feats_k)}."
        )
    total: Tensor | float = 0.0
    for q, k in zip(feats_q, feats_k):
        loss = patch_nce_loss(
            q, k, batch_size=batch_size, temperature=temperature,
            all_negatives_from_minibatch=all_negatives_from_minibatch,
        )
        total = total + (loss * weight).mean()
    return total / len(feats_q)

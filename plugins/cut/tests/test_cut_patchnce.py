"""PatchNCE against a straightforward computation: one query at a time, in float64, with math.

For query i of image b the reference's logits are its positive q_i . k_i, then q_i . k_m for
every key m of the negative pool (its own image, or the whole minibatch) in order, with the
query's own position replaced by -10, all divided by T; the loss is -log softmax(logits)[0].
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganzoo_cut.patchnce import multilayer_patch_nce_loss, patch_nce_loss


def unit_rows(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def loop_loss(q, k, batch_size, temperature, all_negatives):
    q, k = q.double().tolist(), k.double().tolist()
    n = len(q)
    per_image = n // batch_size
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    losses = []
    for i in range(n):
        pool = range(n) if all_negatives else range(i // per_image * per_image, (i // per_image + 1) * per_image)
        logits = [dot(q[i], k[i])] + [-10.0 if m == i else dot(q[i], k[m]) for m in pool]
        logits = [v / temperature for v in logits]
        top = max(logits)
        losses.append(-(logits[0] - top - math.log(sum(math.exp(v - top) for v in logits))))
    return torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("all_negatives", [False, True])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_a_loop_over_patches(batch_size, all_negatives, temperature):
    n = batch_size * 6
    q, k = unit_rows(n, 8, 0), unit_rows(n, 8, 1)
    k = F.normalize(k + 2 * q, dim=1)  # make positives likelier than chance, so the loss is not flat
    got = patch_nce_loss(q, k, batch_size=batch_size, temperature=temperature,
                         all_negatives_from_minibatch=all_negatives)
    assert got.shape == (n,)
    torch.testing.assert_close(got.double(), loop_loss(q, k, batch_size, temperature, all_negatives),
                               atol=1e-4, rtol=1e-5)


def test_negative_pools_differ_only_with_several_images():
    q, k = unit_rows(8, 4, 2), unit_rows(8, 4, 3)
    one = patch_nce_loss(q, k, batch_size=1)
    assert torch.equal(one, patch_nce_loss(q, k, batch_size=1, all_negatives_from_minibatch=True))
    two = patch_nce_loss(q, k, batch_size=2)
    assert (one > two).all()  # more negatives, larger loss


def test_default_temperature_is_cuts():
    q, k = unit_rows(6, 4, 4), unit_rows(6, 4, 5)
    torch.testing.assert_close(patch_nce_loss(q, k, batch_size=2), patch_nce_loss(q, k, batch_size=2, temperature=0.07))


def test_keys_are_detached():
    q = unit_rows(6, 4, 6).requires_grad_()
    k = unit_rows(6, 4, 7).requires_grad_()
    patch_nce_loss(q, k, batch_size=2).sum().backward()
    assert q.grad is not None and k.grad is None


def test_multilayer_loss_is_the_mean_over_layers_of_weighted_means():
    qs = [unit_rows(8, 4, s) for s in (0, 1, 2)]
    ks = [unit_rows(8, 4, s) for s in (3, 4, 5)]
    got = multilayer_patch_nce_loss(qs, ks, batch_size=2, weight=10.0)
    per_layer = [10.0 * loop_loss(q, k, 2, 0.07, False).mean() for q, k in zip(qs, ks)]
    assert got.dim() == 0
    assert got.item() == pytest.approx(sum(per_layer).item() / 3, rel=1e-5)


@pytest.mark.parametrize("q, k, kwargs, match", [
    (torch.rand(6, 4), torch.rand(6, 5), {}, "same shape"),
    (torch.rand(6, 4, 1), torch.rand(6, 4, 1), {}, "same shape"),
    (torch.rand(6, 4), torch.rand(6, 4), {"batch_size": 4}, "batch_size=4"),
    (torch.rand(6, 4), torch.rand(6, 4), {"temperature": 0.0}, "temperature"),
])
def test_errors(q, k, kwargs, match):
    with pytest.raises(ValueError, match=match):
        patch_nce_loss(q, k, **{"batch_size": 2, **kwargs})
    with pytest.raises(ValueError, match="as many query layers"):
        multilayer_patch_nce_loss([q], [], batch_size=2)

"""Device-side augmentation: aligned pairs share crops and flips, unaligned ones do not."""
from __future__ import annotations

import pytest
import torch

from ganzoo.config import AugmentConfig
from ganzoo.data import build_augment, denormalize
from ganzoo.data.augment import normalize
from ganzoo.errors import DataError

CROP = AugmentConfig(preprocess="resize_and_crop", load_size=12, crop_size=8, flip=True)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _windows(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Every size x size window of x (C, H, W), and its mirror image."""
    out = []
    for top in range(x.shape[-2] - size + 1):
        for left in range(x.shape[-1] - size + 1):
            w = x[:, top : top + size, left : left + size]
            out += [w, w.flip(-1)]
    return out


def test_aligned_identical_inputs_give_identical_outputs() -> None:
    x = torch.rand(16, 3, 12, 12)
    aug = build_augment(CROP, aligned=True, train=True)
    out_a, out_b = aug(x, x.clone())
    assert out_a.shape == out_b.shape == (16, 3, 8, 8)
    assert torch.equal(out_a, out_b)
    assert out_a.min() >= -1 and out_a.max() <= 1
    # each sample got its own crop/flip, and each is an exact window of its input
    assert len({tuple(o.flatten()[:5].tolist()) for o in out_a}) > 1
    for i in range(4):
        assert any(torch.equal(denormalize(out_a[i]), w) for w in _windows(x[i], 8))


def test_aligned_with_different_channel_counts() -> None:
    x = torch.rand(8, 3, 12, 12)
    out_a, out_b = build_augment(CROP, aligned=True, train=True)(x, x[:, :1].clone())
    assert out_a.shape == (8, 3, 8, 8) and out_b.shape == (8, 1, 8, 8)
    assert torch.equal(out_a[:, :1], out_b)


def test_unaligned_params_are_independent() -> None:
    x = torch.rand(16, 3, 12, 12)
    out_a, out_b = build_augment(CROP, aligned=False, train=True)(x, x.clone())
    assert out_a.shape == out_b.shape == (16, 3, 8, 8)
    differing = sum(not torch.equal(a, b) for a, b in zip(out_a, out_b))
    assert differing > 0
    unaligned_channels = build_augment(CROP, aligned=False, train=True)(x, torch.rand(16, 1, 10, 14))
    assert unaligned_channels[1].shape == (16, 1, 8, 8)


def test_flip_only_and_test_mode() -> None:
    x = torch.rand(6, 3, 10, 14)
    flip_only = AugmentConfig(preprocess="scale_width", load_size=14, crop_size=8, flip=True)
    out_a, out_b = build_augment(flip_only, aligned=True, train=True)(x, x.clone())
    assert out_a.shape == (6, 3, 10, 14) and torch.equal(out_a, out_b)
    for o, i in zip(denormalize(out_a), x):
        assert torch.allclose(o, i) or torch.allclose(o, i.flip(-1))
    test_a, test_b = build_augment(CROP, aligned=True, train=False)(x, x[:, :1])
    assert torch.equal(test_a, x * 2 - 1) and test_b.shape == (6, 1, 10, 14)
    none = AugmentConfig(preprocess="none", flip=False)
    assert torch.equal(build_augment(none, aligned=False, train=True)(x, x)[0], x * 2 - 1)


def test_errors() -> None:
    aug = build_augment(CROP, aligned=True, train=True)
    with pytest.raises(DataError, match=r"crop_size = 8: larger than the real_a images \(6x6"):
        aug(torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6))
    with pytest.raises(ValueError, match=r"Expected real_b of shape \(B, C, H, W\). Got \(3, 12, 12\)"):
        aug(torch.rand(2, 3, 12, 12), torch.rand(3, 12, 12))
    with pytest.raises(ValueError, match="same batch size, height and width"):
        aug(torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 13))


def test_denormalize_inverts_normalize() -> None:
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(denormalize(normalize(x)), x)
    assert denormalize(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]

"""The random part of preprocessing, on the training device with Kornia: crop, flip, normalise.

Datasets deliver images in [0, 1], already resized (:func:`ganzoo.data.dataset.resize_for`).
For aligned pairs one ``AugmentationSequential`` called with both images (``data_keys`` of
two inputs) samples one parameter set per sample and applies it to A and B, even when
their channel counts differ. Unaligned A and B are augmented by separate calls, so their
parameters are independent. Randomness comes from torch's global generator.
"""
from __future__ import annotations

from typing import Callable

import kornia.augmentation as K
from torch import Tensor

from ganzoo.config import AugmentConfig
from ganzoo.errors import DataError

PairTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def normalize(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1], the range the generators' tanh produces."""
    return x * 2.0 - 1.0


def denormalize(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped, for saving and viewing."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


class PairAugment:
    """Random crop and horizontal flip of a batch pair, then normalisation to [-1, 1].

    Args:
        augment: the recipe's [augment] section.
        aligned: apply the same crop and flip to A and B of each sample.
        train: False gives normalisation only (test time).

    Shape:
        - real_a: (B, C_a, H, W) in [0, 1]; real_b: (B, C_b, H', W') in [0, 1].
        - Output: (B, C_a, crop, crop) and (B, C_b, crop, crop) in [-1, 1] when cropping,
          else the input sizes.

    Example:
        >>> aug = PairAugment(AugmentConfig(), aligned=True, train=True)
        >>> real_a, real_b = aug(batch["A"].to(device), batch["B"].to(device))
    """

    def __init__(self, augment: AugmentConfig, *, aligned: bool, train: bool) -> None:
        self.augment, self.aligned, self.train = augment, aligned, train
        self.crop = train and "crop" in augment.preprocess
        ops: list[K.GeometricAugmentationBase2D] = []
        if self.crop:
            ops.append(K.RandomCrop((augment.crop_size, augment.crop_size)))
        if train and augment.flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        self.ops: K.AugmentationSequential | None = None
        if ops:
            keys = ["input", "input"] if aligned else ["input"]
            self.ops = K.AugmentationSequential(*ops, data_keys=keys)

    def _check(self, name: str, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"Expected {name} of shape (B, C, H, W). Got {tuple(x.shape)}.")
        size = self.augment.crop_size
        if self.crop and (x.shape[-2] < size or x.shape[-1] < size):
            raise DataError(
                f"[augment] crop_size = {size}: larger than the {name} images ({x.shape[-2]}x{x.shape[-1]} "
                f'after preprocess "{self.augment.preprocess}"). Lower crop_size, or use preprocess = '
                '"resize_and_crop" with load_size >= crop_size.'
            )

    def __call__(self, real_a: Tensor, real_b: Tensor) -> tuple[Tensor, Tensor]:
        self._check("real_a", real_a)
        self._check("real_b", real_b)
        if self.ops is not None:
            if self.aligned:
                if real_a.shape[0] != real_b.shape[0] or real_a.shape[-2:] != real_b.shape[-2:]:
                    raise ValueError(
                        "Expected real_a and real_b of the same batch size, height and width for an aligned "
                        f"pair. Got {tuple(real_a.shape)} and {tuple(real_b.shape)}."
                    )
                real_a, real_b = self.ops(real_a, real_b)
            else:
                real_a, real_b = self.ops(real_a), self.ops(real_b)
        return normalize(real_a), normalize(real_b)

    def __repr__(self) -> str:
        return f"PairAugment(aligned={self.aligned}, train={self.train}, ops={self.ops})"


def build_augment(augment: AugmentConfig, *, aligned: bool, train: bool) -> PairTransform:
    """The device-side transform for a batch pair: see :class:`PairAugment`."""
    return PairAugment(augment, aligned=aligned, train=train)

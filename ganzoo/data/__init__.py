"""Data: image files (8- and 16-bit), the pairings that turn folders into datasets of (A, B)
items, the device-side augmentation, the built-in glyph dataset and dataset downloads.

Datasets yield images in [0, 1] already resized as the recipe's [augment] section says;
:func:`build_augment` then crops, flips and normalises whole batches on the training device.
"""
from __future__ import annotations

from ganzoo.data.augment import build_augment, denormalize
from ganzoo.data.dataset import PairDataset
from ganzoo.data.images import list_images, read_image, write_image

__all__ = ["PairDataset", "build_augment", "denormalize", "list_images", "read_image", "write_image"]

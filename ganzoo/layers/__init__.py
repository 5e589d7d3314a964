"""Reusable network blocks for plugins: norms, weight init, the ResNet block and PatchGAN.

Each block reproduces the reference pix2pix/CycleGAN layout module for module, so state_dict
keys (and published checkpoints) carry over unchanged.
"""
from __future__ import annotations

from ganzoo.layers.checks import check_image
from ganzoo.layers.init import INIT_TYPES, InitType, check_init, init_weights
from ganzoo.layers.norm import NORM_TYPES, NormType, check_norm, norm_layer, strip_legacy_norm_keys, use_bias
from ganzoo.layers.patchgan import NLayerDiscriminator, PixelDiscriminator
from ganzoo.layers.resnet_block import PADDING_TYPES, PaddingType, ResnetBlock, check_padding

__all__ = [
    "INIT_TYPES",
    "NORM_TYPES",
    "PADDING_TYPES",
    "InitType",
    "NLayerDiscriminator",
    "NormType",
    "PaddingType",
    "PixelDiscriminator",
    "ResnetBlock",
    "check_image",
    "check_init",
    "check_norm",
    "check_padding",
    "init_weights",
    "norm_layer",
    "strip_legacy_norm_keys",
    "use_bias",
]

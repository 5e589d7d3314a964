"""pix2pix for ganzoo: U-Net generators and the pix2pix training method.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, hookimpl
from ganzoo_pix2pix.generator import GENERATORS
from ganzoo_pix2pix.objective import Pix2Pix, Pix2PixConfig


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            "pix2pix", Pix2PixConfig, Pix2Pix,
            "paired translation: conditional GAN on concat(A, B) + lambda_l1 * L1",
        )
    ]

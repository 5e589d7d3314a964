"""ganzoo-timm-unet: the ``timm_unet`` generator, a U-Net on any timm CNN backbone.

An example third-party ganzoo plugin. It reaches ganzoo only through the ``ganzoo``
entry-point group and the public API; copy this package to start your own.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, hookimpl
from ganzoo_timm_unet.generator import TimmUnetConfig, build_timm_unet


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            "timm_unet", TimmUnetConfig, build_timm_unet,
            "U-Net with a timm encoder (backbone = resnet18, efficientnet_lite0, ...)",
        )
    ]

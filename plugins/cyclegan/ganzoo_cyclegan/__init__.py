"""CycleGAN for ganzoo: ResNet generators and the CycleGAN training method.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, hookimpl
from ganzoo_cyclegan.generator import GENERATORS
from ganzoo_cyclegan.objective import CycleGAN, CycleGANConfig


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            "cyclegan", CycleGANConfig, CycleGAN,
            "unpaired translation: two generators, cycle + identity + GAN losses, image pools",
        )
    ]

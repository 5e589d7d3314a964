"""CycleGAN for ganzoo: ResNet generators and the CycleGAN training method.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, MethodSpec, hookimpl
from ganzoo_cyclegan.generator import GENERATORS
from ganzoo_cyclegan.reference import PRETRAINED, read_resnet
from ganzoo_cyclegan.method import CycleGAN, CycleGANConfig


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_methods() -> list[MethodSpec]:
    return [
        MethodSpec(
            "cyclegan", CycleGANConfig, CycleGAN,
            "unpaired translation: two generators, cycle + identity + GAN losses, image pools",
            sections={"generator": "generator", "discriminator": "discriminator", "loss": "loss"},
            reference_files={n: f"{{epoch}}_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")},
            example={"generator": {"name": "resnet_6blocks", "ngf": 4},
                     "discriminator": {"name": "patchgan_70", "ndf": 4}, "loss": {"name": "lsgan"}},
            paired=False, monitor="G",
        )
    ]


@hookimpl
def ganzoo_read_reference_state(state, kind: str, source: str):
    return read_resnet(state, source) if kind == "generator" else None


@hookimpl
def ganzoo_register_pretrained():
    return list(PRETRAINED)

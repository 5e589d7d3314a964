"""pix2pix for ganzoo: U-Net generators and the pix2pix training method.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, MethodSpec, hookimpl
from ganzoo_pix2pix.generator import GENERATORS
from ganzoo_pix2pix.reference import PRETRAINED, read_unet
from ganzoo_pix2pix.method import Pix2Pix, Pix2PixConfig


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_methods() -> list[MethodSpec]:
    return [
        MethodSpec(
            "pix2pix", Pix2PixConfig, Pix2Pix,
            "paired translation: conditional GAN on concat(A, B) + lambda_l1 * L1",
            sections={"generator": "generator", "discriminator": "discriminator", "loss": "loss"},
            reference_files={n: f"{{epoch}}_net_{n}.pth" for n in ("G", "D")},
            example={"generator": {"name": "unet", "num_downs": 5, "ngf": 4},
                     "discriminator": {"name": "patchgan_70", "ndf": 4}, "loss": {"name": "vanilla"}},
            paired=True, monitor="G",
        )
    ]


@hookimpl
def ganzoo_read_reference_state(state, kind: str, source: str):
    return read_unet(state, source) if kind == "generator" else None


@hookimpl
def ganzoo_register_pretrained():
    return list(PRETRAINED)

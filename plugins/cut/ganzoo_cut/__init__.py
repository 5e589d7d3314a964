"""CUT and FastCUT for ganzoo (Park et al. 2020): contrastive unpaired translation.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin. So far it
registers the networks (anti-aliased ResNet generators and PatchGANs); the patch sampler F
(:mod:`ganzoo_cut.sampler`), the PatchNCE loss (:mod:`ganzoo_cut.patchnce`) and the
reference-checkpoint helpers (:mod:`ganzoo_cut.reference`) wait for the method that uses them.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, hookimpl
from ganzoo_cut.discriminator import DISCRIMINATORS
from ganzoo_cut.generator import GENERATORS


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_discriminators() -> list[ComponentSpec]:
    return list(DISCRIMINATORS)

"""ComponentSpec: what a registration hook returns for one named component."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

# kind -> plural, as used in hook names (ganzoo_register_<plural>) and `ganzoo list <plural>`
KINDS = {"generator": "generators", "discriminator": "discriminators", "loss": "losses",
         "pairing": "pairings", "method": "methods"}


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """One registered component.

    Args:
        name: unique snake_case name within its kind, architecture first, size last
            (``resnet_9blocks``, ``unet_256``, ``patchgan_70``).
        config_cls: a dataclass; the keys of the recipe section (minus ``name``) build it.
        build: called with an instance of ``config_cls`` plus keyword arguments that depend on
            the kind (see ``docs/plugins.md``) and returns the component.
        summary: one line shown by ``ganzoo list``.

    Example:
        >>> ComponentSpec("resnet_9blocks", ResnetConfig, build_resnet, "ResNet, 9 blocks")
    """

    name: str
    config_cls: type
    build: Callable[..., Any]
    summary: str = ""

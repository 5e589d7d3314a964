"""What registration hooks return: ComponentSpec (one named component), KindSpec (a kind of
component a plugin defines) and MethodSpec (a training method and the recipe sections it needs)."""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Callable, Mapping

# The kinds ganzoo defines, kind -> plural as used in hook names (ganzoo_register_<plural>)
# and `ganzoo list <plural>`. Plugins add kinds with ganzoo_register_kinds.
BUILTIN_KINDS = {"generator": "generators", "discriminator": "discriminators", "loss": "losses",
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
        kind: the kind, for specs returned by the generic ``ganzoo_register_components`` hook
            (the per-kind hooks fill it in themselves).

    Example:
        >>> ComponentSpec("resnet_9blocks", ResnetConfig, build_resnet, "ResNet, 9 blocks")
    """

    name: str
    config_cls: type
    build: Callable[..., Any]
    summary: str = ""
    kind: str = ""


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """A kind of component a plugin defines (CUT's patch samplers, a perceptual loss...).

    Args:
        name: singular snake_case name (``patch_sampler``); recipe sections hold this kind.
        plural: for ``ganzoo list <plural>`` (``patch_samplers``).
        summary: what components of this kind are and what their ``build`` receives.
        example_args: keyword arguments for ``build`` with which every component of this kind
            must build, for the registry-wide tests (``ganzoo.testing.check_component``).
    """

    name: str
    plural: str
    summary: str = ""
    example_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)


DEFAULT_SECTIONS = MappingProxyType({"generator": "generator", "discriminator": "discriminator", "loss": "loss"})


@dataclasses.dataclass(frozen=True)
class MethodSpec(ComponentSpec):
    """A training method: a ComponentSpec whose ``build(cfg, ctx=MethodContext)`` returns a
    :class:`ganzoo.Method`, plus what the method needs from a recipe.

    Args:
        sections: recipe section name -> component kind, for every component section the
            method reads (any names, any number; kinds may be plugin-defined). A recipe of this
            method has exactly these sections besides the core ones and ``[method]``.
        paired: the method needs aligned (A, B) pairs.
        monitor: the metric of ``train_step``'s result a ``plateau`` schedule watches.
        reference_files: network name -> file name (with ``{epoch}``) of the reference
            implementation's saves, for ``ganzoo run --init-from``; empty when it has none.
        example: the component sections of a tiny recipe of this method (small widths, runs
            at 32 px), with which the registry-wide tests train it for a step.

    Example:
        >>> MethodSpec("cut", CUTConfig, CUT, "contrastive unpaired translation",
        ...            sections={"generator": "generator", "discriminator": "discriminator",
        ...                      "loss": "loss", "sampler": "patch_sampler"}, monitor="G")
    """

    sections: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SECTIONS))
    paired: bool = False
    monitor: str = "G"
    reference_files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    example: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

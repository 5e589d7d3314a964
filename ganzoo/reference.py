"""Types through which plugins describe their reference implementations' checkpoints, and the
core's lookup of them (``ganzoo_read_reference_state``, ``ganzoo_register_pretrained``).

The core keeps the generic machinery (safe loading, strict fitting, downloads); which keys and
shapes make a reference layout, and which weights were published, is the owning plugin's.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from torch import Tensor

from ganzoo.errors import CheckpointError, PluginError


@dataclasses.dataclass(frozen=True)
class ReferenceLayout:
    """A component recognised from a reference state_dict's keys and shapes.

    Args:
        kind: the component kind (``generator``, ``discriminator``...).
        name: the registered component that holds these weights.
        settings: config keys the weights decide (width, depth, norm...).
        defaults: config keys the weights cannot show, at the reference's defaults.
        in_channels: input channels read from the weights (0 when not applicable).
        out_channels: output channels read from the weights (0 when not applicable).
    """

    kind: str
    name: str
    settings: Mapping[str, Any]
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    in_channels: int = 0
    out_channels: int = 0


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """A published pretrained generator ``ganzoo models download NAME`` fetches.

    Args:
        name: the name to download it by; ``ROOT/<name>_pretrained/`` receives it.
        url: where the file is.
        summary: one line for listings: what goes in and what comes out.
        family: the method it was trained with (``cyclegan``, ``pix2pix``, ``cut``).
        generator_prefix: the generator names its weights must be read as (e.g. ``resnet``),
            checked after the download so an HTML page or another model never passes.
        sha256: the file's digest when known.
    """

    name: str
    url: str
    summary: str
    family: str
    generator_prefix: str = ""
    sha256: str | None = None


def conv_weight(state: Mapping[str, Tensor], key: str, kernel: int, source: str) -> Tensor:
    """``state[key]`` checked to be a ``kernel`` x ``kernel`` convolution weight."""
    w = state[key]
    if w.dim() != 4 or tuple(w.shape[-2:]) != (kernel, kernel):
        raise CheckpointError(
            f"{source}: {key} has shape {tuple(w.shape)}, expected a {kernel}x{kernel} convolution "
            f"(C_out, C_in, {kernel}, {kernel}). The file is not in the reference's layout."
        )
    return w


def norm_of(state: Mapping[str, Tensor], conv: str, norm: str, where: str) -> str:
    """The reference's norm from a conv and the norm layer after it: instance (biased conv, no
    norm parameters), batch (norm parameters and running stats, no bias), none (neither)."""
    bias, affine = f"{conv}.bias" in state, f"{norm}.weight" in state
    if affine and not bias and f"{norm}.running_mean" in state:
        return "batch"
    if bias and not affine:
        return "instance"  # possibly with legacy running stats, dropped when loading
    if not bias and not affine:
        return "none"
    raise CheckpointError(
        f"{where}: cannot tell the normalisation: {conv}.bias is {'present' if bias else 'absent'} and "
        f"{norm}.weight is {'present' if affine else 'absent'}, a combination the reference's "
        "instance/batch/none norms never produce."
    )


def read_reference_layout(pm, state: Mapping[str, Tensor], kind: str, source: str) -> ReferenceLayout | None:
    """Ask every plugin whether ``state`` is its reference layout of ``kind``; the first answer wins.

    A plugin that recognises its layout but finds it damaged raises CheckpointError; that
    error is raised only if no other plugin recognises the file.
    """
    errors: list[CheckpointError] = []
    for impl in pm.hook.ganzoo_read_reference_state.get_hookimpls():  # in registration order
        try:
            found = impl.function(**{k: v for k, v in {"state": state, "kind": kind, "source": source}.items()
                                     if k in impl.argnames})
        except CheckpointError as exc:
            errors.append(exc)
            continue
        if found is None:
            continue
        if not isinstance(found, ReferenceLayout):
            raise PluginError(f"plugin '{impl.plugin_name}', ganzoo_read_reference_state: expected a "
                              f"ReferenceLayout or None, got {type(found).__name__}.")
        return found
    if errors:
        raise errors[0]
    return None


def pretrained_models(pm) -> dict[str, PretrainedModel]:
    """Every plugin's published models by name; a duplicate name is a PluginError."""
    out: dict[str, PretrainedModel] = {}
    owner: dict[str, str] = {}
    for impl in pm.hook.ganzoo_register_pretrained.get_hookimpls():
        for model in impl.function() or []:
            if model.name in out:
                raise PluginError(f"plugin '{impl.plugin_name}', ganzoo_register_pretrained: '{model.name}' is "
                                  f"already registered by plugin '{owner[model.name]}'.")
            out[model.name], owner[model.name] = model, impl.plugin_name
    return out

"""Recognising the reference CUT's checkpoints from their keys and shapes alone.

A CUT generator file (``latest_net_G.pth``) differs from a CycleGAN ResNet one in two visible
ways: it carries the fixed blur filters as ``model.<i>.filt`` buffers, and those extra modules
shift the layer indices (residual blocks from ``model.12`` instead of ``model.10``; learned up
convolutions are Conv2d ``(out, in, 3, 3)`` after an ``Upsample`` rather than ConvTranspose2d
``(in, out, 3, 3)``). A CUT generator trained with both ``--no_antialias`` and
``--no_antialias_up`` has neither, and is key for key a CycleGAN generator computing the same
function, so it is left to the CycleGAN rule. These helpers only read; the core decides
when to call them.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ganzoo import CheckpointError, ReferenceLayout

_FILTER = re.compile(r"model\.(\d+)\.filt")
_BLOCK = re.compile(r"model\.(\d+)\.conv_block\.")
# conv indices inside a block's conv_block -> (padding, dropout); reflect and replicate pads
# hold no weights, so a file cannot tell them apart (reflect is the reference's only choice).
_BLOCK_LAYOUTS = {(1, 5): ("reflect", False), (1, 6): ("reflect", True),
                  (0, 3): ("zero", False), (0, 4): ("zero", True)}
_NAMES = {6: "cut_resnet_6blocks", 9: "cut_resnet_9blocks"}
_D_NAMES = {3: "cut_patchgan_70"}


@dataclasses.dataclass(frozen=True)
class _Layout:
    name: str
    config: dict[str, Any]
    in_channels: int
    out_channels: int


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...] | None:
    t = state.get(key)
    return tuple(t.shape) if t is not None and hasattr(t, "shape") else None


def _expect(state: Mapping[str, Tensor], key: str, shape: tuple[int, ...], what: str, source: str) -> None:
    got = _shape(state, key)
    if got != shape:
        raise CheckpointError(
            f"{source}: {key} has shape {got}, expected {shape} ({what}) in the reference CUT generator layout "
            "implied by its blur filters. The file is damaged or from another architecture; name the generator "
            "in a recipe to load it another way."
        )


def _norm(state: Mapping[str, Tensor], source: str, conv: int = 1) -> str:
    """The norm after conv ``model.<conv>``: instance convs are biased and the norm has no
    parameters, batch norms have parameters and running statistics and the conv no bias."""
    c, n = f"model.{conv}", f"model.{conv + 1}"
    bias, affine = f"{c}.bias" in state, f"{n}.weight" in state
    if affine and not bias and f"{n}.running_mean" in state:
        return "batch"
    if bias and not affine:
        return "instance"
    if not bias and not affine:
        return "none"
    raise CheckpointError(
        f"{source}: {c}.bias is {'present' if bias else 'absent'} and {n}.weight "
        f"{'present' if affine else 'absent'}, a combination the reference's instance/batch/none norms never make."
    )


def _read(state: Mapping[str, Tensor], source: str) -> _Layout | None:
    first = _shape(state, "model.1.weight")
    if first is None or len(first) != 4 or first[2:] != (7, 7):
        return None
    filters = {int(m.group(1)) for k in state if (m := _FILTER.fullmatch(k))}
    if not filters:
        return None  # the CycleGAN layout (or no generator at all): not ours to claim
    ngf, cin = first[0], first[1]
    down_aa = 7 in filters
    if down_aa:
        _expect(state, "model.4.weight", (2 * ngf, ngf, 3, 3), "first down conv", source)
        _expect(state, "model.7.filt", (2 * ngf, 1, 3, 3), "first blur-pool filter", source)
        _expect(state, "model.8.weight", (4 * ngf, 2 * ngf, 3, 3), "second down conv", source)
        _expect(state, "model.11.filt", (4 * ngf, 1, 3, 3), "second blur-pool filter", source)
    else:
        _expect(state, "model.4.weight", (2 * ngf, ngf, 3, 3), "first strided down conv", source)
        _expect(state, "model.7.weight", (4 * ngf, 2 * ngf, 3, 3), "second strided down conv", source)
    start = 12 if down_aa else 10
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    if blocks != list(range(start, start + len(blocks))):
        raise CheckpointError(
            f"{source}: residual blocks at model.{blocks}; with {'blur-pooled' if down_aa else 'strided'} "
            f"down-sampling the reference puts them at model.{start}, model.{start + 1}, ..."
        )
    n = len(blocks)
    up = start + n
    up_aa = up in filters
    if up_aa:
        _expect(state, f"model.{up}.filt", (4 * ngf, 1, 4, 4), "first upsampling filter", source)
        _expect(state, f"model.{up + 1}.weight", (2 * ngf, 4 * ngf, 3, 3), "first up conv", source)
        _expect(state, f"model.{up + 4}.filt", (2 * ngf, 1, 4, 4), "second upsampling filter", source)
        _expect(state, f"model.{up + 5}.weight", (ngf, 2 * ngf, 3, 3), "second up conv", source)
        last = up + 9
    else:
        _expect(state, f"model.{up}.weight", (4 * ngf, 2 * ngf, 3, 3), "first transposed up conv", source)
        _expect(state, f"model.{up + 3}.weight", (2 * ngf, ngf, 3, 3), "second transposed up conv", source)
        last = up + 7
    expected_filters = ({7, 11} if down_aa else set()) | ({up, up + 4} if up_aa else set())
    if filters != expected_filters:
        raise CheckpointError(
            f"{source}: blur filters at model.{sorted(filters)}, expected model.{sorted(expected_filters)}."
        )
    final = _shape(state, f"model.{last}.weight")
    if final is None or len(final) != 4 or final[1:] != (ngf, 7, 7):
        raise CheckpointError(
            f"{source}: model.{last}.weight has shape {final}, expected the last 7x7 conv (C_out, {ngf}, 7, 7)."
        )

    config: dict[str, Any] = {"ngf": ngf, "norm": _norm(state, source), "dropout": False,
                              "no_antialias": not down_aa, "no_antialias_up": not up_aa}
    if n:
        layouts = set()
        for b in blocks:
            prefix = f"model.{b}.conv_block."
            convs = sorted(int(k[len(prefix):].split(".")[0]) for k in state
                           if k.startswith(prefix) and k.endswith(".weight") and len(_shape(state, k) or ()) == 4)
            layouts.add(tuple(convs))
        layout = _BLOCK_LAYOUTS.get(next(iter(layouts))) if len(layouts) == 1 else None
        if layout is None:
            raise CheckpointError(
                f"{source}: residual blocks with convolutions at conv_block indices {sorted(layouts)}; "
                f"the reference's layouts are {sorted(_BLOCK_LAYOUTS)}."
            )
        padding, config["dropout"] = layout
        if padding == "zero":
            config["padding_type"] = "zero"
    name = _NAMES.get(n, "cut_resnet")
    if name == "cut_resnet":
        config["n_blocks"] = n
    return _Layout(name, config, cin, final[0])


def guess_cut_generator(
    state_dict: Mapping[str, Tensor], *, source: str = "state_dict"
) -> tuple[str, dict[str, Any]] | None:
    """The registered CUT generator and its config values for a reference ``*_net_G.pth``.

    Rules: a 7x7 stem conv at ``model.1`` and at least one ``model.<i>.filt`` buffer make a
    CUT generator. Filters at ``model.7``/``model.11`` mean blur-pooled down-sampling
    (blocks from ``model.12``), none there mean strided convs (``--no_antialias``, blocks
    from ``model.10``). Filters right after the blocks mean blur-upsampling, none mean
    transposed convs (``--no_antialias_up``). The width comes from the stem, the norm from
    ``model.1.bias`` / ``model.2``, dropout and zero padding from the convs' positions inside
    a block; reflect padding is assumed (replicate leaves no trace in the weights).

    Args:
        state_dict: the loaded file, ``module.`` prefixes already stripped.
        source: where it came from, for messages.

    Returns:
        ``(name, values)`` for ``cut_resnet_6blocks``, ``cut_resnet_9blocks`` or
        ``cut_resnet`` (``values`` then has ``n_blocks``); ``None`` if there are no blur
        filters (a CycleGAN-layout file, which the CycleGAN generator loads as well, or not
        a generator).

    Raises:
        CheckpointError: blur filters are present but the rest does not fit a CUT generator.
    """
    layout = _read(state_dict, source)
    return None if layout is None else (layout.name, dict(layout.config))


def cut_generator_channels(state_dict: Mapping[str, Tensor], *, source: str = "state_dict") -> tuple[int, int]:
    """``(in_channels, out_channels)`` of a file :func:`guess_cut_generator` recognises."""
    layout = _read(state_dict, source)
    if layout is None:
        raise CheckpointError(f"{source}: not a reference CUT generator (no model.<i>.filt blur filters).")
    return layout.in_channels, layout.out_channels


def guess_cut_sampler(state_dict: Mapping[str, Tensor]) -> tuple[list[int], int] | None:
    """``(channels per layer, nc)`` of a reference ``*_net_F.pth`` (mlp_sample), else ``None``."""
    channels, nc, i = [], None, 0
    while (w := _shape(state_dict, f"mlp_{i}.0.weight")) is not None and len(w) == 2:
        channels.append(w[1])
        nc = w[0]
        i += 1
    return (channels, nc) if channels else None


def read_generator(state: Mapping[str, Tensor], source: str) -> ReferenceLayout | None:
    """:func:`guess_cut_generator` as the core asks for it (``ganzoo_read_reference_state``):
    the settings the weights show, and reflect padding as the default they cannot show."""
    layout = _read(state, source)
    if layout is None:
        return None
    settings = dict(layout.config)
    defaults = {} if "padding_type" in settings else {"padding_type": "reflect"}
    return ReferenceLayout("generator", layout.name, settings, defaults, layout.in_channels, layout.out_channels)


def read_discriminator(state: Mapping[str, Tensor], source: str) -> ReferenceLayout | None:
    """The reference's anti-aliased ``NLayerDiscriminator`` (a ``*_net_D.pth``), else ``None``.

    A 4x4 conv at ``model.0`` and blur filters at ``model.2``, ``model.6``, ... (one per
    down-sampling group, so their count is ``n_layers``); the norm is read from the conv at
    ``model.3`` and the layer after it. Without filters (``--no_antialias``) it is the plain
    PatchGAN, which the core's own rule reads.
    """
    first = _shape(state, "model.0.weight")
    if first is None or len(first) != 4 or first[2:] != (4, 4):
        return None
    filters = sorted(int(m.group(1)) for k in state if (m := _FILTER.fullmatch(k)))
    if not filters:
        return None
    ndf, cin, n_layers = first[0], first[1], len(filters)
    expected = [2 + 4 * i for i in range(n_layers)]
    if filters != expected:
        raise CheckpointError(
            f"{source}: blur filters at model.{filters}; the reference's anti-aliased PatchGAN with {n_layers} "
            f"down-sampling groups has them at model.{expected}."
        )
    width = ndf * min(2**n_layers, 8)
    last = 4 * n_layers + 2
    final = _shape(state, f"model.{last}.weight")
    if final != (1, width, 4, 4):
        raise CheckpointError(
            f"{source}: model.{last}.weight has shape {final}, expected the last 4x4 conv (1, {width}, 4, 4) of "
            f"an anti-aliased PatchGAN with ndf {ndf} and {n_layers} down-sampling groups."
        )
    settings: dict[str, Any] = {"ndf": ndf, "norm": _norm(state, source, conv=3)}
    name = _D_NAMES.get(n_layers, "cut_patchgan")
    if name == "cut_patchgan":
        settings["n_layers"] = n_layers
    return ReferenceLayout("discriminator", name, settings, in_channels=cin)


def read_sampler(state: Mapping[str, Tensor], source: str) -> ReferenceLayout | None:
    """The reference's ``PatchSampleF`` with MLPs (a ``*_net_F.pth``) as an ``mlp`` sampler."""
    found = guess_cut_sampler(state)
    return None if found is None else ReferenceLayout("patch_sampler", "mlp", {"nc": found[1]})

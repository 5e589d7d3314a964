"""Normalisation layers by name, and the conv-bias rule that goes with them.

These mirror the reference's ``get_norm_layer``: instance norm has no affine parameters and no
running statistics (so it adds no state_dict keys), batch norm has both, ``none`` is an
identity. :func:`strip_legacy_norm_keys` drops the instance-norm buffers that checkpoints
saved by PyTorch < 0.4 still carry, so the reference's published weights load strictly.
"""
from __future__ import annotations

import typing
from typing import Any, Literal

from torch import nn

NormType = Literal["instance", "batch", "syncbatch", "none"]
NORM_TYPES: tuple[str, ...] = typing.get_args(NormType)


def check_norm(norm: str) -> None:
    """Raise ValueError unless ``norm`` is one of :data:`NORM_TYPES`."""
    if norm not in NORM_TYPES:
        choices = ", ".join(repr(n) for n in NORM_TYPES)
        raise ValueError(f"norm must be one of {choices}, got {norm!r}")


def norm_layer(kind: NormType, channels: int) -> nn.Module:
    """Return a fresh normalisation layer of ``kind`` over ``channels`` feature maps.

    Args:
        kind: ``instance`` (InstanceNorm2d without affine or running stats, the CycleGAN
            default), ``batch`` (BatchNorm2d with affine and running stats, the pix2pix
            default), ``syncbatch`` (SyncBatchNorm with the same parameters, for DDP) or
            ``none`` (Identity).
        channels: number of channels C of the ``(B, C, H, W)`` input.

    Example:
        >>> norm_layer("batch", 64)
        BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    """
    check_norm(kind)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "syncbatch":
        return nn.SyncBatchNorm(channels, affine=True, track_running_stats=True)
    return nn.Identity()


def use_bias(kind: NormType) -> bool:
    """Whether convolutions followed by a ``kind`` norm get a bias: only for ``instance``.

    Batch norm's own shift makes a conv bias redundant. The reference decides this by testing
    ``norm_layer == InstanceNorm2d``, so with ``none`` (where its norm_layer is a function
    returning Identity) the convolutions have *no* bias either, although nothing follows them
    that could absorb one. We keep that rule: it decides which keys a checkpoint has.
    """
    check_norm(kind)
    return kind == "instance"


def strip_legacy_norm_keys(state_dict: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """Return a copy of ``state_dict`` without instance-norm buffers ``module`` does not have.

    PyTorch < 0.4 saved ``running_mean``/``running_var`` (and later ``num_batches_tracked``)
    for every InstanceNorm2d; the reference deletes them before loading its published
    CycleGAN weights. Apply this, then ``module.load_state_dict(..., strict=True)``.
    Batch-norm checkpoints without ``num_batches_tracked`` need nothing: PyTorch fills it in.
    """
    owners = {name: m for name, m in module.named_modules() if isinstance(m, nn.InstanceNorm2d)}
    out = {}
    for key, value in state_dict.items():
        owner, _, leaf = key.rpartition(".")
        norm = owners.get(owner)
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        if norm is not None and leaf in buffers and getattr(norm, leaf, None) is None:
            continue
        out[key] = value
    return out

"""Weight initialisation as in the reference's ``init_weights`` (pix2pix / CycleGAN papers)."""
from __future__ import annotations

import typing
from typing import Literal

from torch import nn

InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
INIT_TYPES: tuple[str, ...] = typing.get_args(InitType)

# The reference matches class names containing "Conv" or "Linear"; these are the standard
# modules such names cover (``Bilinear`` is not one: the match is case-sensitive).
_WEIGHTED = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear,
)
# The reference re-initialises only BatchNorm2d. Its SyncBatchNorm (name lacks "BatchNorm2d")
# keeps PyTorch's weight=1; we treat it as the BatchNorm2d it replaces so that switching to
# syncbatch for multi-GPU training does not change the initial network.
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def check_init(init_type: str, init_gain: float) -> None:
    """Raise ValueError unless ``init_type`` is one of :data:`INIT_TYPES` and ``init_gain > 0``."""
    if init_type not in INIT_TYPES:
        choices = ", ".join(repr(t) for t in INIT_TYPES)
        raise ValueError(f"init_type must be one of {choices}, got {init_type!r}")
    if not init_gain > 0:
        raise ValueError(f"init_gain must be > 0, got {init_gain!r}")


def init_weights(net: nn.Module, init_type: InitType = "normal", gain: float = 0.02) -> nn.Module:
    """Re-initialise every conv, linear and batch-norm layer of ``net`` in place; return ``net``.

    Conv and linear weights: ``normal`` is N(0, gain), ``xavier`` is xavier_normal with
    ``gain``, ``orthogonal`` is orthogonal with ``gain``, and ``kaiming`` is kaiming_normal
    (fan_in, a=0) which, as in the reference, ignores ``gain``. Their biases become 0.
    Batch-norm weights are N(1, gain) and their biases 0; instance norm has no parameters.

    Modules are visited in ``net.apply`` order (children before parents, in registration
    order), the order the reference draws its random numbers in.

    Args:
        net: the network to initialise.
        init_type: one of ``normal``, ``xavier``, ``kaiming``, ``orthogonal``.
        gain: standard deviation (``normal``) or gain (``xavier``, ``orthogonal``).

    Example:
        >>> net = init_weights(nn.Conv2d(3, 8, 3), "normal", 0.02)
        >>> float(net.bias.abs().sum())
        0.0
    """
    check_init(init_type, gain)

    def init_one(m: nn.Module) -> None:
        if isinstance(m, _WEIGHTED):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BATCH_NORMS) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(init_one)
    return net

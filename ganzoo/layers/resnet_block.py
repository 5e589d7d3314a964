"""The residual block of the CycleGAN ResNet generator (after Johnson et al.'s style transfer net)."""
from __future__ import annotations

import typing
from typing import Literal

from torch import Tensor, nn

from ganzoo.layers.norm import NormType, norm_layer, use_bias

PaddingType = Literal["reflect", "replicate", "zero"]
PADDING_TYPES: tuple[str, ...] = typing.get_args(PaddingType)


def check_padding(padding_type: str) -> None:
    """Raise ValueError unless ``padding_type`` is one of :data:`PADDING_TYPES`."""
    if padding_type not in PADDING_TYPES:
        choices = ", ".join(repr(p) for p in PADDING_TYPES)
        raise ValueError(f"padding_type must be one of {choices}, got {padding_type!r}")


def _pad(padding_type: PaddingType) -> tuple[list[nn.Module], int]:
    """The explicit padding layer (if any) and the conv's own padding for a 3x3 conv."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(1)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(1)], 0
    return [], 1


class ResnetBlock(nn.Module):
    """``x + F(x)`` with F = pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm.

    There is no activation after the sum. The layers live in ``conv_block`` (an
    ``nn.Sequential``) so state_dict keys match the reference, e.g. ``conv_block.1.weight``
    and ``conv_block.5.weight`` for the two convolutions with reflect padding. Dropout and
    ``zero`` padding shift those indices (``conv_block.6`` with dropout; ``conv_block.0`` and
    ``conv_block.3`` with zero padding), exactly as in the reference.

    Args:
        channels: C, the number of input and output channels.
        norm: normalisation after each conv; conv biases follow :func:`use_bias`.
        padding_type: ``reflect``, ``replicate`` or ``zero`` (the conv pads with zeros).
        dropout: add Dropout(0.5) between the two convolutions.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Example:
        >>> block = ResnetBlock(256)
        >>> block(torch.rand(1, 256, 64, 64)).shape
        torch.Size([1, 256, 64, 64])
    """

    def __init__(
        self,
        channels: int,
        *,
        norm: NormType = "instance",
        padding_type: PaddingType = "reflect",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        check_padding(padding_type)
        self.channels = channels
        bias = use_bias(norm)
        pad, conv_padding = _pad(padding_type)
        layers = [
            *pad,
            nn.Conv2d(channels, channels, kernel_size=3, padding=conv_padding, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        pad, conv_padding = _pad(padding_type)  # fresh padding module for the second conv
        layers += [
            *pad,
            nn.Conv2d(channels, channels, kernel_size=3, padding=conv_padding, bias=bias),
            norm_layer(norm, channels),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"Expected x of shape (B, {self.channels}, H, W). Got {tuple(x.shape)}.")
        return x + self.conv_block(x)

"""The fixed (not learned) blur filters of CUT's anti-aliased down- and up-sampling.

Zhang's "Making convolutional networks shift-invariant again" (ICML 2019): blur before
subsampling, blur after zero-insertion. The filters are binomial, stored per channel as a
*persistent* buffer named ``filt`` because the reference stores them that way: its published
checkpoints carry ``model.<i>.filt`` and only load strictly into a module that has them too.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def binomial_filter(size: int) -> Tensor:
    """The ``size`` x ``size`` outer product of a Pascal-triangle row, summing to 1 (float32).

    Example:
        >>> binomial_filter(3) * 16
        tensor([[1., 2., 1.],
                [2., 4., 2.],
                [1., 2., 1.]])
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = row[:, None] * row[None, :]
    return (kernel / kernel.sum()).float()


def _check_channels(x: Tensor, channels: int, what: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"Expected input of {what} of shape (B, {channels}, H, W). Got {tuple(x.shape)}.")


class Downsample(nn.Module):
    """Blur with the 3x3 binomial filter, then keep every second pixel (stride 2).

    Reflection padding of 1 on each side, then a depthwise convolution with
    ``[1, 2, 1]^T [1, 2, 1] / 16`` and stride 2. No parameters; the filter is the persistent
    buffer ``filt`` of shape ``(C, 1, 3, 3)``.

    Args:
        channels: C, the number of input (and output) channels.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, \\lceil H/2 \\rceil, \\lceil W/2 \\rceil)`

    Example:
        >>> Downsample(8)(torch.rand(1, 8, 32, 32)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(3).expand(channels, 1, 3, 3).clone())

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, "Downsample")
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=self.channels)


class Upsample(nn.Module):
    """Double the resolution: insert zeros (stride 2) and blur with the 4x4 binomial filter.

    Replication padding of 1, then a depthwise transposed convolution with
    ``[1, 3, 3, 1]^T [1, 3, 3, 1] / 64 * 4`` (the 4 keeps the mean: three of four output
    pixels come from inserted zeros), stride 2 and padding 2, then one row and column cut
    from each border, which leaves exactly 2H x 2W. No parameters; the filter is the
    persistent buffer ``filt`` of shape ``(C, 1, 4, 4)``.

    Args:
        channels: C, the number of input (and output) channels.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, 2H, 2W)`

    Example:
        >>> Upsample(8)(torch.rand(1, 8, 16, 16)).shape
        torch.Size([1, 8, 32, 32])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", (binomial_filter(4) * 4).expand(channels, 1, 4, 4).clone())

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, "Upsample")
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        # (H + 2) inputs give 2H + 2 outputs; the outermost row/column on each side is padding.
        y = F.conv_transpose2d(padded, self.filt, stride=2, padding=2, groups=self.channels)
        return y[:, :, 1:-1, 1:-1]

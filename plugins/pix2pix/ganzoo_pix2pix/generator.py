"""The pix2pix U-Net generator (``unet_128``, ``unet_256``).

Module for module the reference's ``UnetGenerator``: blocks nest inside each other, so
state_dict keys read ``model.model.0.weight`` (outermost down conv),
``model.model.1.model.1.weight`` (the next block's down conv) and so on, and the reference's
published pix2pix weights load with ``strict=True``.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor, nn

from ganzoo import ComponentSpec
from ganzoo.layers import InitType, NormType, check_image, check_init, check_norm, init_weights, norm_layer, use_bias


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``concat(x, up(sub(down(x))))``.

    Layers live in the ``nn.Sequential`` ``model``:

    - outermost: ``[conv, sub, ReLU, convT (biased), Tanh]``; the output is not concatenated.
    - innermost: ``[LeakyReLU, conv, ReLU, convT, norm]`` (no norm on the down path).
    - otherwise: ``[LeakyReLU, conv, norm, sub, ReLU, convT, norm]`` plus ``Dropout(0.5)``
      at index 7 when ``dropout`` is set.

    All convs are 4x4 stride 2 padding 1. The reference's first LeakyReLU is in place, so
    its skip actually carries LeakyReLU(x); that is the same function, because the parent's
    up path starts with a ReLU and ReLU(LeakyReLU(x)) = ReLU(x). We keep the LeakyReLU out of
    place so that calling a block does not overwrite its input.

    Args:
        outer_channels: channels this level returns to its parent (before concatenation).
        inner_channels: channels of the down conv's output.
        in_channels: channels of the input; defaults to ``outer_channels``.
        submodule: the next level inward (None for the innermost).
        outermost: the top level (conv first, Tanh last, no skip).
        innermost: the bottom level.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.
        dropout: append Dropout(0.5) (only for middle levels, as in the reference).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{in} + C_{outer}, H, W)`, or :math:`(B, C_{outer}, H, W)`
          for the outermost level.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        *,
        outermost: bool = False,
        innermost: bool = False,
        norm: NormType = "batch",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        bias = use_bias(norm)
        in_channels = outer_channels if in_channels is None else in_channels
        # Creation order (down conv, then up conv) follows the reference so that the same seed
        # consumes the random stream the same way.
        down = nn.Conv2d(in_channels, inner_channels, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner_channels * 2, outer_channels, kernel_size=4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner_channels, outer_channels, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(True), up, norm_layer(norm, outer_channels)]
        else:
            up = nn.ConvTranspose2d(inner_channels * 2, outer_channels, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2), down, norm_layer(norm, inner_channels),
                submodule,
                nn.ReLU(True), up, norm_layer(norm, outer_channels),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` 4x4 stride-2 levels and skip connections between mirrored levels.

    Channel widths going down are ngf, 2 ngf, 4 ngf, then 8 ngf for every further level; the
    ``num_downs - 5`` middle levels at 8 ngf get Dropout(0.5) when ``dropout`` is set. The
    outermost :class:`UnetSkipConnectionBlock` is ``model``.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        num_downs: number of downsamplings (7 for 128 px, 8 for 256 px; at least 5).
        ngf: channels of the first convolution.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.
        dropout: Dropout(0.5) in the middle 8 ngf levels (the pix2pix default is on).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`, H and W divisible by :math:`2^{num\\_downs}`.
        - Output: :math:`(B, C_{out}, H, W)`, values in [-1, 1].

    Example:
        >>> g = UnetGenerator(3, 3, num_downs=8)
        >>> g(torch.rand(1, 3, 256, 256) * 2 - 1).shape
        torch.Size([1, 3, 256, 256])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int,
        *,
        ngf: int = 64,
        norm: NormType = "batch",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.in_channels = in_channels
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs  # every level halves; inference pads to this
        # Built from the inside out, as in the reference.
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, in_channels, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: Tensor) -> Tensor:
        # Other sizes lose a row or column on the way down and the concatenation then fails.
        check_image(x, self.in_channels, self.size_multiple)
        return self.model(x)

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """The down path's activations: layer ``i`` is the output of the ``i``-th down
        convolution (0: ngf channels at H/2, then one level deeper per index, up to
        ``num_downs - 1``), in the order asked (:class:`ganzoo.FeatureGenerator`)."""
        check_image(x, self.in_channels, self.size_multiple)
        wanted = sorted(set(layers))
        if wanted and not 0 <= wanted[0] <= wanted[-1] < self.num_downs:
            raise ValueError(f"U-Net feature layers are 0..{self.num_downs - 1}, got {list(layers)}")
        found: dict[int, Tensor] = {}
        block, h = self.model, x
        for level in range(max(wanted, default=-1) + 1):
            seq = block.model
            if level == 0:  # outermost: [down, sub, ...]
                h, block = seq[0](h), seq[1]
            elif block.innermost:  # [act, down, ReLU, up, norm]: no norm on the way down
                h = seq[1](seq[0](h))
            else:  # middle: [act, down, norm, sub, ...]
                h, block = seq[2](seq[1](seq[0](h))), seq[3]
            found[level] = h
        return [found[i] for i in layers]


@dataclasses.dataclass(frozen=True)
class UnetConfig:
    """Options of ``unet_128`` and ``unet_256``.

    Args:
        ngf: channels of the first convolution (the deepest levels run at 8 ngf).
        norm: ``batch`` (pix2pix), ``instance``, ``syncbatch`` or ``none``.
        dropout: Dropout(0.5) in the middle levels; pix2pix uses it as its noise source.
        init_type: weight initialisation, see :func:`ganzoo.layers.init_weights`.
        init_gain: its standard deviation or gain.
    """

    ngf: int = 64
    norm: NormType = "batch"
    dropout: bool = True
    init_type: InitType = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        check_norm(self.norm)
        check_init(self.init_type, self.init_gain)


@dataclasses.dataclass(frozen=True)
class UnetDepthConfig(UnetConfig):
    """Options of ``unet``: those of ``unet_128`` plus the depth.

    Args:
        num_downs: downsamplings; inputs must be a multiple of 2**num_downs (5 -> 32 px).
    """

    num_downs: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 5 <= self.num_downs <= 10:
            raise ValueError(f"num_downs must be between 5 and 10, got {self.num_downs}")


def _build(cfg: UnetConfig, in_channels: int, out_channels: int, num_downs: int) -> nn.Module:
    net = UnetGenerator(in_channels, out_channels, num_downs, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_unet_128(cfg: UnetConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """U-Net with 7 downsamplings (128 px inputs reach 1x1), initialised."""
    return _build(cfg, in_channels, out_channels, 7)


def build_unet_256(cfg: UnetConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """U-Net with 8 downsamplings (256 px inputs reach 1x1), initialised."""
    return _build(cfg, in_channels, out_channels, 8)


def build_unet(cfg: UnetDepthConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """U-Net with ``cfg.num_downs`` downsamplings, initialised (unet_128 is num_downs 7)."""
    return _build(cfg, in_channels, out_channels, cfg.num_downs)


GENERATORS: list[ComponentSpec] = [
    ComponentSpec("unet", UnetDepthConfig, build_unet, "U-Net generator of any depth (num_downs; 5 for 32 px)"),
    ComponentSpec("unet_128", UnetConfig, build_unet_128, "U-Net generator, 7 downsamplings (128 px)"),
    ComponentSpec("unet_256", UnetConfig, build_unet_256, "U-Net generator, 8 downsamplings (256 px)"),
]

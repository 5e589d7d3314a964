"""The CycleGAN ResNet generator (``resnet_6blocks``, ``resnet_9blocks``, ``resnet`` of any depth).

Module for module the reference's ``ResnetGenerator``: state_dict keys such as
``model.1.weight`` and ``model.10.conv_block.1.weight`` are the same, so its published
CycleGAN weights load with ``strict=True`` (after
:func:`ganzoo.layers.strip_legacy_norm_keys` for checkpoints saved by PyTorch < 0.4).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from torch import Tensor, nn

from ganzoo import ComponentSpec
from ganzoo.layers import (
    InitType,
    NormType,
    PaddingType,
    ResnetBlock,
    check_image,
    check_init,
    check_norm,
    check_padding,
    init_weights,
    norm_layer,
    use_bias,
)

_N_DOWNSAMPLING = 2  # fixed in the reference: feature maps shrink by 4 before the blocks


class ResnetGenerator(nn.Module):
    """Encoder, ``n_blocks`` residual blocks at 4 ngf channels, decoder.

    ReflectionPad(3), Conv7x7 (ngf), norm, ReLU; two Conv3x3 stride 2 (2 ngf, 4 ngf), each
    with norm and ReLU; ``n_blocks`` :class:`ganzoo.layers.ResnetBlock`; two ConvTranspose3x3
    stride 2 (2 ngf, ngf), each with norm and ReLU; ReflectionPad(3), Conv7x7 (always biased),
    Tanh. All layers live in the ``nn.Sequential`` ``model``: with 9 blocks the blocks are
    ``model.10`` to ``model.18`` and the last conv is ``model.26``.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        ngf: channels of the first convolution.
        n_blocks: number of residual blocks.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.
        dropout: Dropout(0.5) inside each residual block.
        padding_type: padding of the residual blocks' convolutions (the 7x7 convs always
            reflect).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`, H and W divisible by 4, values in [-1, 1].
        - Output: :math:`(B, C_{out}, H, W)`, values in [-1, 1].

    Example:
        >>> g = ResnetGenerator(3, 3, n_blocks=9)
        >>> g(torch.rand(1, 3, 256, 256) * 2 - 1).shape
        torch.Size([1, 3, 256, 256])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: NormType = "instance",
        dropout: bool = False,
        padding_type: PaddingType = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.in_channels = in_channels
        self.size_multiple = 4  # two stride-2 convolutions; inference pads to this
        bias = use_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(_N_DOWNSAMPLING):
            c = ngf * 2**i
            layers += [
                nn.Conv2d(c, c * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                norm_layer(norm, c * 2),
                nn.ReLU(True),
            ]
        width = ngf * 2**_N_DOWNSAMPLING
        layers += [
            ResnetBlock(width, norm=norm, padding_type=padding_type, dropout=dropout)
            for _ in range(n_blocks)
        ]
        for i in range(_N_DOWNSAMPLING):
            c = ngf * 2 ** (_N_DOWNSAMPLING - i)
            layers += [
                # output_padding=1 makes the output exactly twice the input size
                nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, c // 2),
                nn.ReLU(True),
            ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, kernel_size=7),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        # Other sizes run but come out larger than they went in (ceil on the way down).
        check_image(x, self.in_channels, self.size_multiple)
        return self.model(x)

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """The activations after ``model[i]`` for each ``i`` in ``layers``, in the order asked
        (:class:`ganzoo.FeatureGenerator`); only the layers up to the deepest one run. With 9
        blocks, 0 is the padded input, 4 and 7 the two down-samplings' convolutions, 10 to 18
        the blocks' outputs (CUT's nce_layers index the same way)."""
        check_image(x, self.in_channels, self.size_multiple)
        wanted = set(layers)
        if wanted and not 0 <= min(wanted) <= max(wanted) < len(self.model):
            raise ValueError(f"feature layers must be in 0..{len(self.model) - 1}, got {list(layers)}")
        found: dict[int, Tensor] = {}
        h = x
        for i, layer in enumerate(self.model[: max(wanted, default=-1) + 1]):
            h = layer(h)
            if i in wanted:
                found[i] = h
        return [found[i] for i in layers]


@dataclasses.dataclass(frozen=True)
class ResnetConfig:
    """Options of ``resnet_6blocks`` and ``resnet_9blocks``.

    Args:
        ngf: channels of the first convolution (the blocks run at 4 ngf).
        norm: ``instance`` (CycleGAN), ``batch``, ``syncbatch`` or ``none``.
        dropout: Dropout(0.5) in every residual block (the CycleGAN default is off).
        padding_type: ``reflect``, ``replicate`` or ``zero`` in the residual blocks.
        init_type: weight initialisation, see :func:`ganzoo.layers.init_weights`.
        init_gain: its standard deviation or gain.
    """

    ngf: int = 64
    norm: NormType = "instance"
    dropout: bool = False
    padding_type: PaddingType = "reflect"
    init_type: InitType = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        check_norm(self.norm)
        check_padding(self.padding_type)
        check_init(self.init_type, self.init_gain)


def _build(cfg: ResnetConfig, in_channels: int, out_channels: int, n_blocks: int) -> nn.Module:
    net = ResnetGenerator(
        in_channels, out_channels, ngf=cfg.ngf, n_blocks=n_blocks,
        norm=cfg.norm, dropout=cfg.dropout, padding_type=cfg.padding_type,
    )
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_resnet_6blocks(cfg: ResnetConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """ResnetGenerator with 6 blocks (the reference's choice for 128 px), initialised."""
    return _build(cfg, in_channels, out_channels, 6)


def build_resnet_9blocks(cfg: ResnetConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """ResnetGenerator with 9 blocks (the reference's choice for 256 px), initialised."""
    return _build(cfg, in_channels, out_channels, 9)


@dataclasses.dataclass(frozen=True)
class ResnetDepthConfig(ResnetConfig):
    """Options of ``resnet``: those of ``resnet_9blocks`` plus the number of residual blocks
    (5 blocks at ngf 32 is the 128-filter generator of the original CycleGAN write-ups).

    Args:
        n_blocks: residual blocks (>= 0).
    """

    n_blocks: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {self.n_blocks}")


def build_resnet(cfg: ResnetDepthConfig, *, in_channels: int, out_channels: int) -> nn.Module:
    """ResnetGenerator with ``cfg.n_blocks`` blocks, initialised."""
    return _build(cfg, in_channels, out_channels, cfg.n_blocks)


GENERATORS: list[ComponentSpec] = [
    ComponentSpec("resnet", ResnetDepthConfig, build_resnet, "ResNet generator of any depth (n_blocks)"),
    ComponentSpec("resnet_6blocks", ResnetConfig, build_resnet_6blocks, "ResNet generator, 6 blocks (128 px)"),
    ComponentSpec("resnet_9blocks", ResnetConfig, build_resnet_9blocks, "ResNet generator, 9 blocks (256 px)"),
]

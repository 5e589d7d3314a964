"""CUT's ResNet generator: CycleGAN's, with anti-aliased down- and up-sampling.

Module for module the reference's ``ResnetGenerator`` (taesungp/contrastive-unpaired-translation,
``models/networks.py``): one ``nn.Sequential`` ``model`` whose indices are the reference's, so
its state_dict keys (fixed blur filters included) are the same and its published
``latest_net_G.pth`` loads with ``strict=True``, and ``nce_layers`` indices mean the same layers.
With both ``no_antialias`` and ``no_antialias_up`` it is exactly the CycleGAN generator.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import Tensor, nn

from ganzoo import ComponentSpec
from ganzoo.layers import (
    InitType,
    NormType,
    PaddingType,
    ResnetBlock,
    check_init,
    check_norm,
    check_padding,
    init_weights,
    norm_layer,
    use_bias,
)
from ganzoo_cut.antialias import Downsample, Upsample

_N_DOWNSAMPLING = 2  # fixed in the reference


class CUTResnetGenerator(nn.Module):
    """Encoder, ``n_blocks`` residual blocks at 4 ngf channels, decoder; features by layer index.

    ReflectionPad(3), Conv7x7 (ngf), norm, ReLU; two down stages (2 ngf, 4 ngf); ``n_blocks``
    :class:`ganzoo.layers.ResnetBlock`; two up stages (2 ngf, ngf); ReflectionPad(3),
    Conv7x7 (always biased), Tanh. A down stage is Conv3x3 stride 1, norm, ReLU,
    :class:`~ganzoo_cut.antialias.Downsample` (4 modules), or with ``no_antialias`` Conv3x3
    stride 2, norm, ReLU (3 modules). An up stage is :class:`~ganzoo_cut.antialias.Upsample`,
    Conv3x3 stride 1, norm, ReLU (4 modules), or with ``no_antialias_up`` ConvTranspose3x3
    stride 2, norm, ReLU (3 modules). With the defaults and 9 blocks ``model`` has 32 modules:
    convs at 1, 4, 8, 22, 26, 30, Downsample at 7 and 11, blocks at 12-20, Upsample at 21, 25.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        ngf: channels of the first convolution.
        n_blocks: number of residual blocks.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.
        dropout: Dropout(0.5) inside each residual block.
        padding_type: padding of the residual blocks' convolutions.
        no_antialias: strided convolutions instead of conv + blur-pool on the way down.
        no_antialias_up: transposed convolutions instead of blur-upsample + conv on the way up.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`, H and W divisible by 4, values in [-1, 1].
        - Output: :math:`(B, C_{out}, H, W)`, values in [-1, 1].

    Example:
        >>> g = CUTResnetGenerator(3, 3, ngf=8, n_blocks=9)
        >>> x = torch.rand(1, 3, 64, 64) * 2 - 1
        >>> g(x).shape
        torch.Size([1, 3, 64, 64])
        >>> [tuple(f.shape) for f in g.encode(x, [0, 4, 8, 12, 16])]
        [(1, 3, 70, 70), (1, 16, 64, 64), (1, 32, 32, 32), (1, 32, 16, 16), (1, 32, 16, 16)]
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
        no_antialias: bool = False,
        no_antialias_up: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.in_channels = in_channels
        self.size_multiple = 4  # two halvings; inference pads to this
        bias = use_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(_N_DOWNSAMPLING):
            c = ngf * 2**i
            if no_antialias:
                layers += [
                    nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=bias),
                    norm_layer(norm, 2 * c),
                    nn.ReLU(True),
                ]
            else:
                layers += [
                    nn.Conv2d(c, 2 * c, kernel_size=3, stride=1, padding=1, bias=bias),
                    norm_layer(norm, 2 * c),
                    nn.ReLU(True),
                    Downsample(2 * c),
                ]
        width = ngf * 2**_N_DOWNSAMPLING
        layers += [
            ResnetBlock(width, norm=norm, padding_type=padding_type, dropout=dropout) for _ in range(n_blocks)
        ]
        for i in range(_N_DOWNSAMPLING):
            c = ngf * 2 ** (_N_DOWNSAMPLING - i)
            if no_antialias_up:
                layers += [
                    nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias),
                    norm_layer(norm, c // 2),
                    nn.ReLU(True),
                ]
            else:
                layers += [
                    Upsample(c),
                    nn.Conv2d(c, c // 2, kernel_size=3, stride=1, padding=1, bias=bias),
                    norm_layer(norm, c // 2),
                    nn.ReLU(True),
                ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, kernel_size=7),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def _check_input(self, x: Tensor) -> None:
        m = self.size_multiple
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % m or x.shape[3] % m:
            raise ValueError(
                f"Expected input of shape (B, {self.in_channels}, H, W) with H and W divisible by {m}. "
                f"Got {tuple(x.shape)}."
            )

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        layers = list(layers)
        n = len(self.model)
        if (not layers or any(not isinstance(i, int) or isinstance(i, bool) for i in layers)
                or any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= n):
            raise ValueError(
                f"Expected layers as increasing indices into the generator's {n} modules (0 to {n - 1}), "
                f"e.g. the reference's nce_layers [0, 4, 8, 12, 16]. Got {layers!r}."
            )
        return layers

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self.model(x)

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """The outputs of ``model[i]`` for each ``i`` in ``layers``; stops after the last one.

        Index ``i`` means what it means in the reference's ``nce_layers``: with the defaults,
        0 is the reflection-padded input, 4 the first down conv before its norm, 8 the second
        down conv before its norm, 12 the first residual block's output, 16 the fifth's.

        Args:
            x: input images, as for :meth:`forward`.
            layers: strictly increasing module indices.
        """
        self._check_input(x)
        wanted = self._check_layers(layers)
        feats: list[Tensor] = []
        for i, module in enumerate(self.model[: wanted[-1] + 1]):
            x = module(x)
            if i == wanted[len(feats)]:
                feats.append(x)
        return feats

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """The channel count of each feature :meth:`encode` returns, without running anything."""
        wanted = set(self._check_layers(layers))
        channels, out = self.in_channels, []
        for i, module in enumerate(self.model):
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                channels = module.out_channels
            if i in wanted:
                out.append(channels)
        return out


@dataclasses.dataclass(frozen=True)
class CUTResnetConfig:
    """Options of ``cut_resnet_6blocks`` and ``cut_resnet_9blocks``, at CUT's defaults.

    Args:
        ngf: channels of the first convolution (the blocks run at 4 ngf).
        norm: ``instance`` (CUT), ``batch``, ``syncbatch`` or ``none``.
        dropout: Dropout(0.5) in every residual block (CUT trains with ``--no_dropout``: off).
        padding_type: ``reflect``, ``replicate`` or ``zero`` in the residual blocks.
        no_antialias: plain strided convolutions on the way down (reference ``--no_antialias``).
        no_antialias_up: transposed convolutions on the way up (``--no_antialias_up``).
        init_type: weight initialisation, see :func:`ganzoo.layers.init_weights`; CUT uses
            ``xavier`` where CycleGAN uses ``normal``.
        init_gain: its standard deviation or gain.
    """

    ngf: int = 64
    norm: NormType = "instance"
    dropout: bool = False
    padding_type: PaddingType = "reflect"
    no_antialias: bool = False
    no_antialias_up: bool = False
    init_type: InitType = "xavier"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        check_norm(self.norm)
        check_padding(self.padding_type)
        check_init(self.init_type, self.init_gain)


@dataclasses.dataclass(frozen=True)
class CUTResnetBlocksConfig(CUTResnetConfig):
    """Options of ``cut_resnet``: those of :class:`CUTResnetConfig` plus ``n_blocks``."""

    n_blocks: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {self.n_blocks}")


def _build(cfg: CUTResnetConfig, in_channels: int, out_channels: int, n_blocks: int) -> CUTResnetGenerator:
    net = CUTResnetGenerator(
        in_channels, out_channels, ngf=cfg.ngf, n_blocks=n_blocks, norm=cfg.norm, dropout=cfg.dropout,
        padding_type=cfg.padding_type, no_antialias=cfg.no_antialias, no_antialias_up=cfg.no_antialias_up,
    )
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_cut_resnet_6blocks(cfg: CUTResnetConfig, *, in_channels: int, out_channels: int) -> CUTResnetGenerator:
    """The reference's ``resnet_6blocks`` with CUT's options, initialised."""
    return _build(cfg, in_channels, out_channels, 6)


def build_cut_resnet_9blocks(cfg: CUTResnetConfig, *, in_channels: int, out_channels: int) -> CUTResnetGenerator:
    """The reference's ``resnet_9blocks`` (CUT's default), initialised."""
    return _build(cfg, in_channels, out_channels, 9)


def build_cut_resnet(cfg: CUTResnetBlocksConfig, *, in_channels: int, out_channels: int) -> CUTResnetGenerator:
    """The reference's ResnetGenerator with any number of blocks, initialised."""
    return _build(cfg, in_channels, out_channels, cfg.n_blocks)


GENERATORS: list[ComponentSpec] = [
    ComponentSpec("cut_resnet_6blocks", CUTResnetConfig, build_cut_resnet_6blocks,
                  "CUT ResNet generator, anti-aliased, 6 blocks"),
    ComponentSpec("cut_resnet_9blocks", CUTResnetConfig, build_cut_resnet_9blocks,
                  "CUT ResNet generator, anti-aliased, 9 blocks (256 px)"),
    ComponentSpec("cut_resnet", CUTResnetBlocksConfig, build_cut_resnet,
                  "CUT ResNet generator, anti-aliased, n_blocks residual blocks"),
]

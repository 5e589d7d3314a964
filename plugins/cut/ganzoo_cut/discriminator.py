"""CUT's PatchGAN: the pix2pix/CycleGAN discriminator with blur-pooled down-sampling.

Module for module the reference's ``NLayerDiscriminator`` with anti-aliasing (CUT's default):
each stride-2 convolution becomes Conv4x4 stride 1, [norm], LeakyReLU(0.2),
:class:`~ganzoo_cut.antialias.Downsample`, so its ``{epoch}_net_D.pth`` loads strictly. With
``no_antialias`` the reference builds exactly the CycleGAN PatchGAN, so that is what we build
(:class:`ganzoo.layers.NLayerDiscriminator`).
"""
from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from ganzoo import ComponentSpec
from ganzoo.layers import (
    InitType,
    NLayerDiscriminator,
    NormType,
    check_init,
    check_norm,
    init_weights,
    norm_layer,
    use_bias,
)
from ganzoo_cut.antialias import Downsample


class AntialiasedNLayerDiscriminator(nn.Module):
    """PatchGAN whose down-sampling blurs before it subsamples; a map of logits, one per patch.

    Conv4x4 stride 1 (ndf, always biased) + LeakyReLU(0.2) + Downsample; ``n_layers - 1``
    more groups Conv4x4 stride 1 (``ndf * min(2**n, 8)`` channels) + norm + LeakyReLU +
    Downsample; Conv4x4 stride 1 + norm + LeakyReLU; Conv4x4 stride 1 to one channel (always
    biased). Layers live in ``model``; with ``n_layers=3`` the convolutions are ``model.0``,
    ``.3``, ``.7``, ``.11``, ``.14`` and the filters ``model.2``, ``.6``, ``.10``.

    Args:
        in_channels: channels of the input image.
        ndf: channels of the first convolution.
        n_layers: number of down-sampling groups.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, 1, H', W')`, e.g. 30x30 for 256x256 with ``n_layers=3``.

    Example:
        >>> AntialiasedNLayerDiscriminator(3)(torch.rand(1, 3, 256, 256)).shape
        torch.Size([1, 1, 30, 30])
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: NormType = "instance") -> None:
        super().__init__()
        self.in_channels = in_channels
        bias = use_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=1, padding=1),
            nn.LeakyReLU(0.2, True),
            Downsample(ndf),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
                Downsample(ndf * mult),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias),
            norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Expected input of shape (B, {self.in_channels}, H, W). Got {tuple(x.shape)}.")
        return self.model(x)


@dataclasses.dataclass(frozen=True)
class CUTPatchGANConfig:
    """Options of ``cut_patchgan_70``, at CUT's defaults.

    Args:
        ndf: channels of the first convolution.
        norm: ``instance`` (CUT), ``batch``, ``syncbatch`` or ``none``.
        no_antialias: strided convolutions instead of conv + blur-pool (``--no_antialias``).
        init_type: weight initialisation, see :func:`ganzoo.layers.init_weights`.
        init_gain: its standard deviation or gain.
    """

    ndf: int = 64
    norm: NormType = "instance"
    no_antialias: bool = False
    init_type: InitType = "xavier"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.ndf < 1:
            raise ValueError(f"ndf must be >= 1, got {self.ndf}")
        check_norm(self.norm)
        check_init(self.init_type, self.init_gain)


@dataclasses.dataclass(frozen=True)
class CUTNLayerPatchGANConfig(CUTPatchGANConfig):
    """Options of ``cut_patchgan``: those of ``cut_patchgan_70`` plus ``n_layers``."""

    n_layers: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")


def _build(cfg: CUTPatchGANConfig, in_channels: int, n_layers: int) -> nn.Module:
    cls = NLayerDiscriminator if cfg.no_antialias else AntialiasedNLayerDiscriminator
    return init_weights(cls(in_channels, cfg.ndf, n_layers, cfg.norm), cfg.init_type, cfg.init_gain)


def build_cut_patchgan_70(cfg: CUTPatchGANConfig, *, in_channels: int) -> nn.Module:
    """The reference's ``basic`` discriminator with CUT's options, initialised."""
    return _build(cfg, in_channels, 3)


def build_cut_patchgan(cfg: CUTNLayerPatchGANConfig, *, in_channels: int) -> nn.Module:
    """The reference's ``n_layers`` discriminator with CUT's options, initialised."""
    return _build(cfg, in_channels, cfg.n_layers)


DISCRIMINATORS: list[ComponentSpec] = [
    ComponentSpec("cut_patchgan_70", CUTPatchGANConfig, build_cut_patchgan_70,
                  "anti-aliased PatchGAN, 3 layers (CUT's basic D)"),
    ComponentSpec("cut_patchgan", CUTNLayerPatchGANConfig, build_cut_patchgan,
                  "anti-aliased PatchGAN with n_layers down-sampling groups"),
]

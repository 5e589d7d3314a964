"""PatchGAN and PixelGAN discriminators (pix2pix, CycleGAN), registered as built-in components.

Layouts match the reference's ``NLayerDiscriminator`` and ``PixelDiscriminator`` module for
module, so its checkpoints load with ``strict=True``. They output a map of logits, one per
overlapping patch (or per pixel); no sigmoid, the adversarial loss applies it if needed.
"""
from __future__ import annotations

import dataclasses
import re

from torch import Tensor, nn

from ganzoo.components import ComponentSpec
from ganzoo.hookspecs import hookimpl
from ganzoo.reference import ReferenceLayout
from ganzoo.layers.checks import check_image
from ganzoo.layers.init import InitType, check_init, init_weights
from ganzoo.layers.norm import NormType, check_norm, norm_layer, use_bias


class NLayerDiscriminator(nn.Module):
    """PatchGAN: strided 4x4 convolutions that classify each overlapping patch as real or fake.

    Conv4x4 stride 2 + LeakyReLU(0.2) (never normalised, always biased); ``n_layers - 1`` more
    Conv4x4 stride 2 with ``ndf * min(2**n, 8)`` channels + norm + LeakyReLU; one Conv4x4
    stride 1 + norm + LeakyReLU; a final Conv4x4 stride 1 to one channel (always biased). With
    ``n_layers=3`` each output sees a 70x70 input patch. Layers live in ``model``.

    Args:
        in_channels: channels of the input (6 for pix2pix, which sees ``concat(A, B)``).
        ndf: channels of the first convolution.
        n_layers: number of stride-2 convolutions.
        norm: normalisation; conv biases follow :func:`ganzoo.layers.use_bias`.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, 1, H', W')`, e.g. 30x30 for 256x256 with ``n_layers=3``.

    Example:
        >>> d = NLayerDiscriminator(3)
        >>> d(torch.rand(1, 3, 256, 256)).shape
        torch.Size([1, 1, 30, 30])
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: NormType = "instance") -> None:
        super().__init__()
        self.in_channels = in_channels
        bias = use_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=2, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
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
        check_image(x, self.in_channels)
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convolutions that classify every pixel on its own (colour, not texture).

    Conv1x1 (ndf, biased) + LeakyReLU(0.2), Conv1x1 (2 ndf) + norm + LeakyReLU(0.2), Conv1x1
    to one channel. As in the reference, the *last* conv also follows :func:`use_bias`, so it
    has no bias with batch norm. Layers live in ``net``.

    Args:
        in_channels: channels of the input.
        ndf: channels of the first convolution.
        norm: normalisation after the second convolution.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, 1, H, W)`

    Example:
        >>> PixelDiscriminator(3)(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(self, in_channels: int, ndf: int = 64, norm: NormType = "instance") -> None:
        super().__init__()
        self.in_channels = in_channels
        bias = use_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.in_channels)
        return self.net(x)


@dataclasses.dataclass(frozen=True)
class PatchGANConfig:
    """Options of ``patchgan_70`` and ``pixelgan``.

    Args:
        ndf: channels of the first convolution.
        norm: ``instance`` (CycleGAN), ``batch`` (pix2pix), ``syncbatch`` or ``none``.
        init_type: weight initialisation, see :func:`ganzoo.layers.init_weights`.
        init_gain: its standard deviation or gain.
    """

    ndf: int = 64
    norm: NormType = "instance"
    init_type: InitType = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.ndf < 1:
            raise ValueError(f"ndf must be >= 1, got {self.ndf}")
        check_norm(self.norm)
        check_init(self.init_type, self.init_gain)


@dataclasses.dataclass(frozen=True)
class NLayerPatchGANConfig(PatchGANConfig):
    """Options of ``patchgan``: those of ``patchgan_70`` plus ``n_layers`` stride-2 convolutions."""

    n_layers: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")


def build_patchgan_70(cfg: PatchGANConfig, *, in_channels: int) -> nn.Module:
    """The reference's ``basic`` discriminator, initialised."""
    net = NLayerDiscriminator(in_channels, cfg.ndf, 3, cfg.norm)
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_patchgan(cfg: NLayerPatchGANConfig, *, in_channels: int) -> nn.Module:
    """The reference's ``n_layers`` discriminator, initialised."""
    net = NLayerDiscriminator(in_channels, cfg.ndf, cfg.n_layers, cfg.norm)
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_pixelgan(cfg: PatchGANConfig, *, in_channels: int) -> nn.Module:
    """The reference's ``pixel`` discriminator, initialised."""
    net = PixelDiscriminator(in_channels, cfg.ndf, cfg.norm)
    return init_weights(net, cfg.init_type, cfg.init_gain)


@hookimpl
def ganzoo_register_discriminators() -> list[ComponentSpec]:
    return [
        ComponentSpec("patchgan_70", PatchGANConfig, build_patchgan_70, "PatchGAN, 3 layers, 70x70 patches"),
        ComponentSpec("patchgan", NLayerPatchGANConfig, build_patchgan, "PatchGAN with n_layers stride-2 convs"),
        ComponentSpec("pixelgan", PatchGANConfig, build_pixelgan, "1x1 PixelGAN, per-pixel real/fake"),
    ]


@hookimpl
def ganzoo_read_reference_state(state, kind: str, source: str):
    """The reference's NLayerDiscriminator (``model.*``) or PixelDiscriminator (``net.*``)."""
    if kind != "discriminator":
        return None
    for prefix, kernel in (("model", 4), ("net", 1)):
        first = state.get(f"{prefix}.0.weight")
        if first is None or first.dim() != 4 or tuple(first.shape[-2:]) != (kernel, kernel):
            continue
        plain = re.compile(rf"{prefix}\.\d+\.(weight|bias|running_mean|running_var|num_batches_tracked)")
        if not all(plain.fullmatch(k) for k in state):
            return None  # other layers too (e.g. an anti-aliased PatchGAN's blur filters): another plugin's layout
        convs = sorted(int(m.group(1)) for k, v in state.items()
                       if (m := re.fullmatch(rf"{prefix}\.(\d+)\.weight", k)) and v.dim() == 4)
        if len(convs) < 3:
            return None
        second = convs[1]  # the first normalised conv
        bias, affine = f"{prefix}.{second}.bias" in state, f"{prefix}.{second + 1}.weight" in state
        norm = "batch" if affine else "instance" if bias else "none"
        settings = {"ndf": int(first.shape[0]), "norm": norm}
        cin = int(first.shape[1])
        if prefix == "net":
            return ReferenceLayout("discriminator", "pixelgan", settings, in_channels=cin)
        n_layers = len(convs) - 2
        if n_layers == 1 and int(state[f"model.{second}.weight"].shape[0]) == int(first.shape[0]):
            n_layers = 0  # one stride-1 conv that keeps the width
        if n_layers == 3:
            return ReferenceLayout("discriminator", "patchgan_70", settings, in_channels=cin)
        return ReferenceLayout("discriminator", "patchgan", {**settings, "n_layers": n_layers}, in_channels=cin)
    return None

"""``timm_unet``: a U-Net generator whose encoder is a timm CNN backbone.

timm builds the encoder (``features_only=True``) and describes its feature pyramid: the
channels and stride of every level. The decoder climbs back up that pyramid. At each level it
upsamples, concatenates the encoder's map of that level (the U-Net skip) and applies two
conv-norm-ReLU layers. A last stage returns to the input resolution with the input image
itself as the skip, and a convolution and Tanh produce the output image.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv, load_state_dict
from torch import Tensor, nn

from ganzoo.layers import NormType, check_image, check_norm, init_weights, norm_layer, use_bias

_EXAMPLES = "e.g. resnet18, efficientnet_lite0, mobilenetv3_small_100"


@dataclasses.dataclass(frozen=True)
class TimmUnetConfig:
    """Options of ``timm_unet`` (the keys of the recipe's ``[generator]`` section).

    Args:
        backbone: a timm model name (see ``timm.list_models()``), optionally with a tag such
            as ``resnet18.a1_in1k``. CNNs with a feature pyramid work (ResNets, EfficientNets,
            MobileNets, ConvNeXt, RegNets...). Vision transformers do not, because all their
            features share one stride.
        depth: how many pyramid levels to use, finest first. timm cuts most backbones after
            the deepest one: 4 keeps a ResNet down to stride 16, and 5 keeps all of it (stride 32).
            With batch size 1, make crops at least twice that stride: the backbone's batch
            norm cannot train on a 1x1 feature map.
        decoder_width: channels of the full-resolution stage. The stage at pyramid level i
            has ``decoder_width * 2**min(i, 3)`` channels.
        norm: normalisation of the decoder. The backbone keeps its own (usually batch norm).
        pretrained_path: a local weights file for the backbone, holding the state_dict of
            ``timm.create_model(backbone)`` (``.safetensors``, or a torch file that is loaded
            with ``weights_only=True``). Leave it as "" to start from timm's random
            initialisation. Nothing is ever downloaded.
    """

    backbone: str = "resnet18"
    depth: int = 4
    decoder_width: int = 64
    norm: NormType = "instance"
    pretrained_path: str = ""

    def __post_init__(self) -> None:
        # Each message starts with the field's name: ganzoo points the recipe error at that key.
        if not timm.is_model(self.backbone):
            close = difflib.get_close_matches(self.backbone, timm.list_models(), n=1)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise ValueError(
                f"backbone {self.backbone!r} is unknown to timm {timm.__version__}.{hint} "
                f"Use a timm model name, {_EXAMPLES} (timm.list_models() lists them all)."
            )
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.decoder_width < 1:
            raise ValueError(f"decoder_width must be >= 1, got {self.decoder_width}")
        check_norm(self.norm)
        if self.pretrained_path and not Path(self.pretrained_path).is_file():
            raise ValueError(
                f"pretrained_path {self.pretrained_path!r}: no such file. Give a local weights "
                'file (.safetensors or .pth), or pretrained_path = "" to train from scratch.'
            )


class _UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip, then two conv-norm-ReLU layers."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormType) -> None:
        super().__init__()
        bias = use_bias(norm)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        # Upsampling to the skip's exact size (not by a factor) also covers backbones
        # whose strides are not all 2.
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))


class TimmUnet(nn.Module):
    """A U-Net whose encoder is ``timm.create_model(backbone, features_only=True)``.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        backbone: a timm model name with a feature pyramid.
        depth: how many pyramid levels to use.
        decoder_width: channels of the full-resolution decoder stage.
        norm: normalisation of the decoder (see :func:`ganzoo.layers.norm_layer`).

    Attributes:
        size_multiple: H and W must be multiples of this number, which is the stride of the
            deepest level used. ganzoo's inference pads inputs to it.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`, H and W multiples of ``size_multiple``, values in [-1, 1].
        - Output: :math:`(B, C_{out}, H, W)`, values in [-1, 1].

    Example:
        >>> net = TimmUnet(3, 3, backbone="resnet18", depth=4)
        >>> net.size_multiple
        16
        >>> net(torch.rand(1, 3, 64, 64) * 2 - 1).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        backbone: str = "resnet18",
        depth: int = 4,
        decoder_width: int = 64,
        norm: NormType = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.encoder = _create_encoder(backbone, depth, in_channels)
        channels = self.encoder.feature_info.channels()
        strides = self.encoder.feature_info.reduction()
        if any(a >= b for a, b in zip(strides, strides[1:])):
            raise ValueError(
                f"backbone {backbone!r} does not return a feature pyramid (strides {strides}), so it "
                f"cannot feed a U-Net. Pick a CNN backbone, {_EXAMPLES}."
            )
        self.size_multiple = strides[-1]

        widths = [decoder_width * 2 ** min(i, 3) for i in range(depth)]
        blocks, ch = [], channels[-1]
        for level in reversed(range(depth - 1)):  # from the second-deepest level up to the finest
            blocks.append(_UpBlock(ch + channels[level], widths[level], norm))
            ch = widths[level]
        self.blocks = nn.ModuleList(blocks)
        self.final = _UpBlock(ch + in_channels, decoder_width, norm)
        self.head = nn.Sequential(nn.Conv2d(decoder_width, out_channels, 3, padding=1), nn.Tanh())
        # The decoder gets the GAN initialisation of the reference implementations; the
        # encoder keeps timm's own (or the pretrained weights loaded later).
        for part in (self.blocks, self.final, self.head):
            init_weights(part, "normal", 0.02)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.in_channels, self.size_multiple, "x")
        features = self.encoder(x)
        y = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            y = block(y, skip)
        return self.head(self.final(y, x))


def _create_encoder(backbone: str, depth: int, in_channels: int) -> nn.Module:
    """The timm feature extractor for the first ``depth`` levels; errors become ValueErrors."""
    try:
        return timm.create_model(
            backbone, features_only=True, pretrained=False, in_chans=in_channels,
            out_indices=tuple(range(depth)),
        )
    except IndexError:
        levels = len(timm.create_model(backbone, features_only=True, pretrained=False).feature_info)
        raise ValueError(f"depth {depth}: backbone {backbone!r} has only {levels} feature levels.") from None
    except RuntimeError as exc:  # timm's "features_only not implemented for ..."
        raise ValueError(
            f"backbone {backbone!r}: timm cannot build it as a feature extractor ({exc}). "
            f"Pick a CNN backbone, {_EXAMPLES}."
        ) from exc


def load_backbone_weights(encoder: nn.Module, path: str | Path, in_channels: int) -> None:
    """Load a timm model's state_dict from the file ``path`` into ``encoder``, strictly.

    Keys match with dots and underscores treated alike, because timm's feature wrapper
    flattens nested Sequentials (``stem.0.weight`` becomes ``stem_0.weight``). Tensors that
    only the full model has, such as the classifier or cut-off stages, are ignored. Every
    encoder tensor must be present. The first convolution is adapted to ``in_channels``
    the way timm adapts it for pretrained weights.
    """
    try:
        # timm reads .safetensors with safetensors and other files with torch.load(weights_only=True).
        state = load_state_dict(str(path), use_ema=True)
    except Exception as exc:  # any unreadable user file is a user error; keep the cause
        raise ValueError(f"pretrained_path {str(path)!r}: cannot read weights: {type(exc).__name__}: {exc}") from exc
    found = {key.replace(".", "_"): value for key, value in state.items() if isinstance(value, Tensor)}
    first_conv = encoder.pretrained_cfg.get("first_conv")
    first_weight = f"{first_conv}.weight".replace(".", "_") if isinstance(first_conv, str) else None
    loaded, missing, misshaped = {}, [], []
    for key, own in encoder.state_dict().items():
        flat = key.replace(".", "_")
        value = found.get(flat)
        if value is None:
            missing.append(key)
            continue
        if flat == first_weight and value.ndim == 4 and value.shape[1] != own.shape[1]:
            value = adapt_input_conv(in_channels, value, base_chans=value.shape[1])
        if value.shape != own.shape:
            misshaped.append(f"{key} {tuple(value.shape)} != {tuple(own.shape)}")
        loaded[key] = value
    if missing or misshaped:
        first = f"missing {missing[0]}" if missing else f"wrong shape {misshaped[0]}"
        raise ValueError(
            f"pretrained_path {str(path)!r} does not fit this timm encoder: {len(missing)} of "
            f"{len(loaded) + len(missing)} tensors missing and {len(misshaped)} of the wrong shape ({first}). "
            "Save the weights of timm.create_model(<the recipe's backbone>).state_dict()."
        )
    encoder.load_state_dict(loaded, strict=True)


def build_timm_unet(cfg: TimmUnetConfig, *, in_channels: int, out_channels: int) -> TimmUnet:
    """Build ``timm_unet`` for ``in_channels`` -> ``out_channels`` images (the registered build)."""
    net = TimmUnet(
        in_channels, out_channels, backbone=cfg.backbone, depth=cfg.depth,
        decoder_width=cfg.decoder_width, norm=cfg.norm,
    )
    if cfg.pretrained_path:
        load_backbone_weights(net.encoder, cfg.pretrained_path, in_channels)
    return net

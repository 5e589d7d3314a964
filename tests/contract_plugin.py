"""A third model family written only against ganzoo's public API: the proof of the method contract.

"featuregan" has a section kind of its own (``feature_head``, registered by this plugin), a
network created lazily from the first batch's feature shapes (the heads), and a loss that reads
the generator's intermediate features. Its tests (tests/test_method_contract.py) load it through
``GANZOO_PLUGINS`` and train, resume and export it with the CLI.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import ComponentSpec, KindSpec, Method, MethodContext, MethodSpec, hookimpl, set_requires_grad


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    width: int = 8


class FeatureHeads(nn.Module):
    """One 1x1 conv per feature layer, projecting each to ``width`` channels."""

    def __init__(self, cfg: HeadConfig, *, channels: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Conv2d(c, cfg.width, 1) for c in channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.normalize(h(f).flatten(2), dim=1) for h, f in zip(self.heads, feats)]


@dataclasses.dataclass(frozen=True)
class FeatureGANConfig:
    layers: list[int] = dataclasses.field(default_factory=lambda: [0, 4])
    lambda_feat: float = 1.0


class FeatureGAN(Method):
    """GAN loss plus a feature-consistency loss: the heads' projections of G's features on the
    input and on the output must agree (a toy relative of CUT's PatchNCE)."""

    def __init__(self, cfg: FeatureGANConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.G = ctx.features("generator", ctx.network(
            "G", ctx.build("generator", in_channels=ctx.channels_a, out_channels=ctx.channels_b)))
        self.D = ctx.network("D", ctx.build("discriminator", in_channels=ctx.channels_b))
        ctx.optimizer("G", [self.G])
        ctx.optimizer("D", [self.D])
        self.gan_loss = ctx.build("loss")
        self.heads: FeatureHeads | None = None

    def setup(self, real_a, real_b):
        with torch.no_grad():
            feats = self.G.encode(real_a, self.cfg.layers)
        self.heads = self.ctx.network("H", self.ctx.build("head", channels=[f.shape[1] for f in feats]))
        self.ctx.optimizer("H", [self.heads])

    def generator(self, direction):
        if direction != "AtoB":
            raise ValueError("featuregan translates A to B only")
        return self.G

    def train_step(self, real_a, real_b):
        ctx = self.ctx
        with ctx.autocast():
            fake_b = self.G(real_a)
        set_requires_grad([self.D], True)
        ctx.optimizers["D"].zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_d = 0.5 * (self.gan_loss(self.D(real_b), True) + self.gan_loss(self.D(fake_b.detach()), False))
        ctx.update(loss_d, "D")
        set_requires_grad([self.D], False)
        ctx.optimizers["G"].zero_grad(set_to_none=True)
        ctx.optimizers["H"].zero_grad(set_to_none=True)
        with ctx.autocast():
            q = self.heads(self.G.encode(fake_b, self.cfg.layers))
            k = self.heads(self.G.encode(real_a, self.cfg.layers))
            loss_feat = sum((1 - (a * b).sum(1)).mean() for a, b in zip(q, k)) * self.cfg.lambda_feat
            loss_g = self.gan_loss(self.D(fake_b), True, for_discriminator=False) + loss_feat
        ctx.backward(loss_g, "G")
        ctx.step("G")
        ctx.step("H")
        set_requires_grad([self.D], True)
        return {"G": float(loss_g.detach()), "feat": float(loss_feat.detach()), "D": float(loss_d.detach())}


class PlainGenerator(nn.Module):
    """A generator with no ``encode``: featuregan must refuse it by name."""

    def __init__(self, cfg: HeadConfig, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


@hookimpl
def ganzoo_register_generators():
    return [ComponentSpec("plain_conv", HeadConfig, PlainGenerator, "one conv, no features")]


@hookimpl
def ganzoo_register_kinds():
    return [KindSpec("feature_head", "feature_heads", "projection heads over generator features",
                     example_args={"channels": [4, 8]})]


@hookimpl
def ganzoo_register_components():
    return [ComponentSpec("conv1x1", HeadConfig, FeatureHeads, "1x1 conv per feature layer", kind="feature_head")]


@hookimpl
def ganzoo_register_methods():
    return [MethodSpec(
        "featuregan", FeatureGANConfig, FeatureGAN, "GAN + feature consistency (contract test)",
        sections={"generator": "generator", "discriminator": "discriminator", "loss": "loss", "head": "feature_head"},
        monitor="G",
        example={"generator": {"name": "resnet_6blocks", "ngf": 4}, "discriminator": {"name": "patchgan_70", "ndf": 4},
                 "loss": {"name": "lsgan"}, "head": {"name": "conv1x1"}},
    )]

"""The pix2pix training method: a conditional GAN with an L1 term (Isola et al. 2017).

As in the reference, the discriminator step comes first; the generator step then uses the
updated discriminator on the same fake. The discriminator judges concat(A, B) pairs.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo import Method, MethodContext, set_requires_grad


@dataclasses.dataclass(frozen=True)
class Pix2PixConfig:
    """Args:
        lambda_l1: weight of the L1 distance between fake B and real B.
    """

    lambda_l1: float = 100.0

    def __post_init__(self) -> None:
        if self.lambda_l1 < 0:
            raise ValueError(f"lambda_l1 must be >= 0, got {self.lambda_l1}")


class Pix2Pix(Method):
    """pix2pix (paired translation A -> B). Networks ``G`` and ``D`` as in the reference."""

    def __init__(self, cfg: Pix2PixConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        ca, cb = ctx.channels_a, ctx.channels_b
        G = ctx.network("G", ctx.build("generator", in_channels=ca, out_channels=cb))
        D = ctx.network("D", ctx.build("discriminator", in_channels=ca + cb))
        ctx.optimizer("G", [G])
        ctx.optimizer("D", [D])
        self.gan_loss = ctx.build("loss")
        self._visuals: dict[str, Tensor] = {}

    def generator(self, direction: str) -> nn.Module:
        if direction != "AtoB":
            raise ValueError(
                f"pix2pix translates A to B only (got {direction!r}); to go the other way, "
                "train with [data] direction = \"BtoA\""
            )
        return self.networks["G"]

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, float]:
        G, D = self.networks["G"], self.networks["D"]
        gan, ctx = self.gan_loss, self.ctx
        with ctx.autocast():
            fake_b = G(real_a)

        set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with ctx.autocast():
            fake_ab = torch.cat((real_a, fake_b), 1).detach()
            real_ab = torch.cat((real_a, real_b), 1)
            loss_d_fake = gan(D(fake_ab), False)
            loss_d_real = gan(D(real_ab), True)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
            penalty = gan.penalty(D, real_ab, fake_ab)
            if penalty is not None:
                loss_d = loss_d + penalty
        ctx.update(loss_d, "D")

        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_g_gan = gan(D(torch.cat((real_a, fake_b), 1)), True, for_discriminator=False)
            loss_g_l1 = F.l1_loss(fake_b, real_b) * self.cfg.lambda_l1
            loss_g = loss_g_gan + loss_g_l1
        ctx.update(loss_g, "G")
        set_requires_grad([D], True)

        self._visuals = {"real_A": real_a, "fake_B": fake_b, "real_B": real_b}
        return {
            "G_GAN": float(loss_g_gan.detach()), "G_L1": float(loss_g_l1.detach()), "G": float(loss_g.detach()),
            "D_real": float(loss_d_real.detach()), "D_fake": float(loss_d_fake.detach()), "D": float(loss_d.detach()),
        }

    def visuals(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self._visuals.items()}

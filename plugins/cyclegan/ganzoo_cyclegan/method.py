"""The CycleGAN training method: two generators, two discriminators, one training step.

Step order, loss terms and weights follow the reference (Zhu et al. 2017 and the
reference implementation): the generators are updated first with the discriminators
frozen, then both discriminators are updated on real images and on pooled fakes.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo import Method, MethodContext, set_requires_grad
from ganzoo_cyclegan.pool import ImagePool


@dataclasses.dataclass(frozen=True)
class CycleGANConfig:
    """CycleGAN loss weights and image pool.

    Args:
        lambda_a: weight of the cycle loss A -> B -> A.
        lambda_b: weight of the cycle loss B -> A -> B.
        lambda_identity: identity loss weight, relative to lambda_a / lambda_b
            (0.5 means the identity loss weighs half the cycle loss). 0 turns it off.
        pool_size: fakes kept in each image pool; 0 turns the pool off.
    """

    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50

    def __post_init__(self) -> None:
        for key in ("lambda_a", "lambda_b", "lambda_identity", "pool_size"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


class CycleGAN(Method):
    """CycleGAN (unpaired translation).

    Networks: ``G_A`` (A -> B), ``G_B`` (B -> A), ``D_A`` (judges domain B), ``D_B`` (judges
    domain A), named as in the reference so its checkpoints map one to one.
    """

    def __init__(self, cfg: CycleGANConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        ca, cb = ctx.channels_a, ctx.channels_b
        if cfg.lambda_identity > 0 and ca != cb:
            raise ValueError(
                f"lambda_identity {cfg.lambda_identity} needs channels_a == channels_b "
                f"(got {ca} and {cb}); set lambda_identity = 0"
            )
        n = {
            "G_A": ctx.network("G_A", ctx.build("generator", in_channels=ca, out_channels=cb)),
            "G_B": ctx.network("G_B", ctx.build("generator", in_channels=cb, out_channels=ca)),
            "D_A": ctx.network("D_A", ctx.build("discriminator", in_channels=cb)),
            "D_B": ctx.network("D_B", ctx.build("discriminator", in_channels=ca)),
        }
        ctx.optimizer("G", [n["G_A"], n["G_B"]])
        ctx.optimizer("D", [n["D_A"], n["D_B"]])
        self.gan_loss = ctx.build("loss")
        self.pool_a = ImagePool(cfg.pool_size, seed=ctx.seed * 2 + 1)  # fakes of domain A
        self.pool_b = ImagePool(cfg.pool_size, seed=ctx.seed * 2 + 2)  # fakes of domain B
        self._visuals: dict[str, Tensor] = {}

    def generator(self, direction: str) -> nn.Module:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        return self.networks["G_A" if direction == "AtoB" else "G_B"]

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, float]:
        n, gan, cfg, ctx = self.networks, self.gan_loss, self.cfg, self.ctx
        losses: dict[str, Tensor] = {}

        # Generators, with the discriminators frozen so no gradient is spent on them. The
        # generator loss is the reference's sum of six terms, but it splits into independent
        # graphs (A -> B -> A judged by D_A, B -> A -> B judged by D_B, the two identity
        # maps), so each part is back-propagated as soon as it is built and its activations
        # are freed: the gradients are the same sum, and peak memory holds one part instead
        # of all six generator passes. The generators run in the reference's order (which
        # matters with dropout, whose random masks follow that order).
        set_requires_grad([n["D_A"], n["D_B"]], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with ctx.autocast():
            fake_b = n["G_A"](real_a)
            rec_a = n["G_B"](fake_b)
            losses["G_A"] = gan(n["D_A"](fake_b), True, for_discriminator=False)
            losses["cycle_A"] = F.l1_loss(rec_a, real_a) * cfg.lambda_a
        ctx.backward(losses["G_A"] + losses["cycle_A"], "G")
        with ctx.autocast():
            fake_a = n["G_B"](real_b)
            rec_b = n["G_A"](fake_a)
            losses["G_B"] = gan(n["D_B"](fake_a), True, for_discriminator=False)
            losses["cycle_B"] = F.l1_loss(rec_b, real_b) * cfg.lambda_b
        ctx.backward(losses["G_B"] + losses["cycle_B"], "G")
        if cfg.lambda_identity > 0:
            with ctx.autocast():
                losses["idt_A"] = F.l1_loss(n["G_A"](real_b), real_b) * cfg.lambda_b * cfg.lambda_identity
            ctx.backward(losses["idt_A"], "G")
            with ctx.autocast():
                losses["idt_B"] = F.l1_loss(n["G_B"](real_a), real_a) * cfg.lambda_a * cfg.lambda_identity
            ctx.backward(losses["idt_B"], "G")
        ctx.step("G")
        fake_a, fake_b, rec_a, rec_b = (t.detach() for t in (fake_a, fake_b, rec_a, rec_b))

        # Discriminators, on real images and on fakes drawn from the history pools (one
        # backward per discriminator, again so only one graph is alive at a time).
        set_requires_grad([n["D_A"], n["D_B"]], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with ctx.autocast():
            losses["D_A"] = self._d_loss(n["D_A"], real_b, self.pool_b.query(fake_b))
        ctx.backward(losses["D_A"], "D")
        with ctx.autocast():
            losses["D_B"] = self._d_loss(n["D_B"], real_a, self.pool_a.query(fake_a))
        ctx.backward(losses["D_B"], "D")
        ctx.step("D")

        self._visuals = {
            "real_A": real_a, "fake_B": fake_b, "rec_A": rec_a,
            "real_B": real_b, "fake_A": fake_a, "rec_B": rec_b,
        }
        g_terms = [losses[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B") if k in losses]
        losses["G"] = torch.stack([t.detach().float() for t in g_terms]).sum()
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()  # one device sync
        return dict(zip(losses, values))

    def _d_loss(self, net: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        gan = self.gan_loss
        fake = fake.detach()
        loss = 0.5 * (gan(net(real), True) + gan(net(fake), False))
        penalty = gan.penalty(net, real, fake)
        return loss if penalty is None else loss + penalty

    def visuals(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self._visuals.items()}

    def extra_state(self) -> dict:
        return {"pool_A": self.pool_a.state_dict(), "pool_B": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.pool_a.load_state_dict(state["pool_A"])
        self.pool_b.load_state_dict(state["pool_B"])

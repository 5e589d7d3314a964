"""Built-in adversarial losses: lsgan, vanilla, wgangp (with its gradient penalty) and hinge.

Targets and reductions follow the reference's ``GANLoss``: lsgan is the mean squared error
to 1 (real) or 0 (fake) over the whole patch map, vanilla is BCE-with-logits, wgangp is
-mean / +mean of the critic output.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.components import ComponentSpec
from ganzoo.hookspecs import hookimpl
from ganzoo.losses import AdversarialLoss


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """Target values for real and fake predictions."""

    real_label: float = 1.0
    fake_label: float = 0.0


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """This loss has no options."""


@dataclasses.dataclass(frozen=True)
class WganGpConfig:
    """WGAN-GP: Wasserstein critic loss plus lambda_gp * (||grad D(x_hat)|| - constant)^2."""

    lambda_gp: float = 10.0
    constant: float = 1.0
    gp_type: Literal["mixed", "real", "fake"] = "mixed"

    def __post_init__(self) -> None:
        if self.lambda_gp < 0:
            raise ValueError(f"lambda_gp must be >= 0, got {self.lambda_gp}")


class _Labelled(AdversarialLoss):
    def __init__(self, cfg: LabelConfig) -> None:
        self.cfg = cfg

    def target(self, prediction: Tensor, target_is_real: bool) -> Tensor:
        value = self.cfg.real_label if target_is_real else self.cfg.fake_label
        return torch.full_like(prediction, value)


class LSGANLoss(_Labelled):
    def __call__(self, prediction, target_is_real, *, for_discriminator=True):
        return F.mse_loss(prediction, self.target(prediction, target_is_real))


class VanillaLoss(_Labelled):
    def __call__(self, prediction, target_is_real, *, for_discriminator=True):
        return F.binary_cross_entropy_with_logits(prediction, self.target(prediction, target_is_real))


class HingeLoss(AdversarialLoss):
    def __init__(self, cfg: NoConfig) -> None:
        self.cfg = cfg

    def __call__(self, prediction, target_is_real, *, for_discriminator=True):
        if not for_discriminator:  # the generator maximises the critic score
            return -prediction.mean()
        sign = -1.0 if target_is_real else 1.0
        return F.relu(1.0 + sign * prediction).mean()


class WganGpLoss(AdversarialLoss):
    def __init__(self, cfg: WganGpConfig) -> None:
        self.cfg = cfg

    def __call__(self, prediction, target_is_real, *, for_discriminator=True):
        return -prediction.mean() if target_is_real else prediction.mean()

    def penalty(self, netD: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """The gradient penalty on points between (or at) real and fake samples."""
        real, fake = real.detach(), fake.detach()
        if self.cfg.gp_type == "real":
            x = real
        elif self.cfg.gp_type == "fake":
            x = fake
        else:
            alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
            x = alpha * real + (1 - alpha) * fake
        x = x.requires_grad_(True)
        out = netD(x)
        (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True)
        norm = (grad.flatten(1) + 1e-16).norm(2, dim=1)
        return ((norm - self.cfg.constant) ** 2).mean() * self.cfg.lambda_gp


@hookimpl
def ganzoo_register_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec("lsgan", LabelConfig, LSGANLoss, "least-squares GAN: MSE to 1 (real) / 0 (fake)"),
        ComponentSpec("vanilla", LabelConfig, VanillaLoss, "original GAN: BCE with logits"),
        ComponentSpec("hinge", NoConfig, HingeLoss, "hinge loss for D, -mean(D) for G"),
        ComponentSpec("wgangp", WganGpConfig, WganGpLoss, "Wasserstein loss with gradient penalty"),
    ]

"""Loss functions: the adversarial-loss interface and reconstruction helpers."""
from __future__ import annotations

from torch import Tensor, nn


class AdversarialLoss:
    """A GAN objective ("gan mode").

    ``loss(prediction, target_is_real, for_discriminator=...)`` returns a scalar for a
    discriminator output (any shape). ``penalty(netD, real, fake)`` returns an extra
    discriminator term (the WGAN-GP gradient penalty) or None.
    """

    def __call__(self, prediction: Tensor, target_is_real: bool, *, for_discriminator: bool = True) -> Tensor:
        raise NotImplementedError

    def penalty(self, netD: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        return None

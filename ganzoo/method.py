"""The Method interface: a training method owns its networks, optimisers and training step."""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from ganzoo.config import OptimConfig
from ganzoo.losses import AdversarialLoss
from ganzoo.precision import Precision


@dataclasses.dataclass(frozen=True)
class MethodParts:
    """What the core hands a method's ``build``: factories for the recipe's components.

    Args:
        make_generator: ``(in_channels, out_channels) -> nn.Module`` built by the recipe's
            generator component (whose ``build`` initialises the weights), on ``device``.
        make_discriminator: ``(in_channels) -> nn.Module``, likewise for the discriminator.
        gan_loss: the recipe's adversarial loss.
        optim: Adam settings; build optimisers with :meth:`adam`.
        channels_a: channels of domain A images.
        channels_b: channels of domain B images.
        device: the training device.
        precision: the run's precision: wrap forward passes in ``precision.autocast()`` and
            update with ``precision.backward_step(loss, optimizer, name)``.
        seed: the run's seed (for method-owned random state such as image pools).
    """

    make_generator: Callable[[int, int], nn.Module]
    make_discriminator: Callable[[int], nn.Module]
    gan_loss: AdversarialLoss
    optim: OptimConfig
    channels_a: int
    channels_b: int
    device: torch.device
    precision: Precision
    seed: int = 0

    def adam(self, modules: list[nn.Module]) -> torch.optim.Optimizer:
        """One Adam over all parameters of ``modules`` with the recipe's lr and betas."""
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.Adam(params, lr=self.optim.lr, betas=(self.optim.beta1, self.optim.beta2))


class Method(abc.ABC):
    """A training method (CycleGAN, pix2pix, ...).

    Subclasses set ``networks`` (name -> module; the names prefix the checkpoint keys, e.g.
    ``G_A``) and ``optimizers`` (name -> optimiser) in ``__init__``, and implement
    :meth:`train_step`. ``paired`` says whether the method needs aligned pairs.
    """

    paired: bool = False
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    @abc.abstractmethod
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """Run one training step on a batch in [-1, 1] and return its scalar losses."""

    @abc.abstractmethod
    def generator(self, direction: str) -> nn.Module:
        """The network that translates in ``direction`` (``"AtoB"`` or ``"BtoA"``).

        Raise ValueError if this method cannot translate that way.
        """

    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last training step for the image grid (name -> (B, C, H, W))."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Method-owned state beyond networks and optimisers (image pools...) for checkpoints.

        Values may be tensors, numbers, strings and nested lists or dicts of them.
        """
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)

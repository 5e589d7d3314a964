"""The Method interface: a training method owns its networks and its training step; the
features protocol for generators whose intermediate features a method reads."""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from ganzoo.context import MethodContext


@runtime_checkable
class FeatureGenerator(Protocol):
    """A generator that exposes intermediate features (CUT, DCLGAN and their kin read them).

    ``encode(x, layers)`` returns the activations after each of ``layers`` (increasing
    indices whose meaning the generator documents), in that order, without running the rest
    of the network. The built-in ResNet and U-Net generators implement it.
    """

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]: ...


class Method(abc.ABC):
    """A training method (CycleGAN, pix2pix, CUT, ...).

    ``__init__(cfg, ctx)`` builds the method's components through ``ctx`` (a
    :class:`ganzoo.MethodContext`): ``ctx.network(name, ctx.build(section, ...))`` places and
    registers a network (its name prefixes the checkpoint keys, e.g. ``G_A``) and
    ``ctx.optimizer(name, [nets])`` creates an optimiser with its schedule. Networks that
    depend on the data (CUT's patch MLPs) are created in :meth:`setup`, which the loop calls
    with the first batch. :meth:`train_step` runs one step, updating through
    ``ctx.backward(loss, name)`` and ``ctx.step(name)``.

    Example:
        >>> class MyMethod(Method):
        ...     def __init__(self, cfg, ctx):
        ...         super().__init__(cfg, ctx)
        ...         self.G = ctx.network("G", ctx.build("generator", in_channels=3, out_channels=3))
        ...         ctx.optimizer("G", [self.G])
    """

    def __init__(self, cfg: Any, ctx: MethodContext) -> None:
        self.cfg, self.ctx = cfg, ctx

    @property
    def networks(self) -> dict[str, nn.Module]:
        """Every registered network by name (live: includes networks made in :meth:`setup`)."""
        return self.ctx.networks

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name (live)."""
        return self.ctx.optimizers

    def setup(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        """Called once with the first training batch (also after a resume), before the first
        :meth:`train_step`: build networks whose shapes depend on the data here."""

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
        """Method-owned state beyond networks and optimisers (image pools, samplers' RNG...).

        Values may be tensors, numbers, strings and nested lists or dicts of them.
        """
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)


def set_requires_grad(nets: Sequence[nn.Module], flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of ``nets``."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)

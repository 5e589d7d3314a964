"""Every ganzoo hook specification, and nothing else.

Registration hooks (``ganzoo_register_<kind>s``) run once when the registry is built and
return lists of :class:`ganzoo.ComponentSpec`. Lifecycle hooks (``ganzoo_on_<event>``) are
notifications from the trainer and return None. Hooks are always called with keyword
arguments, so an implementation may accept any subset of a hook's arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ganzoo.components import ComponentSpec
    from ganzoo.trainer import Trainer

hookspec = pluggy.HookspecMarker("ganzoo")
hookimpl = pluggy.HookimplMarker("ganzoo")


@hookspec
def ganzoo_register_generators() -> list[ComponentSpec]:
    """Return the generator architectures this plugin provides.

    Called once, when the registry is built. ``build(cfg, *, in_channels, out_channels)``
    must return an ``nn.Module`` mapping ``(B, in_channels, H, W)`` images in [-1, 1] to
    ``(B, out_channels, H, W)``. Names must be unique across plugins; a duplicate is a
    PluginError naming both plugins.
    """


@hookspec
def ganzoo_register_discriminators() -> list[ComponentSpec]:
    """Return the discriminator architectures this plugin provides.

    Called once, when the registry is built. ``build(cfg, *, in_channels)`` returns an
    ``nn.Module`` mapping ``(B, in_channels, H, W)`` to a map (or vector) of logits.
    """


@hookspec
def ganzoo_register_losses() -> list[ComponentSpec]:
    """Return the adversarial losses (GAN modes) this plugin provides.

    Called once, when the registry is built. ``build(cfg)`` returns a
    :class:`ganzoo.losses.AdversarialLoss`.
    """


@hookspec
def ganzoo_register_pairings() -> list[ComponentSpec]:
    """Return the data pairings this plugin provides.

    Called once, when the registry is built. ``build(cfg, *, split, data, augment, seed)``
    returns a :class:`ganzoo.data.PairDataset` for ``split`` (``"train"``, ``"val"`` or
    ``"test"``), where ``data`` and ``augment`` are the recipe's
    :class:`ganzoo.config.DataConfig` and :class:`ganzoo.config.AugmentConfig`, and ``seed``
    seeds any random pairing.
    """


@hookspec
def ganzoo_register_methods() -> list[ComponentSpec]:
    """Return the training methods this plugin provides.

    Called once, when the registry is built. A method owns its networks, optimisers and one
    training step. ``build(cfg, *, parts)`` returns a :class:`ganzoo.Method`, where ``parts``
    is a :class:`ganzoo.MethodParts` with factories for the recipe's generator,
    discriminator and adversarial loss.
    """


@hookspec
def ganzoo_on_run_start(trainer: Trainer) -> None:
    """Called once before the first training step (also after a resume).

    :param trainer: the Trainer about to run; ``trainer.step`` is the step it starts from.
    """


@hookspec
def ganzoo_on_step_end(trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
    """Called after every training step (all optimiser updates of that step).

    :param trainer: the running Trainer (read-only use).
    :param step: training steps completed so far.
    :param metrics: this step's scalar losses; do not modify.
    """


@hookspec
def ganzoo_on_checkpoint_saved(trainer: Trainer, step: int, path: Path) -> None:
    """Called after a checkpoint has been written completely and atomically.

    :param trainer: the running Trainer.
    :param step: the step the checkpoint holds.
    :param path: the checkpoint file.
    """


@hookspec
def ganzoo_on_run_end(trainer: Trainer, status: str) -> None:
    """Called once when training stops.

    :param trainer: the Trainer that ran.
    :param status: ``"completed"``, ``"interrupted"`` or ``"failed"``.
    """

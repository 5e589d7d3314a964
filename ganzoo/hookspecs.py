"""Every ganzoo hook specification, and nothing else.

Registration hooks (``ganzoo_register_<kind>s``) run once when the registry is built and
return lists of specs. Reference hooks (``ganzoo_read_reference_state``, ``ganzoo_register_pretrained``)
let the plugin that owns an architecture recognise and fetch the weights its reference
implementation published. Lifecycle hooks (``ganzoo_on_<event>``) are notifications from the
training loop and return None. Hooks are always called with keyword
arguments, so an implementation may accept any subset of a hook's arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from torch import Tensor

    from ganzoo.components import ComponentSpec, KindSpec, MethodSpec
    from ganzoo.reference import PretrainedModel, ReferenceLayout
    from ganzoo.train import Trainer

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
def ganzoo_register_methods() -> list[MethodSpec]:
    """Return the training methods this plugin provides.

    Called once, when the registry is built. A :class:`ganzoo.MethodSpec` declares the
    recipe sections the method reads and the kind each holds, whether it needs paired data
    and which metric a plateau schedule watches. ``build(cfg, ctx=ctx)`` returns a
    :class:`ganzoo.Method`; ``ctx`` is the :class:`ganzoo.MethodContext` through which it
    builds its components and networks and creates its optimisers.
    """


@hookspec
def ganzoo_register_kinds() -> list[KindSpec]:
    """Return the kinds of component this plugin defines (beyond generators, discriminators,
    losses, pairings and methods).

    Called once, before any component is gathered. Components of a new kind are registered
    through :func:`ganzoo_register_components`; methods name the kind in their sections.
    """


@hookspec
def ganzoo_register_components() -> list[ComponentSpec]:
    """Return components of any kind, each with its ``kind`` field set.

    Called once, after :func:`ganzoo_register_kinds`. The generic form of the per-kind hooks;
    what ``build`` receives is up to the method that builds that kind.
    """


@hookspec
def ganzoo_read_reference_state(state: Mapping[str, Tensor], kind: str, source: str) -> ReferenceLayout | None:
    """Recognise a state_dict saved by a reference implementation this plugin reproduces.

    Called by ``ganzoo translate --checkpoint FILE.pth`` (``kind="generator"``) and by
    ``ganzoo run --init-from`` for its hints (any kind). Return a
    :class:`ganzoo.ReferenceLayout` (component name, the settings the weights decide, the
    defaults they cannot show, channels) when the keys and shapes are this plugin's layout,
    otherwise None. Raise :class:`ganzoo.CheckpointError` only when the layout is clearly
    yours but damaged. The first non-None result is used.

    :param state: the safely loaded state_dict (tensors only).
    :param kind: the component kind wanted.
    :param source: the file, for messages.
    """


@hookspec
def ganzoo_register_pretrained() -> list[PretrainedModel]:
    """Return the published pretrained generators this plugin knows (``ganzoo models list``).

    Called when the catalogue is listed or a model is downloaded. Names must be unique.
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

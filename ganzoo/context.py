"""MethodContext: what a method builds through (components, networks, optimisers, updates).

The core owns the machinery around a network: its device, memory format and compilation, its
identical start on every torchrun rank, the non-finite guard's map of its parameters, its
optimiser's schedule, and its state in checkpoints. A method reaches all of it by creating
networks and optimisers through the context, at build time or lazily (in ``Method.setup``
with the first batch); state a resumed checkpoint holds for a network or optimiser that does
not exist yet is kept and loaded the moment it is created.
"""
from __future__ import annotations

import contextlib
import warnings
from contextlib import AbstractContextManager
from typing import Any, Iterable

import torch
from torch import nn

from ganzoo.config import Recipe
from ganzoo.distributed import World, broadcast_parameters
from ganzoo.errors import CheckpointError, GanzooError, RecipeError
from ganzoo.method import FeatureGenerator
from ganzoo.registry import Registry
from ganzoo.schedule import Schedule
from ganzoo.update import Updater


class MethodContext:
    """The build context of one method.

    Args:
        recipe: the validated recipe (``ctx.config(section)`` reads one section's config).
        registry: the registered components.
        device: the training device.
        updater: precision, non-finite guard and gradient averaging for ``backward``/``step``.
        world: this process's place under torchrun.
        place_networks: apply ``[run] channels_last`` and ``compile`` to networks.

    Attributes:
        networks: name -> network, every network registered so far.
        optimizers: name -> optimiser.
        sections: network name -> the recipe section it was built from (when known).
        schedule: the learning-rate schedule of every optimiser.
    """

    def __init__(self, recipe: Recipe, registry: Registry, device: torch.device, updater: Updater | None = None,
                 world: World = World(), *, place_networks: bool = True) -> None:
        self.recipe, self.registry, self.device, self.world = recipe, registry, device, world
        self.updater = updater or Updater(recipe.run.precision, device, world)
        self.place_networks = place_networks
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.sections: dict[str, str] = {}
        self.schedule = Schedule(recipe.optim, recipe.run)
        self._built_from: dict[int, tuple[str, dict[str, Any]]] = {}
        self.build_args: dict[str, tuple[str, dict[str, Any]]] = {}  # network -> (section, build kwargs)
        self._last_section: str | None = None
        self._pending: dict[str, dict[str, Any]] = {"networks": {}, "optimizers": {}, "schedulers": {}}

    # ---- facts of the run ---------------------------------------------------------------
    @property
    def channels_a(self) -> int:
        return self.recipe.data.channels_a

    @property
    def channels_b(self) -> int:
        return self.recipe.data.channels_b

    @property
    def seed(self) -> int:
        return self.recipe.run.seed

    def config(self, section: str) -> Any:
        """The typed config of a component section (``ctx.config("generator").ngf``)."""
        return self._component(section).config

    def where(self, section: str) -> str:
        """``recipe.toml [section] name="x"``, for messages about that section."""
        return f'{self.recipe.source} [{section}] name="{self._component(section).name}"'

    # ---- building -----------------------------------------------------------------------
    def build(self, section: str, **kwargs: Any) -> Any:
        """Build the component a section names: ``spec.build(config, **kwargs)``.

        A ValueError or TypeError raised by the build is a RecipeError naming the section.
        """
        comp = self._component(section)
        spec = self.registry.get(comp.kind, comp.name)
        # on the meta device (dry runs, memory estimates) nothing may be allocated, even huge widths
        where = torch.device("meta") if self.device.type == "meta" else contextlib.nullcontext()
        try:
            with where:
                built = spec.build(comp.config, **kwargs)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, GanzooError):
                raise
            raise RecipeError(f"{self.where(section)}: {exc}") from exc
        if isinstance(built, nn.Module):
            self._built_from[id(built)] = (section, dict(kwargs))
        self._last_section = section
        return built

    def features(self, section: str, net: nn.Module) -> nn.Module:
        """Check that ``net`` (built from ``section``) exposes features (:class:`ganzoo.FeatureGenerator`)."""
        if not isinstance(net, FeatureGenerator):
            raise RecipeError(
                f"{self.where(section)}: method \"{self.recipe.method.name}\" reads intermediate features, but "
                f"{type(net).__name__} has no encode(x, layers) method. Choose a generator that implements "
                "ganzoo.FeatureGenerator (the built-in resnet_* and unet_* do)."
            )
        return net

    def place(self, net: nn.Module) -> nn.Module:
        """Move ``net`` to the device; NHWC and compiled when the recipe says so.

        ``compile`` compiles in place (``nn.Module.compile``), so the module object and its
        state_dict keys stay those of the eager module (no ``_orig_mod.`` prefix).
        """
        net = net.to(self.device)
        if not self.place_networks:
            return net
        if self.recipe.run.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.recipe.run.compile:
            # dynamo reads every tensor's .grad while tracing, which warns for non-leaf tensors
            warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf",
                                    category=UserWarning)
            net.compile()
        return net

    def network(self, name: str, net: nn.Module, *, section: str | None = None) -> nn.Module:
        """Place ``net`` and register it as ``name``: checkpointed, guarded, identical on every rank.

        ``section`` (default: the section ``net`` was built from) is used in messages about
        reference files. Returns the placed network.
        """
        origin = self._built_from.get(id(net))
        section = section or (origin[0] if origin else None)
        if not isinstance(net, nn.Module):
            section = section or self._last_section
            comp = self.recipe.sections.get(section) if section else None
            owner = f" ({self.registry.owner(comp.kind, comp.name)})" if comp else ""
            what = f"[{section}] " if section else ""
            raise RecipeError(f"{self.recipe.source} {what}network {name!r}: the plugin built a "
                              f"{type(net).__name__}, not a torch.nn.Module{owner}.")
        if name in self.networks:
            raise ValueError(f"network {name!r} is registered twice")
        net = self.place(net)
        broadcast_parameters([net], self.world)
        self.networks[name] = net
        if section:
            self.sections[name] = section
        if origin:
            self.build_args[name] = origin
        self.updater.watch(self.networks)
        state = self._pending["networks"].pop(name, None)
        if state is not None:
            from ganzoo.inference import load_state_dict_checked

            load_state_dict_checked(net, state, f"checkpoint network '{name}'")
        return net

    def optimizer(self, name: str, params: Iterable[nn.Module | torch.Tensor], *, lr: float | None = None,
                  betas: tuple[float, float] | None = None) -> torch.optim.Optimizer:
        """Adam over ``params`` (networks or tensors) with ``[optim]`` settings unless given;
        registered for the schedule, checkpoints and ``step(name)``."""
        if name in self.optimizers:
            raise ValueError(f"optimiser {name!r} is created twice")
        tensors = [p for item in params for p in (item.parameters() if isinstance(item, nn.Module) else [item])]
        optim = self.recipe.optim
        opt = torch.optim.Adam(tensors, lr=optim.lr if lr is None else lr,
                               betas=betas or (optim.beta1, optim.beta2))
        self.optimizers[name] = opt
        self.schedule.add(name, opt)
        try:
            if name in self._pending["optimizers"]:
                opt.load_state_dict(self._pending["optimizers"].pop(name))
            if name in self._pending["schedulers"]:
                self.schedule.load(name, self._pending["schedulers"].pop(name))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint optimiser '{name}': does not fit this run ({exc}).") from None
        return opt

    # ---- updating -----------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager:
        """The context to run forward passes and losses in (the run's precision)."""
        return self.updater.autocast()

    def backward(self, loss: torch.Tensor, name: str, *more: str) -> None:
        """Back-propagate a loss of optimiser ``name`` (and of ``more`` optimisers when the same
        loss trains several, e.g. ``ctx.backward(loss, "G", "F")``); several may accumulate
        before :meth:`step`."""
        self.updater.backward(loss, name, *more)

    def step(self, name: str) -> None:
        """Apply optimiser ``name``'s update (gradient averaging, guard, fp16 scaling)."""
        self.updater.step(self.optimizers[name], name)

    def update(self, loss: torch.Tensor, name: str) -> None:
        """:meth:`backward` then :meth:`step`."""
        self.backward(loss, name)
        self.step(name)

    # ---- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Networks, optimisers and schedules, as checkpoint subtrees (pending ones included,
        so a run saved before a lazy network exists keeps that network's state)."""
        return {
            "networks": {**self._pending["networks"], **{k: n.state_dict() for k, n in self.networks.items()}},
            "optimizers": {**self._pending["optimizers"], **{k: o.state_dict() for k, o in self.optimizers.items()}},
            "schedulers": {**self._pending["schedulers"], **self.schedule.state_dict()},
        }

    def restore(self, networks: dict, optimizers: dict | None = None, schedulers: dict | None = None,
                source: str = "checkpoint") -> None:
        """Load saved states into what exists; keep the rest until it is created."""
        from ganzoo.inference import load_state_dict_checked

        for name, state in networks.items():
            if name in self.networks:
                load_state_dict_checked(self.networks[name], state, f"{source} network '{name}'")
            else:
                self._pending["networks"][name] = state
        for name, state in (optimizers or {}).items():
            if name in self.optimizers:
                self.optimizers[name].load_state_dict(state)
            else:
                self._pending["optimizers"][name] = state
        for name, state in (schedulers or {}).items():
            if name in self.optimizers:
                self.schedule.load(name, state)
            else:
                self._pending["schedulers"][name] = state

    def unclaimed(self) -> list[str]:
        """Saved networks/optimisers no part of the method has created (after setup: a mismatch)."""
        return [f"{kind[:-1]} '{n}'" for kind, states in self._pending.items() for n in states]

    def _component(self, section: str):
        if section not in self.recipe.sections:
            raise KeyError(f"method \"{self.recipe.method.name}\" has no [{section}] section "
                           f"(its sections: {', '.join(self.recipe.sections)})")
        return self.recipe.sections[section]


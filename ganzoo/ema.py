"""Generator EMA: an exponential moving average of the generator networks' weights.

``[optim] ema_decay`` (e.g. 0.999) turns it on from ``ema_start_step``; before that step the
average simply follows the weights. The averages are kept by
``torch.optim.swa_utils.AveragedModel`` (parameters and buffers), stored in every checkpoint
(``ema``) and restored exactly; translate, eval, export and the sample grids use them when a
run has them (``--weights raw`` for the trained weights). Every torchrun rank holds the same
weights after each update, so every rank computes the same average.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class GeneratorEMA:
    """EMAs of ``networks`` (name -> module).

    Args:
        networks: the generators to average, by their checkpoint names.
        decay: the EMA decay per step, in (0, 1).
        start_step: steps before this one copy the weights instead of averaging them.
    """

    def __init__(self, networks: dict[str, nn.Module], decay: float, start_step: int = 0) -> None:
        self.networks, self.start_step = networks, start_step
        self.models = {name: AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                       for name, net in networks.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the weights after ``step`` training steps into the averages."""
        for name, model in self.models.items():
            if step <= self.start_step:
                model.n_averaged.zero_()  # the next update copies; the average starts afresh
            model.update_parameters(self.networks[name])

    def averaged(self, name: str) -> nn.Module:
        """The averaged copy of network ``name`` (a module of the same class)."""
        return self.models[name].module

    def state_dict(self) -> dict[str, Any]:
        return {name: {"weights": m.module.state_dict(), "n_averaged": m.n_averaged.clone()}
                for name, m in self.models.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, m in self.models.items():
            m.module.load_state_dict(state[name]["weights"], strict=True)
            m.n_averaged.copy_(state[name]["n_averaged"])


def generator_networks(ctx) -> dict[str, nn.Module]:
    """The networks a method built from sections of kind ``generator``."""
    return {name: net for name, net in ctx.networks.items()
            if name in ctx.sections and ctx.recipe.sections[ctx.sections[name]].kind == "generator"}

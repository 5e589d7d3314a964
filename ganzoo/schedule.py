"""Learning-rate policies, stepped once per epoch as in the reference.

``linear`` keeps the initial rate for ``n_epochs`` epochs and then decays it linearly over
``n_epochs_decay`` epochs (to lr / (n_epochs_decay + 1) in the last epoch, as the reference
does); ``step`` multiplies by 0.1 every ``lr_decay_iters`` epochs; ``plateau`` divides by 5
when the epoch's mean generator loss stops improving; ``cosine`` anneals to 0 over
``n_epochs`` epochs.
"""
from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from ganzoo.config import OptimConfig, RunConfig


class _LinearRule:
    """Picklable linear-decay multiplier (a lambda would not survive a state_dict)."""

    def __init__(self, epoch_count: int, n_epochs: int, n_epochs_decay: int) -> None:
        self.epoch_count, self.n_epochs, self.n_epochs_decay = epoch_count, n_epochs, n_epochs_decay

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + self.epoch_count - self.n_epochs) / float(self.n_epochs_decay + 1)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, run: RunConfig):
    """The scheduler of ``optim.lr_policy`` for ``optimizer``."""
    if optim.lr_policy == "linear":
        rule = _LinearRule(run.epoch_count, run.n_epochs, run.n_epochs_decay)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=rule)
    if optim.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=optim.lr_decay_iters, gamma=0.1)
    if optim.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(run.n_epochs, 1), eta_min=0)


def step_scheduler(scheduler, epoch_loss: float) -> None:
    """Advance one epoch; the plateau policy watches the epoch's mean generator loss."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(epoch_loss)
    else:
        scheduler.step()


def scheduler_state(scheduler) -> dict:
    """The scheduler's state without callables (the linear rule is rebuilt from the recipe)."""
    state = scheduler.state_dict()
    state.pop("lr_lambdas", None)
    return state


def load_scheduler_state(scheduler, state: dict) -> None:
    state = dict(state)
    if isinstance(scheduler, lr_scheduler.LambdaLR):
        state["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)
    scheduler.load_state_dict(state)

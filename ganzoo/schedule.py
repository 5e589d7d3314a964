"""Learning-rate schedules of every optimiser of a run, per epoch (the reference's) or per step.

Per epoch: ``linear`` keeps the initial rate for ``n_epochs`` epochs and then decays it
linearly over ``n_epochs_decay`` epochs (to lr / (n_epochs_decay + 1) in the last epoch, as the
reference does); ``step`` multiplies by 0.1 every ``lr_decay_iters`` epochs; ``plateau``
divides by 5 when the epoch's mean of the method's monitored metric stops improving;
``cosine`` anneals to 0 over ``n_epochs`` epochs.
Per step: ``linear_steps`` ramps up over ``warmup_steps``, stays constant until
``decay_start_step`` and falls linearly to 0 at ``decay_end_step`` (default: the run's last
step), e.g. "3,000 steps, constant for the first half": decay_start_step = 1500.
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import lr_scheduler

from ganzoo.config import OptimConfig, RunConfig


class _EpochLinear:
    """Picklable linear-decay multiplier (a lambda would not survive a state_dict)."""

    def __init__(self, epoch_count: int, n_epochs: int, n_epochs_decay: int) -> None:
        self.epoch_count, self.n_epochs, self.n_epochs_decay = epoch_count, n_epochs, n_epochs_decay

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + self.epoch_count - self.n_epochs) / float(self.n_epochs_decay + 1)


class _StepLinear:
    """Warm-up, constant, then linear decay to 0, as a function of steps taken."""

    def __init__(self, optim: OptimConfig, schedule: Schedule) -> None:
        self.optim, self.schedule = optim, schedule

    def __call__(self, step: int) -> float:
        o = self.optim
        factor = min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else 1.0
        end = o.decay_end_step or self.schedule.total_steps
        if end > o.decay_start_step and step >= o.decay_start_step:
            factor *= max(0.0, 1.0 - (step - o.decay_start_step) / (end - o.decay_start_step))
        return factor


class Schedule:
    """One scheduler per optimiser, all stepped together by the training loop.

    Args:
        optim: the recipe's ``[optim]`` section.
        run: the recipe's ``[run]`` section (epochs).

    Attributes:
        per_step: whether the loop calls :meth:`after_step` (else :meth:`after_epoch`).
        total_steps: the run's length, set by the loop (the default end of ``linear_steps``).
    """

    def __init__(self, optim: OptimConfig, run: RunConfig) -> None:
        self.optim, self.run = optim, run
        self.per_step = optim.lr_policy == "linear_steps"
        self.total_steps = 0
        self.schedulers: dict[str, object] = {}

    def add(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        o, run = self.optim, self.run
        if o.lr_policy == "linear":
            s = lr_scheduler.LambdaLR(optimizer, lr_lambda=_EpochLinear(run.epoch_count, run.n_epochs, run.n_epochs_decay))
        elif o.lr_policy == "linear_steps":
            s = lr_scheduler.LambdaLR(optimizer, lr_lambda=_StepLinear(o, self))
        elif o.lr_policy == "step":
            s = lr_scheduler.StepLR(optimizer, step_size=o.lr_decay_iters, gamma=0.1)
        elif o.lr_policy == "plateau":
            s = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
        else:
            s = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(run.n_epochs, 1), eta_min=0)
        self.schedulers[name] = s

    def after_step(self) -> None:
        if self.per_step:
            self._step(None)

    def after_epoch(self, monitored: float) -> None:
        """End of an epoch; ``monitored`` is the epoch's mean of the method's monitored metric."""
        if not self.per_step:
            self._step(monitored)

    def _step(self, monitored: float | None) -> None:
        with warnings.catch_warnings():  # a run resumed at an epoch's end rightly steps the schedule first
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler.step\(\)` before", UserWarning)
            for s in self.schedulers.values():
                if isinstance(s, lr_scheduler.ReduceLROnPlateau):
                    s.step(monitored)
                else:
                    s.step()

    def state_dict(self) -> dict[str, dict]:
        """Each scheduler's state without callables (the rules are rebuilt from the recipe)."""
        out = {}
        for name, s in self.schedulers.items():
            state = s.state_dict()
            state.pop("lr_lambdas", None)
            out[name] = state
        return out

    def load(self, name: str, state: dict) -> None:
        s = self.schedulers[name]
        state = dict(state)
        if isinstance(s, lr_scheduler.LambdaLR):
            state["lr_lambdas"] = [None] * len(s.lr_lambdas)
        s.load_state_dict(state)

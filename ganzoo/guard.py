"""The non-finite guard: no optimiser update with a NaN/Inf loss or gradient is ever applied.

:class:`GuardedPrecision` is the run's :class:`~ganzoo.precision.Precision` with one check
before each ``optimizer.step()``: every loss that went into the update (seen by
``backward``) and the largest absolute gradient of that optimiser's parameters must be
finite, else the update is dropped and recorded. The check is one batched reduction and one
device sync per update; the max norm cannot overflow the way a 2-norm can. With
``fp16-mixed`` only the losses are checked: inf gradients are routine there while the
GradScaler calibrates, and the scaler already skips those updates itself.

After each training step the trainer reads the records (:meth:`NonFiniteGuard.take`) and
applies ``[run] nonfinite``: ``"stop"`` ends the run with a diagnostic and saves nothing,
``"skip"`` carries on (the step's finite updates stand; see docs/reliability.md).
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.distributed as dist
from torch import nn

from ganzoo.errors import GanzooError
from ganzoo.precision import Precision


class NonFiniteError(GanzooError):
    """A loss or gradient became NaN or infinite (``[run] nonfinite = "stop"``)."""


@dataclasses.dataclass(frozen=True)
class DroppedUpdate:
    """An optimiser update the guard did not apply.

    Args:
        optimizer: the optimiser's name in ``method.optimizers`` (``"G"``, ``"D"``).
        loss: the value of the loss it would have minimised.
        networks: networks whose gradients were not finite (empty when only the loss was).
    """

    optimizer: str
    loss: float
    networks: tuple[str, ...]
    elsewhere: bool = False  # under torchrun: dropped because another rank's update was not finite

    def describe(self) -> str:
        if self.elsewhere:
            return f"optimiser {self.optimizer} not updated (non-finite values on another rank)"
        where = f"; non-finite gradients in {', '.join(self.networks)}" if self.networks else ""
        return f"optimiser {self.optimizer} (loss {self.loss}) not updated{where}"


class NonFiniteGuard:
    """Checks updates and remembers the ones it dropped until the trainer takes them."""

    def __init__(self) -> None:
        self.dropped: list[DroppedUpdate] = []
        self._owner: dict[int, str] = {}
        self._losses: dict[str, list[torch.Tensor]] = {}

    def watch(self, networks: dict[str, nn.Module]) -> None:
        """Learn which network each parameter belongs to (for diagnostics)."""
        self._owner = {id(p): name for name, net in networks.items() for p in net.parameters()}

    @staticmethod
    def nonfinite_networks(networks: dict[str, nn.Module]) -> list[str]:
        """Networks with a NaN/Inf parameter or buffer: checked before every save, since an update
        with finite gradients can still overflow (an absurd learning rate)."""
        bad = []
        for name, net in networks.items():
            tensors = [t.detach() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
            if tensors and not bool(torch.isfinite(_max_abs(tensors))):
                bad.append(name)
        return bad

    def take(self) -> list[DroppedUpdate]:
        dropped, self.dropped = self.dropped, []
        return dropped

    def note_loss(self, loss: torch.Tensor, name: str) -> None:
        """Remember a loss that goes into optimiser ``name``'s next update (no sync here)."""
        self._losses.setdefault(name, []).append(loss.detach().float())

    def allow(self, optimizer: torch.optim.Optimizer, name: str, *, grads: bool) -> bool:
        """True when the update may be applied; otherwise record it and return False."""
        losses = self._losses.pop(name, [])
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        checks = [loss.abs().amax().reshape(1) for loss in losses]
        if grads and params:
            checks.append(_max_abs([p.grad for p in params]).reshape(1))
        if not checks:
            return True
        device = checks[0].device
        if bool(torch.isfinite(torch.cat([c.to(device) for c in checks])).all()):
            return True
        bad = [p for p in params if grads and not bool(torch.isfinite(p.grad).all())]
        networks = tuple(dict.fromkeys(self._owner.get(id(p), "?") for p in bad))
        total = sum(float(loss.sum()) for loss in losses) if losses else math.nan
        self.dropped.append(DroppedUpdate(name, total, networks))
        return False


def _max_abs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """max |x| over all tensors (NaN if any is NaN), batched by torch where it can."""
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if total_norm is not None:
        return total_norm(tensors, norm_type=math.inf)
    device = tensors[0].device
    return torch.stack([t.detach().abs().max().to(device) for t in tensors]).max()


class GuardedPrecision(Precision):
    """A Precision whose ``step`` asks a :class:`NonFiniteGuard` first.

    Args:
        mode: ``fp32``, ``bf16-mixed`` or ``fp16-mixed`` (see :class:`Precision`).
        device: the training device.
        guard: the guard that checks and records updates.
    """

    def __init__(self, mode: str, device: torch.device, guard: NonFiniteGuard) -> None:
        super().__init__(mode, device)
        self.guard = guard

    def backward(self, loss: torch.Tensor, name: str) -> None:
        self.guard.note_loss(loss, name)
        super().backward(loss, name)

    def _update(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        allowed = self.guard.allow(optimizer, name, grads=self.mode != "fp16-mixed")
        if self.world.distributed:  # every rank must drop the same updates, or their weights part
            flag = torch.tensor([float(allowed)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            if allowed and not flag.item():
                self.guard.dropped.append(DroppedUpdate(name, math.nan, (), elsewhere=True))
            allowed = bool(flag.item())
        if allowed:
            super()._update(optimizer, name)
        else:
            optimizer.zero_grad(set_to_none=True)  # nothing of the bad update may leak into the next one

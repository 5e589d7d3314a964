"""The optimiser update, in one place: precision (autocast, fp16 gradient scaling), the
non-finite guard, and gradient averaging across torchrun ranks.

``fp32`` changes nothing. ``bf16-mixed`` runs forward passes under bf16 autocast (CPU and
CUDA); bf16 has fp32's exponent range, so no loss scaling is needed. ``fp16-mixed`` uses fp16
autocast plus one ``GradScaler`` per optimiser (created on its first step), since fp16
gradients underflow. Weights, gradients and optimiser state stay fp32 in every mode. One
scaler per optimiser is safe because each loss reaches only its own optimiser's parameters
(methods freeze the other networks or detach their inputs).

Before each ``optimizer.step()`` the guard checks that every loss that went into the update
(seen by :meth:`Updater.backward`) and the largest absolute gradient are finite (one batched
reduction, one sync); otherwise the update is dropped and recorded, and the loop applies
``[run] nonfinite`` (docs/reliability.md). With ``fp16-mixed`` only the losses are checked:
inf gradients are routine while the GradScaler calibrates, and it skips those updates itself.
Under torchrun the gradients are averaged over all ranks first (ganzoo.distributed says why
this is done per optimiser rather than with the DistributedDataParallel wrapper), and every
rank drops the same updates.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch import nn

from ganzoo.distributed import World, average_gradients
from ganzoo.errors import GanzooError, RecipeError

_DTYPES = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}


class NonFiniteError(GanzooError):
    """A loss or gradient became NaN or infinite (``[run] nonfinite = "stop"``)."""


@dataclasses.dataclass(frozen=True)
class DroppedUpdate:
    """An optimiser update that was not applied.

    Args:
        optimizer: the optimiser's name (``"G"``, ``"D"``).
        loss: the value of the loss it would have minimised.
        networks: networks whose gradients were not finite (empty when only the loss was).
        elsewhere: under torchrun: dropped because another rank's update was not finite.
    """

    optimizer: str
    loss: float
    networks: tuple[str, ...]
    elsewhere: bool = False

    def describe(self) -> str:
        if self.elsewhere:
            return f"optimiser {self.optimizer} not updated (non-finite values on another rank)"
        where = f"; non-finite gradients in {', '.join(self.networks)}" if self.networks else ""
        return f"optimiser {self.optimizer} (loss {self.loss}) not updated{where}"


def max_abs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """max |x| over all tensors (NaN if any is NaN), batched by torch where it can."""
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if total_norm is not None:
        return total_norm(tensors, norm_type=math.inf)
    device = tensors[0].device
    return torch.stack([t.detach().abs().max().to(device) for t in tensors]).max()


def nonfinite_networks(networks: dict[str, nn.Module]) -> list[str]:
    """Networks with a NaN/Inf parameter or buffer: checked before every save, since an update
    with finite gradients can still overflow (an absurd learning rate)."""
    bad = []
    for name, net in networks.items():
        tensors = [t.detach() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.isfinite(max_abs(tensors))):
            bad.append(name)
    return bad


class Updater:
    """Backward passes and optimiser steps of one run.

    Args:
        mode: ``fp32``, ``bf16-mixed`` or ``fp16-mixed`` (the recipe's ``[run] precision``).
        device: the training device; autocast and the scalers use its type.
        world: this process's place under torchrun (gradients are averaged when distributed).
        guard: check losses and gradients before each step (off for measurements only).

    Example:
        >>> up = Updater("bf16-mixed", torch.device("cpu"))
        >>> with up.autocast():
        ...     loss = criterion(net(x), y)
        >>> up.backward(loss, "G"); up.step(optimizer, "G")
    """

    def __init__(self, mode: str, device: torch.device, world: World = World(), *, guard: bool = True) -> None:
        if mode not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {mode!r}")
        if mode == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise RecipeError(
                f'[run] precision = "bf16-mixed": {torch.cuda.get_device_name(device)} has no native bf16 (it '
                'needs compute capability 8.0 or newer). Use precision = "fp16-mixed" (with gradient scaling) or "fp32".'
            )
        self.mode, self.device, self.dtype, self.world, self.guarded = mode, device, _DTYPES[mode], world, guard
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        # fp16: optimisers whose gradients come from one loss share a scaler (one scale per loss)
        self._group: dict[str, str] = {}  # optimiser -> its scaler's name
        self._members: dict[str, set[str]] = {}  # scaler -> optimisers; update() once all have stepped
        self._stepped: dict[str, set[str]] = {}
        self.dropped: list[DroppedUpdate] = []
        self._owner: dict[int, str] = {}
        self._losses: dict[str, list[torch.Tensor]] = {}

    # ---- precision ----------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """True when forward passes run under autocast."""
        return self.dtype is not None

    def autocast(self) -> ContextManager:
        """The context to run forward passes (and losses) in; a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self, name: str) -> torch.amp.GradScaler:
        """The GradScaler of optimiser ``name`` (fp16-mixed only), created on first use."""
        if name not in self.scalers:
            self.scalers[name] = torch.amp.GradScaler(self.device.type)
        return self.scalers[name]

    # ---- the update -----------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, name: str, *more: str) -> None:
        """``loss.backward()`` for optimiser ``name`` and any ``more`` optimisers the same loss
        trains (CUT's G and F): with fp16 they then share one GradScaler, so each is unscaled by
        the scale its gradients were made with. Several calls may accumulate before :meth:`step`;
        call it outside the autocast context."""
        names = (name, *more)
        if self.guarded:
            for n in names:
                self._losses.setdefault(n, []).append(loss.detach().float())
        if self.mode == "fp16-mixed":
            key = self._group.setdefault(name, name)
            for n in more:
                if self._group.setdefault(n, key) != key:
                    raise ValueError(f"optimiser {n!r} is trained by losses scaled for {self._group[n]!r} and {key!r}; "
                                     "give every shared loss the same first optimiser")
            self._members.setdefault(key, set()).update(names)
            loss = self.scaler(key).scale(loss)
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        """Average the gradients over ranks, check them, and step (through the fp16 scaler)."""
        average_gradients(optimizer, self.world)
        if self.guarded and not self._allowed(optimizer, name):
            optimizer.zero_grad(set_to_none=True)  # nothing of the bad update may leak into the next one
            return
        if self.mode != "fp16-mixed":
            optimizer.step()
            return
        key = self._group.get(name, name)
        scaler = self.scaler(key)
        scaler.step(optimizer)
        stepped = self._stepped.setdefault(key, set())
        stepped.add(name)
        if stepped >= self._members.get(key, {name}):  # the scale changes once per loss, after all its steps
            scaler.update()
            stepped.clear()

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, name: str) -> None:
        """:meth:`backward` then :meth:`step`: the whole update of one optimiser from one loss."""
        self.backward(loss, name)
        self.step(optimizer, name)

    # ---- the guard ------------------------------------------------------------------------
    def watch(self, networks: dict[str, nn.Module]) -> None:
        """Learn which network each parameter belongs to (for diagnostics)."""
        self._owner = {id(p): name for name, net in networks.items() for p in net.parameters()}

    def take_dropped(self) -> list[DroppedUpdate]:
        """The updates dropped since the last call."""
        dropped, self.dropped = self.dropped, []
        return dropped

    def _allowed(self, optimizer: torch.optim.Optimizer, name: str) -> bool:
        allowed = self._check(optimizer, name, grads=self.mode != "fp16-mixed")
        if self.world.distributed:  # every rank must drop the same updates, or their weights part
            flag = torch.tensor([float(allowed)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            if allowed and not flag.item():
                self.dropped.append(DroppedUpdate(name, math.nan, (), elsewhere=True))
            allowed = bool(flag.item())
        return allowed

    def _check(self, optimizer: torch.optim.Optimizer, name: str, *, grads: bool) -> bool:
        losses = self._losses.pop(name, [])
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        checks = [loss.abs().amax().reshape(1) for loss in losses]
        if grads and params:
            checks.append(max_abs([p.grad for p in params]).reshape(1))
        if not checks:
            return True
        if bool(torch.isfinite(torch.cat([c.to(checks[0].device) for c in checks])).all()):
            return True
        bad = [p for p in params if grads and not bool(torch.isfinite(p.grad).all())]
        networks = tuple(dict.fromkeys(self._owner.get(id(p), "?") for p in bad))
        total = sum(float(loss.sum()) for loss in losses) if losses else math.nan
        self.dropped.append(DroppedUpdate(name, total, networks))
        return False

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The scalers' state (scale and growth tracker); empty unless fp16."""
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in state.items():
            self.scaler(name).load_state_dict(s)

    def __repr__(self) -> str:
        return f"Updater({self.mode!r}, device={self.device.type!r})"

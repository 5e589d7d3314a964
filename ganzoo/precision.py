"""Numeric precision of a run: autocast contexts and (for fp16) gradient scaling."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from ganzoo.distributed import World, average_gradients

from ganzoo.errors import RecipeError

_DTYPES = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}


class Precision:
    """Mixed-precision policy for one device.

    ``fp32`` changes nothing. ``bf16-mixed`` runs forward passes under bf16 autocast (CPU and
    CUDA): convolutions run in bf16, losses and reductions that autocast keeps in fp32 stay
    fp32; bf16 has fp32's exponent range, so no loss scaling is needed. ``fp16-mixed`` uses
    fp16 autocast plus one ``GradScaler`` per optimiser (created on its first step), since
    fp16 gradients underflow; a step whose gradients overflow is skipped by its scaler and
    the scale halves. Weights, gradients and optimiser state stay fp32 in every mode.

    One scaler per optimiser is safe because each loss reaches only its own optimiser's
    parameters (methods freeze the other networks or detach their inputs), so a skipped
    step or a lowered scale of one never affects the other.

    Args:
        mode: ``fp32``, ``bf16-mixed`` or ``fp16-mixed`` (the recipe's ``[run] precision``).
        device: the training device; autocast and the scalers use its type.

    Example:
        >>> prec = Precision("bf16-mixed", torch.device("cpu"))
        >>> with prec.autocast():
        ...     loss = criterion(net(x), y)
        >>> prec.backward_step(loss, optimizer, "G")  # or backward(part, "G") per part, then step(optimizer, "G")
    """

    world: World = World()  # set by the runner under torchrun

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {mode!r}")
        self.mode, self.device, self.dtype = mode, device, _DTYPES[mode]
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if mode == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            raise RecipeError(
                f'[run] precision = "bf16-mixed": {name} has no native bf16 (it needs compute capability '
                '8.0 or newer). Use precision = "fp16-mixed" (with gradient scaling) or "fp32".'
            )

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
        scaler = self.scalers.get(name)
        if scaler is None:
            scaler = self.scalers[name] = torch.amp.GradScaler(self.device.type)
        return scaler

    def backward(self, loss: torch.Tensor, name: str) -> None:
        """``loss.backward()``, scaled by the GradScaler of optimiser ``name`` for fp16.

        Several ``backward`` calls may accumulate into one optimiser's gradients before its
        :meth:`step` (a method that frees each part of its graph early does this); call it
        outside the autocast context (backward runs in the forward's dtypes anyway).
        """
        if self.mode == "fp16-mixed":
            loss = self.scaler(name).scale(loss)
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        """``optimizer.step()``; for fp16 through its scaler, which unscales the gradients,
        skips the step if one is inf/NaN, and updates the scale. Under torchrun the gradients
        are first averaged over all ranks, so every rank takes the same step."""
        average_gradients(optimizer, self.world)
        self._update(optimizer, name)

    def _update(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        if self.mode != "fp16-mixed":
            optimizer.step()
            return
        scaler = self.scaler(name)
        scaler.step(optimizer)
        scaler.update()

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, name: str) -> None:
        """:meth:`backward` then :meth:`step`: the whole update of one optimiser from one loss."""
        self.backward(loss, name)
        self.step(optimizer, name)

    def state_dict(self) -> dict[str, Any]:
        """The scalers' state (scale and growth tracker), for checkpoints; empty unless fp16."""
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in state.items():
            self.scaler(name).load_state_dict(s)

    def __repr__(self) -> str:
        return f"Precision({self.mode!r}, device={self.device.type!r})"

"""Numeric precision of a run: autocast contexts and (for fp16) gradient scaling."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

_DTYPES = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}


class Precision:
    """Mixed-precision policy for one device.

    ``bf16-mixed`` runs forward passes under bf16 autocast (CPU and CUDA). ``fp16-mixed``
    uses fp16 autocast plus one GradScaler per optimiser, since fp16 gradients underflow.
    Weights and optimiser state stay fp32 in every mode.
    """

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {mode!r}")
        self.mode, self.device, self.dtype = mode, device, _DTYPES[mode]
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, name: str) -> None:
        """``loss.backward()`` then ``optimizer.step()``, through a GradScaler for fp16."""
        if self.mode != "fp16-mixed":
            loss.backward()
            optimizer.step()
            return
        scaler = self.scalers.get(name)
        if scaler is None:
            scaler = self.scalers[name] = torch.amp.GradScaler(self.device.type)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in state.items():
            scaler = self.scalers.setdefault(name, torch.amp.GradScaler(self.device.type))
            scaler.load_state_dict(s)

"""Counting a training step: FLOPs (``torch.utils.flop_counter``) and peak tensor memory.

Both work on the ``meta`` device, where tensors have shapes but no data, so a step of a
256 px CycleGAN is counted in about a second without allocating its 4 GiB. A method's step
usually ends with ``float(loss)`` for its metrics, which meta tensors cannot answer;
:class:`MetaScalars` answers 0 instead, so the whole step (both optimiser updates) runs.
Used by ``ganzoo run --dry-run`` and by the benchmarks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

_SCALAR_READS = {
    torch.Tensor.item: 0.0, torch.Tensor.__float__: 0.0, torch.Tensor.__int__: 0,
    torch.Tensor.__index__: 0, torch.Tensor.__bool__: False,
}


class MetaScalars(TorchFunctionMode):
    """Answer ``float(t)``, ``t.item()``, ``t.tolist()`` and ``bool(t)`` of meta tensors with zeros.

    Only for counting: code that branches on such a value takes the "0 / False" branch.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], Tensor) and args[0].is_meta:
            if func in _SCALAR_READS:
                return _SCALAR_READS[func]
            if func is torch.Tensor.tolist:
                return torch.zeros(args[0].shape).tolist()
        return func(*args, **kwargs)


class TensorMemory(TorchDispatchMode):
    """The peak of the bytes held by live tensor storages while the mode is active.

    Every storage an operator returns is followed through a weak reference until it dies;
    views and in-place results share their storage and count once. ``existing`` tensors
    (parameters, buffers, optimiser state) are counted from the start. This is what the
    tensors need, not what the process takes: allocator caching and fragmentation, library
    workspaces (oneDNN/cuDNN) and the runtime itself come on top.

    Example:
        >>> with TensorMemory(net.parameters()) as mem:
        ...     net(x).sum().backward()
        >>> mem.peak_bytes
    """

    def __init__(self, existing: Iterable[Tensor] = ()) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current_bytes = 0  # may include dead storages until the next prune
        self.peak_bytes = 0
        for t in existing:
            self._track(t)
        self.peak_bytes = self.current_bytes

    def reset_peak(self) -> None:
        """Start a new peak from what is live now."""
        self._prune()
        self.peak_bytes = self.current_bytes

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ref = StorageWeakRef(storage)
        if ref.cdata not in self._live:
            nbytes = storage.nbytes()
            self._live[ref.cdata] = (ref, nbytes)
            self.current_bytes += nbytes

    def _prune(self) -> None:
        dead = [key for key, (ref, _) in self._live.items() if ref.expired()]
        for key in dead:
            self.current_bytes -= self._live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                self._track(t)
        # current_bytes over-counts until pruned, so only a possible new peak needs a prune
        if self.current_bytes > self.peak_bytes:
            self._prune()
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        return out


@dataclasses.dataclass(frozen=True)
class StepCount:
    """What one counted call cost.

    Args:
        flops: floating-point operations (a multiply-add counts 2), as FlopCounterMode counts
            them: convolutions and matrix products, forward and backward. Norms, activations,
            losses and the optimiser are not counted (they are a few percent at most here).
        peak_bytes: peak bytes of live tensors during the call, including everything that
            was alive before it (see :class:`TensorMemory`).
        persistent_bytes: bytes of the tensors given as alive before the call.
    """

    flops: int
    peak_bytes: int
    persistent_bytes: int


def count(fn: Callable[[], Any], existing: Iterable[Tensor] = (), *, memory: bool = True) -> StepCount:
    """Run ``fn()`` once under a FLOP counter (and a :class:`TensorMemory` when ``memory``)."""
    existing = list(existing)
    flop_mode = FlopCounterMode(display=False)
    mem = TensorMemory(existing) if memory else None
    persistent = mem.current_bytes if mem is not None else 0
    with MetaScalars(), flop_mode:
        if mem is None:
            fn()
        else:
            with mem:
                fn()
    return StepCount(flop_mode.get_total_flops(), mem.peak_bytes if mem else 0, persistent)


def method_tensors(method) -> list[Tensor]:
    """Parameters, buffers, gradients and optimiser state of a :class:`ganzoo.Method`."""
    out: list[Tensor] = []
    for net in method.networks.values():
        out += list(net.parameters()) + list(net.buffers())
        out += [p.grad for p in net.parameters() if p.grad is not None]
    for opt in method.optimizers.values():
        for state in opt.state.values():
            out += [v for v in state.values() if isinstance(v, Tensor)]
    return out


def optimizer_state_bytes(method) -> int:
    """Bytes of every optimiser's state tensors (Adam: two moments per parameter)."""
    return sum(
        v.untyped_storage().nbytes()
        for opt in method.optimizers.values() for state in opt.state.values()
        for v in state.values() if isinstance(v, Tensor)
    )


def forward_flops(net: torch.nn.Module, x: Tensor) -> int:
    """FLOPs of one forward pass of ``net`` on ``x`` (without autograd)."""
    mode = FlopCounterMode(display=False)
    with torch.no_grad(), mode:
        net(x)
    return mode.get_total_flops()

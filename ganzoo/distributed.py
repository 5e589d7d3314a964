"""Data-parallel training under torchrun: process group, sharding, gradient averaging.

``ganzoo run`` started by ``torchrun --nproc_per_node N`` (one node or several) finds the
standard environment variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...)
and joins the process group: NCCL on CUDA, gloo on CPU. Each rank trains on its own shard
of every global batch, and gradients are averaged across ranks before each optimiser step.

Why not the ``DistributedDataParallel`` wrapper: a GAN step calls each network several times
(for example G_A on real A, on fake A and for the identity loss), flips ``requires_grad`` of
the discriminators between the generator and discriminator updates, and runs two optimisers
per step. DDP's reducer hooks expect one forward and one backward per iteration and break on
that pattern (the reference's multi-GPU bugs). Averaging the gradients of exactly the
parameters an optimiser is about to step, in one flattened all-reduce, is the same
mathematics with none of those constraints, and it keeps the networks unwrapped, so
checkpoints have the same keys in every mode.
"""
from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands: its rank, the number of ranks and its local device index."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The World torchrun describes in the environment (a single process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def average_gradients(optimizer: torch.optim.Optimizer, world: World) -> None:
    """Average the gradients of the optimiser's parameters over all ranks, in one all-reduce.

    Parameters without a gradient on this rank take part as zeros so every rank sends the
    same buffer layout.
    """
    if not world.distributed:
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world.size
    for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)


def average_metrics(metrics: dict[str, float], world: World, device: torch.device = torch.device("cpu")
                    ) -> dict[str, float]:
    """The mean of each scalar over all ranks, in the same key order (every rank must call it
    with the same keys: a method's metrics; NCCL needs ``device`` to be the rank's GPU)."""
    if not world.distributed or not metrics:
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return {k: float(v) / world.size for k, v in zip(metrics, values.tolist())}



def broadcast_parameters(modules, world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical starting weights)."""
    if not world.distributed:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)

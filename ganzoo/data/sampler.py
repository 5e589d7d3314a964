"""A seeded, resumable sampler: the order of epoch ``e`` depends only on (seed, e)."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Yields dataset indices for one epoch, shuffled with a generator seeded by (seed, epoch);
    under torchrun each rank takes its own shard of that order.

    ``set_epoch(epoch, start)`` selects the epoch and skips its first ``start`` samples, so a
    resumed run sees exactly the samples an uninterrupted run would have seen.
    """

    def __init__(self, length: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.length, generator=g).tolist()

    def shard(self) -> list[int]:
        """This rank's share of the epoch: every world_size-th index from ``rank`` on; the
        order wraps around so that every rank gets the same number (as DistributedSampler)."""
        order = self.order()
        if self.world_size == 1:
            return order
        total = -(-len(order) // self.world_size) * self.world_size
        order = (order * (total // max(len(order), 1) + 1))[:total]
        return order[self.rank::self.world_size]

    def __iter__(self):
        return iter(self.shard()[self.start:])

    def __len__(self) -> int:
        return max(-(-self.length // self.world_size) - self.start, 0)

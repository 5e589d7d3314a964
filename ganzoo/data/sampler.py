"""A seeded, resumable sampler: the order of epoch ``e`` depends only on (seed, e)."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Yields dataset indices for one epoch, shuffled with a generator seeded by (seed, epoch).

    ``set_epoch(epoch, start)`` selects the epoch and skips its first ``start`` samples, so a
    resumed run sees exactly the samples an uninterrupted run would have seen.
    """

    def __init__(self, length: int, *, seed: int, shuffle: bool = True) -> None:
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.length, generator=g).tolist()

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(self.length - self.start, 0)

"""The training data loader: a seeded, resumable order of batches, epoch by epoch.

The order of epoch ``e`` depends only on (seed, e) and, under torchrun, on the rank's shard
(:class:`ganzoo.data.sampler.EpochSampler`); a resumed run skips the batches the saved run had
already taken, so it sees exactly the batches an uninterrupted run would have. Worker seeds
come from a private generator reseeded per epoch, so the global RNG (part of the checkpoint)
is never touched by the loader.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from ganzoo._signals import ignore_in_worker
from ganzoo.config import Recipe
from ganzoo.data.dataset import SkipUnreadable, loader_batches
from ganzoo.data.sampler import EpochSampler
from ganzoo.distributed import World


class TrainLoader:
    """Batches of the training set for one epoch at a time.

    Args:
        recipe: ``[data]`` (batch size, workers, order, bad images) and ``[run] seed``.
        dataset: the training PairDataset.
        device: pinned memory for CUDA.
        world: this process's rank and the number of ranks.
    """

    def __init__(self, recipe: Recipe, dataset, device: torch.device, world: World = World()) -> None:
        data, self.seed = recipe.data, recipe.run.seed
        self.dataset, self.batch_size = dataset, data.batch_size
        self.sampler = EpochSampler(len(dataset), seed=self.seed, shuffle=not data.serial_batches,
                                    rank=world.rank, world_size=world.size)
        self._rng = torch.Generator()
        self.loader = DataLoader(
            SkipUnreadable(dataset) if data.bad_images == "skip" else dataset,
            batch_size=data.batch_size, sampler=self.sampler, num_workers=data.num_workers,
            pin_memory=device.type == "cuda", drop_last=False, generator=self._rng,
            worker_init_fn=ignore_in_worker,
        )
        self.steps_per_epoch = math.ceil(len(self.sampler.shard()) / data.batch_size)

    @contextmanager
    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Iterator[Any]]:
        """``with loader.epoch(e, start) as batches:`` the batches of epoch ``e`` from ``start`` on."""
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)
        self.dataset.set_epoch(epoch)
        self._rng.manual_seed(self.seed * 1_000_003 + epoch)
        with loader_batches(self.loader) as batches:
            yield batches

"""The training loop: set up, restore, then for each batch: augment, method step, non-finite
policy, log, save, hooks.

The loop knows nothing about particular models: the method owns its networks and its step,
and updates through its context (:mod:`ganzoo.update`: precision, guard, gradient averaging).
The loop owns time: epochs, the schedule, the data order, logging, checkpoints, signals, the
non-finite policy and the lifecycle hooks. Its guarantees (exact resume, atomic checkpoints,
graceful stops) are in docs/reliability.md.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from ganzoo import state
from ganzoo._signals import StopSignals
from ganzoo.build import compile_failure, root_cause
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import Recipe
from ganzoo.data.augment import build_augment
from ganzoo.data.dataset import skipped_messages
from ganzoo.distributed import World, average_metrics, barrier
from ganzoo.ema import GeneratorEMA, generator_networks
from ganzoo.errors import CheckpointError, RecipeError
from ganzoo.loader import TrainLoader
from ganzoo.method import Method
from ganzoo.runlog import RunLog
from ganzoo.update import NonFiniteError, nonfinite_networks

MAX_SKIPS_IN_A_ROW = 10  # nonfinite = "skip": more than this many bad steps in a row means the run is broken


class Trainer:
    """Runs a method over a dataset according to a recipe.

    Args:
        recipe: the validated recipe (its ``run`` and ``optim`` sections drive the loop).
        method: the built method (see :func:`ganzoo.build.build_method`).
        dataset: the training PairDataset.
        run_dir: where checkpoints, metrics.jsonl, TensorBoard events and samples go.
        pm: the plugin manager whose lifecycle hooks are called.
        device: the training device.
        world: this process's rank under torchrun (rank 0 alone writes files).
        monitor: the metric of the method's results the plateau schedule watches.
        validator: scores the generator every ``[eval] every`` steps (see :mod:`ganzoo.validation`).
    """

    def __init__(self, *, recipe: Recipe, method: Method, dataset, run_dir: Path, pm, device: torch.device,
                 world: World = World(), monitor: str = "G", validator=None):
        self.recipe, self.method, self.dataset, self.pm, self.device = recipe, method, dataset, pm, device
        self.world, self.monitor, self.run_dir, self.validator = world, monitor, Path(run_dir), validator
        self.ctx = method.ctx
        self.progress = state.Progress()
        run = recipe.run
        self.loader = TrainLoader(recipe, dataset, device, world)
        self.total_epochs = max(run.n_epochs + run.n_epochs_decay - run.epoch_count + 1, 0)
        total = self.total_epochs * self.loader.steps_per_epoch
        self.total_steps = min(total, run.max_steps) if run.max_steps else total
        self.ctx.schedule.total_steps = self.total_steps
        self.augment = build_augment(recipe.augment, aligned=dataset.aligned, train=True)
        self.checkpoints = RunCheckpoints(self.run_dir, keep_last=run.keep_last)
        self.log = RunLog(self.run_dir, self.total_steps, enabled=world.is_main)
        self.signals = StopSignals()
        self._skips_in_a_row, self._saved_step, self._set_up = 0, -1, False
        self.ema: GeneratorEMA | None = None  # made with the first batch, when [optim] ema_decay > 0
        self._ema_state: dict | None = None  # a resumed EMA, loaded when the EMA is made

    # what hooks and tests read
    step = property(lambda self: self.progress.step)
    epoch = property(lambda self: self.progress.epoch)
    skipped_steps = property(lambda self: self.progress.skipped_steps)
    skipped_images = property(lambda self: self.progress.skipped_images)
    sampler = property(lambda self: self.loader.sampler)

    @property
    def stop_requested(self) -> bool:
        return self.signals.requested

    # ---- the loop -------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until the last epoch or ``max_steps``; return the final status."""
        self.method.train()
        self.log.open(self.step)  # nothing touches the run directory before this
        self.pm.hook.ganzoo_on_run_start(trainer=self)
        status = "failed"
        try:
            with self.signals.installed():  # also during the last save: a SIGTERM there must not kill it
                while self.epoch < self.total_epochs and not self._done():
                    self._run_epoch()
                self.save()
            status = "interrupted" if self.step < self.total_steps and self.stop_requested else "completed"
        finally:
            self.log.record({"step": self.step, "event": "end", "status": status, **self.progress.counts()})
            self.log.close()
            self.pm.hook.ganzoo_on_run_end(trainer=self, status=status)
        return status

    def _run_epoch(self) -> None:
        p = self.progress
        with self.loader.epoch(p.epoch, p.epoch_pos) as batches:
            for batch in batches:
                t0 = time.perf_counter()
                self._note_skipped_images(skipped_messages(batch))
                with self.signals.interruptible():
                    real_a, real_b = self.augment(batch["A"].to(self.device, non_blocking=True),
                                                  batch["B"].to(self.device, non_blocking=True))
                    self._set_up_once(real_a, real_b)
                    metrics = self._train_step(real_a, real_b)
                # the global batch's mean on every rank: logs, the plateau schedule and the
                # non-finite policy then agree across ranks
                metrics = average_metrics(metrics, self.world, self.device)
                nonfinite = self._check_finite(metrics)
                p.step, p.epoch_pos = p.step + 1, p.epoch_pos + 1
                if self.ema is not None:
                    self.ema.update(p.step)
                if not nonfinite and self.monitor in metrics:
                    p.monitored.append(metrics[self.monitor])
                elif self.recipe.optim.lr_policy == "plateau" and self.monitor not in metrics:
                    raise RecipeError(
                        f'{self.recipe.source} [optim] lr_policy = "plateau" follows "{self.monitor}", the metric method '
                        f'"{self.recipe.method.name}" names as its monitor, but its steps return only '
                        f"{', '.join(metrics)}. Choose another lr_policy (or fix the plugin's MethodSpec monitor)."
                    )
                self.ctx.schedule.after_step()
                self._after_step(metrics, time.perf_counter() - t0, nonfinite)
                if self._done():
                    return
        self.ctx.schedule.after_epoch(sum(p.monitored) / max(len(p.monitored), 1))
        p.epoch, p.epoch_pos, p.monitored = p.epoch + 1, 0, []

    def _done(self) -> bool:
        return self.signals.requested_anywhere(self.world, self.device) or self.step >= self.total_steps

    def _set_up_once(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        """The method's first-batch setup. It runs on a forked RNG, so creating networks there
        draws nothing from the run's random streams (a resumed run sets up at another step)."""
        if self._set_up:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.recipe.run.seed + 7919)
            self.method.setup(real_a, real_b)
        optim = self.recipe.optim
        if optim.ema_decay:
            self.ema = GeneratorEMA(generator_networks(self.ctx), optim.ema_decay, optim.ema_start_step)
            if self._ema_state is not None:
                self.ema.load_state_dict(self._ema_state)
        unclaimed = self.ctx.unclaimed()
        if unclaimed:
            raise CheckpointError(f"{self.recipe.source}: the checkpoint holds {', '.join(unclaimed)}, which method "
                                  f'"{self.recipe.method.name}" did not create. Resume with the recipe it was saved with.')
        self._set_up = True

    def _train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        try:
            return self.method.train_step(real_a, real_b)
        except Exception as exc:
            if not (self.recipe.run.compile and compile_failure(exc)):
                raise
            raise RecipeError(
                f"{self.recipe.source} [run] compile = true: torch.compile failed at step {self.step + 1} "
                f"({root_cause(exc)}). Train without compiling: --set run.compile=false."
            ) from exc

    def _after_step(self, metrics: dict[str, float], seconds: float, nonfinite: str) -> None:
        run = self.recipe.run
        self.log.tick()
        if self.step % run.log_every == 0 or self.step == 1 or nonfinite:
            lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.ctx.optimizers.items()}
            self.log.step(self.step, run.epoch_count + self.epoch, metrics, lrs, seconds, self.progress.counts(),
                          nonfinite)
        if run.image_every and not nonfinite and (self.step % run.image_every == 0 or self.step == self.total_steps):
            self.write_samples()
        if run.save_every and self.step % run.save_every == 0 and self.step < self.total_steps:
            self.save()
        every = self.recipe.eval.every
        if self.validator is not None and every and (self.step % every == 0 or self.step == self.total_steps):
            self.validate()
        self.pm.hook.ganzoo_on_step_end(trainer=self, step=self.step, metrics=metrics)

    def _check_finite(self, metrics: dict[str, float]) -> str:
        """Apply [run] nonfinite to this step: "" when all is finite, else what was not (skipped)."""
        dropped = self.ctx.updater.take_dropped()
        bad = [f"loss {k}={v}" for k, v in metrics.items() if not math.isfinite(v)]
        if not bad and not dropped:
            self._skips_in_a_row = 0
            return ""
        self.progress.skipped_steps += 1
        self._skips_in_a_row += 1
        run = self.recipe.run
        where = f"step {self.step + 1} (epoch {run.epoch_count + self.epoch})"
        what = "; ".join(bad + [d.describe() for d in dropped])
        if run.nonfinite == "skip" and self._skips_in_a_row <= MAX_SKIPS_IN_A_ROW:
            print(f'warning: {where}: not finite: {what}. Skipped ([run] nonfinite = "skip").',
                  file=sys.stderr, flush=True)
            return what
        self.log.record({"step": self.step + 1, "epoch": run.epoch_count + self.epoch, "loss": metrics,
                         "nonfinite": what, **self.progress.counts()})
        latest = self.checkpoints.latest()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
        fixes = 'Lower [optim] lr, check the data for extreme values or use [run] precision = "fp32"'
        if run.nonfinite == "skip":
            cause = f"{self._skips_in_a_row} steps in a row were not finite, so the weights or the data are broken"
        else:
            cause = "a loss or gradient is not finite"
            fixes += ', or set [run] nonfinite = "skip"'
            if latest:
                kept += f" (`ganzoo run --resume {self.run_dir} --set run.nonfinite=skip` skips such steps)"
        raise NonFiniteError(f"{where}: {cause}: {what}. Nothing of this state was saved; {kept}. {fixes}.")

    def _note_skipped_images(self, messages: list[str]) -> None:
        for message in messages:
            if message not in self.progress.skipped_images:
                self.progress.skipped_images.append(message)
                print(f'warning: {message} Skipped ([data] bad_images = "skip").', file=sys.stderr, flush=True)

    def validate(self) -> dict[str, float]:
        """Score the (EMA) generator on the validation split; keep the best checkpoint by ``[eval] select``."""
        cfg = self.recipe.eval
        name = self._generator_name(cfg.direction)
        generator = self.ema.averaged(name) if self.ema is not None and name in self.ema.models \
            else self.method.generator(cfg.direction)
        scores = self.validator(generator, self.ctx.autocast)
        self.log.record({"step": self.step, "eval": scores, "split": cfg.validation_split})
        self.log.scalars(scores, self.step, prefix=f"eval_{cfg.validation_split}/")
        best = self.progress.best
        if cfg.select and self.validator.better(scores[cfg.select], best.get("value")):
            self.progress.best = {"metric": cfg.select, "value": scores[cfg.select], "step": self.step}
            barrier(self.world)
            if self.world.is_main:
                with self.signals.interruptible():
                    self.checkpoints.save_best(self.state_tree())
            barrier(self.world)
        return scores

    # ---- outputs --------------------------------------------------------------------------
    def write_samples(self) -> None:
        """The method's visuals, plus the EMA generators' translations of its real images."""
        visuals = self.method.visuals()
        if self.ema is not None:
            for direction, src in (("AtoB", "real_A"), ("BtoA", "real_B")):
                name = self._generator_name(direction)
                if name in self.ema.models and src in visuals:
                    with torch.no_grad(), self.ctx.autocast():
                        visuals[f"{name}_ema"] = self.ema.averaged(name).eval()(visuals[src])
        self.log.samples(visuals, self.step)

    def _generator_name(self, direction: str) -> str | None:
        try:
            net = self.method.generator(direction)
        except ValueError:
            return None
        return next((name for name, n in self.ctx.networks.items() if n is net), None)

    def state_tree(self) -> dict:
        """Everything needed to continue this run exactly, as a checkpoint tree."""
        ema = self.ema.state_dict() if self.ema is not None else self._ema_state
        return state.capture(self.recipe, self.progress, self.method, self.pm, ema)

    def load_state_tree(self, tree: dict, source: str = "checkpoint") -> None:
        """Restore a state written by :meth:`state_tree`; a mismatch is a CheckpointError."""
        state.restore(tree, self.progress, self.method, source)
        self._ema_state = tree.get("ema") if self.recipe.optim.ema_decay else None
        self._saved_step = self.step

    def save(self) -> Path:
        """Checkpoint the current step (once: a second call at the same step does nothing)."""
        if self._saved_step == self.step:
            return self.checkpoints.path_for(self.step)
        broken = nonfinite_networks(self.ctx.networks)
        if broken:
            raise NonFiniteError(
                f"step {self.step}: the weights of {', '.join(broken)} are not finite, so this state was not saved; "
                f"the last good checkpoint is {self.checkpoints.latest()}. Lower [optim] lr."
            )
        # every rank holds the same weights; rank 0 writes, the others wait for the file
        barrier(self.world)
        path = self.checkpoints.path_for(self.step)
        if self.world.is_main:
            with self.signals.interruptible():
                path = self.checkpoints.save(self.step, self.state_tree())
        barrier(self.world)
        self._saved_step = self.step
        self.pm.hook.ganzoo_on_checkpoint_saved(trainer=self, step=self.step, path=path)
        return path

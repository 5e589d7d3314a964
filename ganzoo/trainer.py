"""The training loop: data -> augment -> method.train_step -> log -> checkpoint, with resume.

The Trainer knows nothing about particular models: the method owns the networks, the
optimisers and the step. The Trainer owns time: epochs, the learning-rate schedule, the
data order, logging, checkpoints, signals, the non-finite policy and the lifecycle hooks.
Its guarantees (exact resume, atomic checkpoints, graceful stops) are in docs/reliability.md.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ganzoo import rng
from ganzoo._runlog import MetricsLog
from ganzoo._signals import StopSignals, ignore_in_worker
from ganzoo.build import compile_failure
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import Recipe, recipe_to_dict
from ganzoo.data.augment import build_augment
from ganzoo.data.dataset import SkipUnreadable, loader_batches, skipped_messages
from ganzoo.data.sampler import EpochSampler
from ganzoo.distributed import World, barrier
from ganzoo.errors import CheckpointError, RecipeError
from ganzoo.guard import NonFiniteError, NonFiniteGuard
from ganzoo.method import Method
from ganzoo.precision import Precision
from ganzoo.schedule import build_scheduler, load_scheduler_state, scheduler_state, step_scheduler
from ganzoo.tb import TensorBoard, image_grid

MAX_SKIPS_IN_A_ROW = 10  # nonfinite = "skip": more than this many bad steps in a row means the run is broken


class Trainer:
    """Runs a method over a dataset according to a recipe.

    Args:
        recipe: the validated recipe (its ``run`` and ``optim`` sections drive the loop).
        method: the built method (networks and optimisers on ``device``).
        dataset: the training PairDataset.
        run_dir: where checkpoints, metrics.jsonl, TensorBoard events and samples go.
        pm: the plugin manager whose lifecycle hooks are called.
        device: the training device.
        precision: the Precision the method was built with (its grad scalers are saved); a
            :class:`ganzoo.guard.GuardedPrecision` also lets no non-finite gradient through.
        world: this process's rank under torchrun (rank 0 alone writes files).
    """

    def __init__(self, *, recipe: Recipe, method: Method, dataset, run_dir: Path, pm, device: torch.device,
                 precision: Precision, world: World = World()):
        self.recipe, self.method, self.dataset, self.pm, self.device = recipe, method, dataset, pm, device
        self.precision, self.world = precision, world
        self.guard: NonFiniteGuard = getattr(precision, "guard", None) or NonFiniteGuard()
        self.guard.watch(method.networks)
        self.run_dir = Path(run_dir)
        run, data = recipe.run, recipe.data
        self.step, self.epoch, self.epoch_pos = 0, 0, 0  # epoch is 0-based; epoch_pos counts batches
        self.total_epochs = max(run.n_epochs + run.n_epochs_decay - run.epoch_count + 1, 0)
        self.sampler = EpochSampler(len(dataset), seed=run.seed, shuffle=not data.serial_batches,
                                    rank=world.rank, world_size=world.size)
        # A private generator (seeded per epoch) gives the workers their seeds without touching
        # the global RNG, whose state is part of the checkpoint.
        self._loader_rng = torch.Generator()
        self.loader = DataLoader(
            SkipUnreadable(dataset) if data.bad_images == "skip" else dataset,
            batch_size=data.batch_size, sampler=self.sampler, num_workers=data.num_workers,
            pin_memory=device.type == "cuda", drop_last=False, generator=self._loader_rng,
            worker_init_fn=ignore_in_worker,
        )
        self.steps_per_epoch = math.ceil(len(self.sampler.shard()) / data.batch_size)
        total = self.total_epochs * self.steps_per_epoch
        self.total_steps = min(total, run.max_steps) if run.max_steps else total
        self.augment = build_augment(recipe.augment, aligned=dataset.aligned, train=True)
        self.schedulers = {k: build_scheduler(o, recipe.optim, run) for k, o in method.optimizers.items()}
        self.checkpoints = RunCheckpoints(self.run_dir, keep_last=run.keep_last)
        self.metrics_log = MetricsLog(self.run_dir / "metrics.jsonl", enabled=world.is_main)
        self.tb: TensorBoard | None = None  # opened by fit(): nothing touches the run directory before
        self.signals = StopSignals()
        self.skipped_steps, self.skipped_images = 0, []  # nonfinite = "skip" / bad_images = "skip"
        self._skips_in_a_row, self._saved_step = 0, -1
        self._epoch_g_losses: list[float] = []

    @property
    def stop_requested(self) -> bool:
        return self.signals.requested

    # ---- the loop -------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until the last epoch or ``max_steps``; return the final status."""
        self.method.train()
        self.metrics_log.rewind(self.step)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=self.world.is_main,
                              purge_step=self.step + 1 if self.step else None)
        self.pm.hook.ganzoo_on_run_start(trainer=self)
        status = "failed"
        bar = _progress(self.total_steps, self.step)
        try:
            with self.signals.installed():  # also during the last save: a SIGTERM there must not kill it
                while self.epoch < self.total_epochs and not self._done():
                    self._run_epoch(bar)
                self.save()
            status = "interrupted" if self.step < self.total_steps and self.stop_requested else "completed"
        finally:
            bar.close()
            self.metrics_log.write({"step": self.step, "event": "end", "status": status, **self._counts()})
            self.metrics_log.close()
            self.pm.hook.ganzoo_on_run_end(trainer=self, status=status)
            self.tb.close()
        return status

    def _done(self) -> bool:
        return self.signals.requested_anywhere(self.world, self.device) or self.step >= self.total_steps

    def _run_epoch(self, bar) -> None:
        self.sampler.set_epoch(self.epoch, start=self.epoch_pos * self.recipe.data.batch_size)
        self.dataset.set_epoch(self.epoch)
        self._loader_rng.manual_seed(self.recipe.run.seed * 1_000_003 + self.epoch)
        with loader_batches(self.loader) as batches:
            for batch in batches:
                t0 = time.perf_counter()
                self._note_skipped_images(skipped_messages(batch))
                with self.signals.interruptible():
                    real_a = batch["A"].to(self.device, non_blocking=True)
                    real_b = batch["B"].to(self.device, non_blocking=True)
                    metrics = self._train_step(real_a, real_b)
                nonfinite = self._check_finite(metrics)
                self.step += 1
                self.epoch_pos += 1
                if not nonfinite:
                    self._epoch_g_losses.append(metrics.get("G", 0.0))
                self._after_step(metrics, time.perf_counter() - t0, bar, nonfinite)
                if self._done():
                    return
        mean_g = sum(self._epoch_g_losses) / max(len(self._epoch_g_losses), 1)
        with warnings.catch_warnings():  # a run resumed at an epoch's end rightly steps the schedule first
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler.step\(\)` before", UserWarning)
            for scheduler in self.schedulers.values():
                step_scheduler(scheduler, mean_g)
        self.epoch, self.epoch_pos, self._epoch_g_losses = self.epoch + 1, 0, []

    def _after_step(self, metrics: dict[str, float], seconds: float, bar, nonfinite: str) -> None:
        run = self.recipe.run
        bar.update(1)
        if self.step % run.log_every == 0 or self.step == 1 or nonfinite:
            lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.method.optimizers.items()}
            epoch = run.epoch_count + self.epoch
            self._log(metrics, lr=lrs, seconds=seconds, **({"nonfinite": nonfinite} if nonfinite else {}))
            self.tb.scalars(metrics, self.step, prefix="loss/")
            self.tb.scalars(lrs, self.step, prefix="lr/")
            self.tb.scalars({"step_seconds": seconds, "epoch": epoch}, self.step, prefix="time/")
            shown = {k: metrics[k] for k in list(metrics)[:4]}
            bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
            if bar.disable:
                losses = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
                print(f"step {self.step}/{self.total_steps} epoch {epoch} {seconds:.2f}s/step {losses}",
                      file=sys.stderr, flush=True)
        if run.image_every and not nonfinite and (self.step % run.image_every == 0 or self.step == self.total_steps):
            self.write_samples()
        if run.save_every and self.step % run.save_every == 0 and self.step < self.total_steps:
            self.save()
        self.pm.hook.ganzoo_on_step_end(trainer=self, step=self.step, metrics=metrics)

    def _train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        try:
            return self.method.train_step(*self.augment(real_a, real_b))
        except Exception as exc:
            if not (self.recipe.run.compile and compile_failure(exc)):
                raise
            raise RecipeError(
                f"{self.recipe.source} [run] compile = true: torch.compile failed at step {self.step + 1} "
                f"({_root_cause(exc)}). Train without compiling: --set run.compile=false."
            ) from exc

    def _log(self, metrics: dict[str, float], step: int | None = None, **extra) -> None:
        record = {"step": self.step if step is None else step, "epoch": self.recipe.run.epoch_count + self.epoch,
                  "loss": metrics, **extra, **self._counts()}
        self.metrics_log.write(record)

    def _check_finite(self, metrics: dict[str, float]) -> str:
        """Apply [run] nonfinite to this step: "" when all is finite, else what was not (skipped)."""
        dropped = self.guard.take()
        bad = [f"loss {k}={v}" for k, v in metrics.items() if not math.isfinite(v)]
        if not bad and not dropped:
            self._skips_in_a_row = 0
            return ""
        self.skipped_steps += 1
        self._skips_in_a_row += 1
        run = self.recipe.run
        where = f"step {self.step + 1} (epoch {run.epoch_count + self.epoch})"
        what = "; ".join(bad + [d.describe() for d in dropped])
        if run.nonfinite == "skip" and self._skips_in_a_row <= MAX_SKIPS_IN_A_ROW:
            print(f'warning: {where}: not finite: {what}. Skipped ([run] nonfinite = "skip").',
                  file=sys.stderr, flush=True)
            return what
        self._log(metrics, step=self.step + 1, nonfinite=what)
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
            if message not in self.skipped_images:
                self.skipped_images.append(message)
                print(f'warning: {message} Skipped ([data] bad_images = "skip").', file=sys.stderr, flush=True)

    def _counts(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps, "skipped_images": len(self.skipped_images)}

    # ---- outputs --------------------------------------------------------------------------
    def write_samples(self) -> None:
        visuals = self.method.visuals()
        if not visuals or not self.world.is_main:
            return
        grid = image_grid(visuals)
        self.tb.image("samples", grid, self.step)
        from ganzoo.data.images import write_image

        try:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            write_image(self.run_dir / "samples" / f"step_{self.step:09d}.png", grid)
        except OSError as exc:  # a sample is not worth a run; a full disk is reported by the checkpoint
            print(f"warning: {self.run_dir / 'samples'}: cannot write a sample ({exc.strerror or exc}).",
                  file=sys.stderr, flush=True)

    def state_tree(self) -> dict:
        """Everything needed to continue this run exactly, as a checkpoint tree."""
        import ganzoo

        return {
            "recipe": recipe_to_dict(self.recipe),
            "step": self.step, "epoch": self.epoch, "epoch_pos": self.epoch_pos,
            "epoch_g_losses": list(self._epoch_g_losses),
            "skipped_steps": self.skipped_steps, "skipped_images": list(self.skipped_images),
            "networks": {k: net.state_dict() for k, net in self.method.networks.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.method.optimizers.items()},
            "schedulers": {k: scheduler_state(s) for k, s in self.schedulers.items()},
            "precision": self.precision.state_dict(),
            "method": self.method.extra_state(),
            "rng": rng.capture(),
            "versions": {"ganzoo": ganzoo.__version__, "torch": torch.__version__,
                         "plugins": {n: "/".join(self.pm.distribution(n)) for n, _ in self.pm.list_name_plugin()}},
        }

    def load_state_tree(self, tree: dict, source: str = "checkpoint") -> None:
        """Restore a state written by :meth:`state_tree`; a mismatch is a CheckpointError."""
        from ganzoo.inference import load_networks

        load_networks(self.method, tree["networks"], source=source)
        try:
            for k, opt in self.method.optimizers.items():
                opt.load_state_dict(tree["optimizers"][k])
            for k, s in self.schedulers.items():
                load_scheduler_state(s, tree["schedulers"][k])
            self.precision.load_state_dict(tree.get("precision", {}))
            self.method.load_extra_state(tree["method"])
            self.step, self.epoch, self.epoch_pos = tree["step"], tree["epoch"], tree["epoch_pos"]
            self._epoch_g_losses = list(tree.get("epoch_g_losses", []))
            self.skipped_steps = tree.get("skipped_steps", 0)
            self.skipped_images = list(tree.get("skipped_images", []))
            rng.restore(tree["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{source}: the training state does not fit this run ({type(exc).__name__}: {exc}). "
                "Resume without --set overrides that change the method, or start a new run."
            ) from None
        self._saved_step = self.step

    def save(self) -> Path:
        """Checkpoint the current step (once: a second call at the same step does nothing)."""
        if self._saved_step == self.step:
            return self.checkpoints.path_for(self.step)
        broken = self.guard.nonfinite_networks(self.method.networks)
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


def _root_cause(exc: BaseException) -> str:
    """``Type: first line`` of the innermost exception of a chain (dynamo wraps the real one)."""
    while (inner := getattr(exc, "inner_exception", None) or exc.__cause__) is not None and inner is not exc:
        exc = inner
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def _progress(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not sys.stderr.isatty())

"""The training loop: data -> augment -> method.train_step -> log -> checkpoint, with resume.

The Trainer knows nothing about particular models: the method owns the networks, the
optimisers and the step. The Trainer owns time: epochs, the learning-rate schedule, the
data order, logging, checkpoints, signals and the lifecycle hooks.
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ganzoo import rng
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import Recipe, recipe_to_dict
from ganzoo.data.augment import build_augment
from ganzoo.data.sampler import EpochSampler
from ganzoo.errors import GanzooError
from ganzoo.method import Method
from ganzoo.precision import Precision
from ganzoo.schedule import build_scheduler, load_scheduler_state, scheduler_state, step_scheduler
from ganzoo.tb import TensorBoard, image_grid


class NonFiniteLoss(GanzooError):
    """A loss became NaN or infinite."""


class Trainer:
    """Runs a method over a dataset according to a recipe.

    Args:
        recipe: the validated recipe (its ``run`` and ``optim`` sections drive the loop).
        method: the built method (networks and optimisers on ``device``).
        dataset: the training PairDataset.
        run_dir: where checkpoints, TensorBoard events and samples go.
        pm: the plugin manager whose lifecycle hooks are called.
        device: the training device.
        precision: the Precision the method was built with (its grad scalers are saved).
    """

    def __init__(self, *, recipe: Recipe, method: Method, dataset, run_dir: Path, pm, device: torch.device,
                 precision: Precision):
        self.recipe, self.method, self.dataset, self.pm, self.device = recipe, method, dataset, pm, device
        self.precision = precision
        self.run_dir = Path(run_dir)
        run, data = recipe.run, recipe.data
        self.step, self.epoch, self.epoch_pos = 0, 0, 0  # epoch is 0-based; epoch_pos counts batches
        self.total_epochs = max(run.n_epochs + run.n_epochs_decay - run.epoch_count + 1, 0)
        self.sampler = EpochSampler(len(dataset), seed=run.seed, shuffle=not data.serial_batches)
        self.loader = DataLoader(
            dataset, batch_size=data.batch_size, sampler=self.sampler, num_workers=data.num_workers,
            pin_memory=device.type == "cuda", drop_last=False,
            # a private generator keeps worker seeding from consuming the global RNG
            generator=torch.Generator().manual_seed(run.seed),
        )
        self.steps_per_epoch = math.ceil(len(dataset) / data.batch_size)
        total = self.total_epochs * self.steps_per_epoch
        self.total_steps = min(total, run.max_steps) if run.max_steps else total
        self.augment = build_augment(recipe.augment, aligned=dataset.aligned, train=True)
        self.schedulers = {k: build_scheduler(o, recipe.optim, run) for k, o in method.optimizers.items()}
        self.checkpoints = RunCheckpoints(self.run_dir, keep_last=run.keep_last)
        self.tb = TensorBoard(self.run_dir / "tb")
        self.stop_requested = False
        self._epoch_g_losses: list[float] = []

    # ---- the loop -------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until the last epoch or ``max_steps``; return the final status."""
        self.method.train()
        self.pm.hook.ganzoo_on_run_start(trainer=self)
        status = "failed"
        bar = _progress(self.total_steps, self.step)
        try:
            with self._signals():
                while self.epoch < self.total_epochs and not self._done():
                    self._run_epoch(bar)
            status = "interrupted" if self.stop_requested and not self._done() else "completed"
            self.save()
        finally:
            bar.close()
            self.pm.hook.ganzoo_on_run_end(trainer=self, status=status)
            self.tb.close()
        return status

    def _done(self) -> bool:
        return self.stop_requested or self.step >= self.total_steps

    def _run_epoch(self, bar) -> None:
        self.sampler.set_epoch(self.epoch, start=self.epoch_pos * self.recipe.data.batch_size)
        self.dataset.set_epoch(self.epoch)
        for batch in self.loader:
            t0 = time.perf_counter()
            real_a = batch["A"].to(self.device, non_blocking=True)
            real_b = batch["B"].to(self.device, non_blocking=True)
            real_a, real_b = self.augment(real_a, real_b)
            metrics = self.method.train_step(real_a, real_b)
            self._check_finite(metrics)
            self.step += 1
            self.epoch_pos += 1
            self._epoch_g_losses.append(metrics.get("G", 0.0))
            self._after_step(metrics, time.perf_counter() - t0, bar)
            if self._done():
                return
        mean_g = sum(self._epoch_g_losses) / max(len(self._epoch_g_losses), 1)
        for scheduler in self.schedulers.values():
            step_scheduler(scheduler, mean_g)
        self.epoch, self.epoch_pos, self._epoch_g_losses = self.epoch + 1, 0, []

    def _after_step(self, metrics: dict[str, float], seconds: float, bar) -> None:
        run = self.recipe.run
        bar.update(1)
        if self.step % run.log_every == 0 or self.step == 1:
            lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.method.optimizers.items()}
            self.tb.scalars(metrics, self.step, prefix="loss/")
            self.tb.scalars(lrs, self.step, prefix="lr/")
            self.tb.scalars({"step_seconds": seconds, "epoch": self.recipe.run.epoch_count + self.epoch},
                            self.step, prefix="time/")
            shown = {k: metrics[k] for k in list(metrics)[:4]}
            bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
            if bar.disable:
                losses = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
                print(f"step {self.step}/{self.total_steps} epoch {run.epoch_count + self.epoch} "
                      f"{seconds:.2f}s/step {losses}", file=sys.stderr, flush=True)
        if run.image_every and (self.step % run.image_every == 0 or self.step == self.total_steps):
            self.write_samples()
        if run.save_every and self.step % run.save_every == 0 and self.step < self.total_steps:
            self.save()
        self.pm.hook.ganzoo_on_step_end(trainer=self, step=self.step, metrics=metrics)

    def _check_finite(self, metrics: dict[str, float]) -> None:
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            latest = self.checkpoints.latest()
            kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise NonFiniteLoss(
                f"step {self.step + 1} (epoch {self.recipe.run.epoch_count + self.epoch}): loss "
                f"{', '.join(bad)} is not finite ({', '.join(f'{k}={metrics[k]}' for k in bad)}); "
                f"{kept}. Lower [optim] lr, check the data for extreme values, or use precision = \"fp32\"."
            )

    # ---- outputs --------------------------------------------------------------------------
    def write_samples(self) -> None:
        visuals = self.method.visuals()
        if not visuals:
            return
        grid = image_grid(visuals)
        self.tb.image("samples", grid, self.step)
        from ganzoo.data.images import write_image

        (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
        write_image(self.run_dir / "samples" / f"step_{self.step:09d}.png", grid)

    def state_tree(self) -> dict:
        """Everything needed to continue this run exactly, as a checkpoint tree."""
        import ganzoo

        return {
            "recipe": recipe_to_dict(self.recipe),
            "step": self.step, "epoch": self.epoch, "epoch_pos": self.epoch_pos,
            "epoch_g_losses": list(self._epoch_g_losses),
            "networks": {k: net.state_dict() for k, net in self.method.networks.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.method.optimizers.items()},
            "schedulers": {k: scheduler_state(s) for k, s in self.schedulers.items()},
            "precision": self.precision.state_dict(),
            "method": self.method.extra_state(),
            "rng": rng.capture(),
            "versions": {"ganzoo": ganzoo.__version__, "torch": torch.__version__,
                         "plugins": {n: "/".join(self.pm.distribution(n)) for n, _ in self.pm.list_name_plugin()}},
        }

    def load_state_tree(self, tree: dict) -> None:
        """Restore a state written by :meth:`state_tree` (networks must match the recipe)."""
        from ganzoo.inference import load_networks

        load_networks(self.method, tree["networks"], source="checkpoint")
        for k, opt in self.method.optimizers.items():
            opt.load_state_dict(tree["optimizers"][k])
        for k, s in self.schedulers.items():
            load_scheduler_state(s, tree["schedulers"][k])
        self.precision.load_state_dict(tree.get("precision", {}))
        self.method.load_extra_state(tree["method"])
        self.step, self.epoch, self.epoch_pos = tree["step"], tree["epoch"], tree["epoch_pos"]
        self._epoch_g_losses = list(tree.get("epoch_g_losses", []))
        rng.restore(tree["rng"])

    def save(self) -> Path:
        path = self.checkpoints.save(self.step, self.state_tree())
        self.pm.hook.ganzoo_on_checkpoint_saved(trainer=self, step=self.step, path=path)
        return path

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM: finish the step, save and stop; a second SIGINT aborts at once."""

        def handler(signum, frame):
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = True
            print(f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
                  "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

        try:
            old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _progress(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not sys.stderr.isatty())

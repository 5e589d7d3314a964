"""``ganzoo run``: recipe -> validated objects -> run directory -> Trainer, or resume a run.

Everything is validated and built, and a resumed state or the reference weights of
``--init-from`` loaded, before the run directory is touched, so a bad recipe, missing data or
an unfitting checkpoint leaves no half-made run behind and earlier outputs as they were. Exit
statuses: 0 done, 2 user error (GanzooError), 128 + signal number when a signal stopped the run
(130 SIGINT, 143 SIGTERM).
"""
from __future__ import annotations

import signal
from pathlib import Path

import click

from ganzoo import checkpoint, distributed, init_from as init_files, rng
from ganzoo._signals import EXIT_SIGINT
from ganzoo.build import build_dataset, build_method, check_compile, resolve_device
from ganzoo.checkpoint import RunCheckpoints, atomic_write
from ganzoo.dryrun import check_memory
from ganzoo.config import apply_overrides, dump_toml, load_recipe, read_toml, recipe_to_dict
from ganzoo.errors import CheckpointError, GanzooError
from ganzoo.runlock import RunLock
from ganzoo.state import TRAINING_KEYS
from ganzoo.train import Trainer
from ganzoo.update import Updater
from ganzoo.validation import Validator


def run_training(pm, registry, *, recipe: Path | None, overrides: list[str], steps: int | None,
                 out: Path | None, resume: Path | None, init_from: Path | None = None,
                 init_epoch: str | None = None) -> str:
    """Train (or resume) and return the final status.

    ``init_from`` (with ``init_epoch``) starts the networks from the reference's
    ``{epoch}_net_{NAME}.pth`` files, as its ``--continue_train`` (see :mod:`ganzoo.init_from`).

    Raises SystemExit(128 + signal) when SIGINT/SIGTERM stopped the run, after saving and
    saying how to resume (or, after a second Ctrl-C, without saving). The run directory is
    locked (:mod:`ganzoo.runlock`) from before its first write until the run ends: a second
    run on it fails at once, naming this process.
    """
    lock = RunLock()
    try:
        return _run_training(pm, registry, lock, recipe=recipe, overrides=overrides, steps=steps, out=out,
                             resume=resume, init_from=init_from, init_epoch=init_epoch)
    finally:
        lock.release()


def _run_training(pm, registry, lock: RunLock, *, recipe: Path | None, overrides: list[str], steps: int | None,
                  out: Path | None, resume: Path | None, init_from: Path | None, init_epoch: str | None) -> str:
    tree = latest = init = None
    check_init_options(init_from, init_epoch, resume)
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise GanzooError(
                f"--out {out} --resume {resume}: a resumed run continues in its own directory. "
                "Drop --out (or copy the run directory to the new place and resume the copy)."
            )
        latest, tree = load_training_checkpoint(resume)
        raw, source = tree["recipe"], f"{latest} (stored recipe)"
        if recipe is not None:
            click.echo(f"note: resuming with the recipe stored in {latest}; {recipe} is ignored", err=True)
    else:
        raw, source = read_toml(recipe), str(recipe)
    raw = apply_overrides(raw, overrides + ([f"run.max_steps={steps}"] if steps else []), registry)
    cfg = load_recipe(raw, registry, source=source)
    if init_from is not None:
        init_folder, init_epoch = init_files.locate(init_from, init_epoch)

    run_dir = resume if resume is not None else (out or Path("runs") / cfg.run.name)
    if resume is None and RunCheckpoints(run_dir).all():
        raise GanzooError(
            f"{run_dir}: this run directory already holds checkpoints. Continue it with "
            f"`ganzoo run --resume {run_dir}`, or start a new run with --out OTHER_DIR "
            "(nothing was overwritten)."
        )
    if distributed.world_from_env().is_main:  # rank 0 alone writes the run directory, so it alone locks it
        lock.acquire(run_dir, create=False)  # another live run writes there: stop now, before building
        if resume is None:
            _check_recipe_file(run_dir)

    world = distributed.world_from_env()
    device = distributed.init(world, resolve_device(cfg.run.device, source))
    check_compile(cfg, device)
    check_memory(cfg, registry, device)
    rng.seed_everything(cfg.run.seed)
    dataset = build_dataset(cfg, registry, "train")
    spec = registry.method(cfg.method.name)
    method = build_method(cfg, registry, device, Updater(cfg.run.precision, device, world), world)
    if init_from is not None:
        init = init_files.find_files(init_from, init_folder, init_epoch, spec.reference_files, cfg.method.name)
        init_files.apply(init, method, cfg)
    if world.distributed:  # each rank draws its own crops and flips
        rng.seed_everything(cfg.run.seed + world.rank)
    validator = Validator(cfg, registry, device) if cfg.eval.every else None
    trainer = Trainer(recipe=cfg, method=method, dataset=dataset, run_dir=run_dir, pm=pm, device=device,
                      world=world, monitor=spec.monitor, validator=validator)
    if tree is not None:
        trainer.load_state_tree(tree, source=str(latest))
    if world.is_main:
        _prepare_run_dir(run_dir, cfg, {init_files.RECORD_FILE: init_files.record(init, cfg)} if init else {}, lock)
    distributed.barrier(world)
    if tree is not None:
        click.echo(f"resuming {run_dir} at step {trainer.step}", err=True)
    if init is not None and world.is_main:
        click.echo(f"{init_files.summary(init, cfg)} (recorded in {run_dir / init_files.RECORD_FILE})", err=True)
    ranks = f" x {world.size} processes" if world.distributed else ""
    if world.is_main:
        parts = " / ".join(c.name for c in cfg.sections.values() if c.kind in ("generator", "discriminator"))
        click.echo(f"training {cfg.method.name} ({parts}) on {device}"
                   f"{ranks}: {len(dataset)} images, {trainer.total_steps} steps -> {run_dir}", err=True)
    try:
        status = trainer.fit()
    except KeyboardInterrupt:  # the second Ctrl-C
        saved = trainer.checkpoints.latest()
        kept = f"the last checkpoint is {saved}; resume with: ganzoo run --resume {run_dir}" if saved else \
            "no checkpoint was written"
        click.echo(f"aborted at step {trainer.step} without saving; {kept}", err=True)
        raise SystemExit(EXIT_SIGINT) from None
    finally:
        trainer.signals.disarm()  # fit() has cleaned up
    if trainer.signals.aborting:  # the second Ctrl-C came after the last save
        status = "interrupted"
    _report_skips(trainer)
    latest = trainer.checkpoints.latest()
    if status == "interrupted":
        if world.is_main:
            how = f"torchrun <this run's options> -m ganzoo.cli run --resume {run_dir}" if world.distributed \
                else f"ganzoo run --resume {run_dir}"
            click.echo(f"stopped at step {trainer.step}; saved {latest}. Resume with: {how}", err=True)
        if world.distributed:
            # torchrun SIGTERMs the other ranks as soon as one exits non-zero: no rank may leave
            # before rank 0 has finished its writes, and a rank already leaving ignores that
            # SIGTERM, so every rank exits with the signal's status rather than dying of it.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            distributed.barrier(world)
        raise SystemExit(trainer.signals.exit_code)
    if world.is_main:
        click.echo(f"done: step {trainer.step}, checkpoint {latest}", err=True)
        if trainer.ema is not None:  # the EMA weights are what the run delivers (checkpoint already written)
            for name in trainer.ema.models:
                method.networks[name].load_state_dict(trainer.ema.averaged(name).state_dict())
        _report(cfg, method, registry, device, run_dir, trainer)
        click.echo(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}", err=True)
    distributed.shutdown()
    return status


def load_training_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """The latest checkpoint of ``run_dir`` and its tree; every problem is a CheckpointError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(
            f"--resume {run_dir}: no such run directory. Give the --out directory of an earlier "
            "`ganzoo run`, or start a new run with `ganzoo run RECIPE --out DIR`."
        )
    checkpoints = RunCheckpoints(run_dir)
    latest = checkpoints.latest()
    if latest is None:
        raise CheckpointError(
            f"--resume {run_dir}: no checkpoint there (expected {run_dir}/checkpoints/step_*.safetensors). "
            "Start a new run with `ganzoo run RECIPE --out DIR` instead."
        )
    try:
        tree = checkpoint.load(latest)
    except CheckpointError as exc:
        older = [p.name for p in checkpoints.all() if p != latest]
        if not older:
            raise
        raise CheckpointError(
            f"{exc} Earlier checkpoints of this run: {', '.join(older)}; move {latest.name} out of "
            f"{latest.parent} to resume from {older[-1]}."
        ) from None
    missing = [k for k in TRAINING_KEYS if k not in tree]
    if missing or not isinstance(tree.get("recipe"), dict):
        raise CheckpointError(
            f"{latest}: not a ganzoo training checkpoint (missing {', '.join(missing) or 'a valid recipe'}), "
            "so the run cannot continue from it. Use a checkpoint written by `ganzoo run`."
        )
    return latest, tree


def check_init_options(init_from: Path | None, init_epoch: str | None, resume: Path | None) -> None:
    """--init-from starts a new run; --init-epoch belongs to it."""
    if init_from is not None and resume is not None:
        raise GanzooError(
            f"--init-from {init_from} --resume {resume}: a resumed run continues from its own checkpoint. "
            "Drop --init-from to resume, or drop --resume to start a new run from the reference's files."
        )
    if init_epoch is not None and init_from is None:
        raise GanzooError(f"--init-epoch {init_epoch}: it chooses the files of --init-from; give --init-from DIR too.")


RECIPE_HEADER = "# written by ganzoo"  # the first line of a recipe.toml that ganzoo wrote into a run directory


def _check_recipe_file(run_dir: Path) -> None:
    """A new run writes its resolved recipe to RUN_DIR/recipe.toml: refuse to replace one ganzoo
    did not write (the user's own recipe, kept in the folder they gave as --out)."""
    path = run_dir / "recipe.toml"
    try:
        with path.open("rb") as f:
            first = f.readline()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    except OSError:
        first = b""
    if not first.startswith(RECIPE_HEADER.encode()):
        raise GanzooError(
            f"{path}: this recipe.toml was not written by ganzoo, and a run writes its resolved recipe to "
            "RUN_DIR/recipe.toml. Nothing was written. Keep your recipe outside the run directory, or use "
            "another --out."
        )


def _prepare_run_dir(run_dir: Path, cfg, extra: dict[str, bytes], lock: RunLock | None = None) -> None:
    """Lock and create the run directory, write the resolved recipe (and ``extra`` files: name ->
    bytes); an OSError is the user's to fix."""
    from ganzoo import __version__

    header = f"{RECIPE_HEADER} {__version__}: the resolved recipe of this run; ganzoo rewrites this file.\n"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire(run_dir)
        atomic_write(run_dir / "recipe.toml", (header + dump_toml(recipe_to_dict(cfg))).encode())
        for name, data in extra.items():
            atomic_write(run_dir / name, data)
    except OSError as exc:
        raise GanzooError(
            f"{run_dir}: cannot create the run directory or write into it ({exc.strerror or exc}). "
            "Choose a writable place with --out."
        ) from None


def _report_skips(trainer: Trainer) -> None:
    if trainer.skipped_images:
        click.echo(f"skipped {len(trainer.skipped_images)} unreadable image file(s) in this run (warnings "
                   'above; [data] bad_images = "skip"); metrics.jsonl counts them as skipped_images', err=True)
    if trainer.skipped_steps:
        click.echo(f"skipped {trainer.skipped_steps} step(s) with non-finite values ([run] nonfinite = "
                   '"skip"); metrics.jsonl marks them with "nonfinite"', err=True)


def _report(cfg, method, registry, device, run_dir: Path, trainer: Trainer) -> None:
    """Evaluate against ground truth at the end of a run when the test split has it: the last
    weights, and the validation-selected checkpoint beside them when it is another step."""
    from ganzoo.evaluate import evaluate, format_table, save_result
    from ganzoo.inference import load_run

    metrics = None if {"fid", "kid"} & set(cfg.eval.report) else tuple(cfg.eval.report)  # None: all that apply
    try:
        result = evaluate(cfg, method, registry, device, split="test", metrics=metrics)
    except GanzooError:
        return  # no test split, or none the metrics can use: nothing to measure against
    if metrics is None:  # only the metrics the report names
        for row in ("translated", "input"):
            if result.get(row):
                result[row] = {k: v for k, v in result[row].items() if k.split("_")[0] in cfg.eval.report}
    click.echo(f"last checkpoint (step {trainer.step}):")
    click.echo(format_table(result))
    save_result(result, run_dir)
    best = trainer.progress.best
    if best and best["step"] != trainer.step:
        _, best_method, _ = load_run(run_dir, registry, device, which="best")
        click.echo(f"validation-selected checkpoint (step {best['step']}, {best['metric']} {best['value']:.4g} "
                   f"on the validation split \"{cfg.eval.validation_split}\"):")
        click.echo(format_table(evaluate(cfg, best_method, registry, device, split="test", metrics=metrics)))

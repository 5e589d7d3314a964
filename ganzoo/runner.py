"""``ganzoo run``: recipe -> validated objects -> run directory -> Trainer, or resume a run.

Everything is validated and built on CPU-side objects before the run directory is touched,
so a bad recipe or missing data leaves no half-made run behind.
"""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo import checkpoint, rng
from ganzoo.build import build_dataset, build_method, resolve_device
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import apply_overrides, dump_toml, load_recipe, read_toml, recipe_to_dict
from ganzoo.errors import GanzooError
from ganzoo.precision import Precision
from ganzoo.trainer import Trainer


def run_training(pm, registry, *, recipe: Path | None, overrides: list[str], steps: int | None,
                 out: Path | None, resume: Path | None) -> str:
    tree = None
    if resume is not None:
        latest = RunCheckpoints(resume).latest()
        if latest is None:
            raise GanzooError(
                f"--resume {resume}: no checkpoint there (expected {resume}/checkpoints/step_*.safetensors). "
                "Start a new run with `ganzoo run RECIPE --out DIR` instead."
            )
        tree = checkpoint.load(latest)
        raw, source = tree["recipe"], f"{latest} (stored recipe)"
        if recipe is not None:
            click.echo(f"note: resuming with the recipe stored in {latest}; {recipe} is ignored", err=True)
    else:
        raw, source = read_toml(recipe), str(recipe)
    raw = apply_overrides(raw, overrides + ([f"run.max_steps={steps}"] if steps else []))
    cfg = load_recipe(raw, registry, source=source)

    run_dir = resume if resume is not None else (out or Path("runs") / cfg.run.name)
    if resume is None and RunCheckpoints(run_dir).all():
        raise GanzooError(
            f"{run_dir}: this run directory already holds checkpoints. Continue it with "
            f"`ganzoo run --resume {run_dir}`, or start a new run with --out OTHER_DIR "
            "(nothing was overwritten)."
        )

    device = resolve_device(cfg.run.device, source)
    rng.seed_everything(cfg.run.seed)
    dataset = build_dataset(cfg, registry, "train")
    precision = Precision(cfg.run.precision, device)
    method = build_method(cfg, registry, device, precision)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.toml").write_text(dump_toml(recipe_to_dict(cfg)))
    trainer = Trainer(recipe=cfg, method=method, dataset=dataset, run_dir=run_dir, pm=pm, device=device,
                      precision=precision)
    if tree is not None:
        trainer.load_state_tree(tree)
        click.echo(f"resuming {run_dir} at step {trainer.step}", err=True)
    click.echo(f"training {cfg.method.name} ({cfg.generator.name} / {cfg.discriminator.name}) on {device}: "
               f"{len(dataset)} images, {trainer.total_steps} steps -> {run_dir}", err=True)
    status = trainer.fit()
    latest = trainer.checkpoints.latest()
    if status == "interrupted":
        click.echo(f"stopped at step {trainer.step}; saved {latest}. Resume with: ganzoo run --resume {run_dir}",
                   err=True)
        return status
    click.echo(f"done: step {trainer.step}, checkpoint {latest}", err=True)
    _report(cfg, method, registry, device, run_dir)
    click.echo(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}", err=True)
    return status


def _report(cfg, method, registry, device, run_dir: Path) -> None:
    """Evaluate against ground truth at the end of a run when the test split has it."""
    from ganzoo.evaluate import evaluate, format_table, save_result

    try:
        result = evaluate(cfg, method, registry, device, split="test")
    except GanzooError:
        return  # no paired test split: nothing to measure against
    click.echo(format_table(result))
    save_result(result, run_dir)

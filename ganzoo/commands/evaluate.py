"""`ganzoo eval`: a run's translations scored against the test split."""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.errors import GanzooError


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


@click.command(name="eval")
@click.argument("run_dir_arg", metavar="[RUN_DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--checkpoint", "run_dir_opt", type=click.Path(path_type=Path),
              help="A run directory (its latest checkpoint) or a checkpoint file, as in translate and export.")
@click.option("--split", default="test", show_default=True)
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option("--device", default="auto", show_default=True)
def eval_command(run_dir_arg: Path | None, run_dir_opt: Path | None, split: str, direction: str, device: str) -> None:
    """PSNR, SSIM and L1 of a run's translations against ground truth, next to the input's."""
    from ganzoo.build import resolve_device

    if (run_dir_arg is None) == (run_dir_opt is None):
        raise GanzooError("ganzoo eval: give the run as --checkpoint RUN_DIR (or the older positional RUN_DIR), once.")
    run_dir = run_dir_opt or run_dir_arg
    from ganzoo.evaluate import evaluate, format_table, save_result
    from ganzoo.inference import load_run

    _, registry = _registry()
    dev = resolve_device(device, "--device")
    recipe, method, _ = load_run(run_dir, registry, dev)
    result = evaluate(recipe, method, registry, dev, split=split, direction=direction)
    click.echo(format_table(result))
    if run_dir.is_dir():
        click.echo(f"saved {save_result(result, run_dir)}")

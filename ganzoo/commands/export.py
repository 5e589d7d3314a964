"""`ganzoo export`: a run's networks in other formats."""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.errors import GanzooError


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


@click.command(name="export")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A run directory (its latest checkpoint) or a ganzoo checkpoint file.")
@click.option("--format", "fmt", type=click.Choice(["reference"]), default="reference", show_default=True,
              help="reference: latest_net_<NAME>.pth state_dicts of junyanz/pytorch-CycleGAN-and-pix2pix.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--which", default="latest", show_default=True, metavar="latest|best|STEP",
              help="Which checkpoint of a run directory: the latest, the validation-selected best, or a step.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ema: the generators' averaged weights when the run kept them ([optim] ema_decay); raw: as trained.")
def export_command(checkpoint: Path, fmt: str, output: Path, weights: str, which: str) -> None:
    """Export a run's networks in another format."""
    from ganzoo.reference_checkpoints import export_reference

    _, registry = _registry()
    for path in export_reference(checkpoint, output, registry, weights=weights, which=which):
        click.echo(f"wrote {path}")

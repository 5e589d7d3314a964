"""`ganzoo export`: a run's generators as checked ONNX, TorchScript, torch.export or safetensors
files, or all its networks as the reference's .pth files."""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.errors import GanzooError

FORMATS = ["onnx", "torchscript", "exported-program", "safetensors", "reference"]


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


@click.command(name="export")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A run directory (its latest checkpoint), a ganzoo checkpoint file, or (except for "
                   "--format reference) a reference .pth generator file.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="reference", show_default=True,
              help="onnx, torchscript, exported-program (.pt2), safetensors (weights): each generator, checked "
                   "against the eager network at two sizes; reference: latest_net_<NAME>.pth of every network.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--direction", type=click.Choice(["AtoB", "BtoA", "all"]), default="all", show_default=True,
              help="Which generator(s); all: every direction the method translates.")
@click.option("--opset", type=click.IntRange(min=7), help="ONNX opset (default: the torch exporter's).")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Largest absolute difference to the eager output that passes the check (fp32).")
@click.option("--which", default="latest", show_default=True, metavar="latest|best|STEP",
              help="Which checkpoint of a run directory: the latest, the validation-selected best, or a step.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ema: the generators' averaged weights when the run kept them ([optim] ema_decay); raw: as trained.")
def export_command(checkpoint: Path, fmt: str, output: Path, direction: str, opset: int | None, atol: float,
                   which: str, weights: str) -> None:
    """Export a run's generators (checked) or networks in another format.

    Every exported generator is run beside the eager one on the same random inputs at two
    sizes (dynamic batch, height and width); above --atol the export fails and no file is left.
    """
    from ganzoo.build import resolve_device
    from ganzoo.export import export_generator, output_path, require_extra
    from ganzoo.inference import load_generator, size_multiple

    _, registry = _registry()
    if fmt == "reference":
        from ganzoo.reference_checkpoints import export_reference

        for path in export_reference(checkpoint, output, registry, weights=weights, which=which):
            click.echo(f"wrote {path}")
        return
    require_extra(fmt)  # before any work: the one error names the extra
    cpu = resolve_device("cpu")
    if checkpoint.suffix in (".pth", ".pt"):
        from ganzoo.reference_checkpoints import load_reference_generator

        net, channels = load_reference_generator(checkpoint, cpu, registry)
        generators = {checkpoint.stem.removeprefix("latest_net_"): (net, channels)}
    else:
        generators = {}
        for d in (["AtoB", "BtoA"] if direction == "all" else [direction]):
            try:
                net, channels, recipe = load_generator(checkpoint, registry, cpu, d, weights=weights, which=which)
            except GanzooError:
                if direction == "all" and d == "BtoA":
                    continue  # a method that translates one way only
                raise
            generators[f"{recipe.run.name}_{d}"] = (net, channels)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanzooError(f"--output {output}: cannot create the folder ({exc.strerror or exc}).") from None
    for stem, (net, channels) in generators.items():
        report = export_generator(net, fmt, output_path(output, stem, fmt), channels=channels,
                                  multiple=size_multiple(net), opset=opset, atol=atol,
                                  metadata={"ganzoo_checkpoint": str(checkpoint), "in_channels": str(channels)})
        click.echo(report.summary())

"""`ganzoo translate`: a run's (or a reference file's) generator over images of any size."""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.errors import GanzooError


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


@click.command(name="translate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A run directory (its latest checkpoint) or a checkpoint file.")
@click.option("--input", "input_", required=True, type=click.Path(path_type=Path), help="An image or a folder.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the translated PNGs.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False, path_type=Path),
              help="For a reference .pth file: a TOML with a [generator] section for what the weights "
                   "cannot show (e.g. padding_type).")
@click.option("--which", default="latest", show_default=True, metavar="latest|best|STEP",
              help="Which checkpoint of a run directory: the latest, the validation-selected best, or a step.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ema: the generator's averaged weights when the run kept them ([optim] ema_decay); raw: as trained.")
def translate_command(checkpoint: Path, input_: Path, output: Path, direction: str, batch_size: int, device: str,
                      recipe_path: Path | None, weights: str, which: str) -> None:
    """Translate images at their own size and write PNGs (16-bit in, 16-bit out)."""
    from ganzoo.build import resolve_device
    from ganzoo.data.images import list_images
    from ganzoo.inference import load_run, translate_files

    _, registry = _registry()
    dev = resolve_device(device, "--device")
    if checkpoint.suffix in (".pth", ".pt"):  # a file of the reference implementation
        from ganzoo.reference_checkpoints import load_reference_generator

        net, channels = load_reference_generator(checkpoint, dev, registry, recipe_path=recipe_path)
    else:
        recipe, method, _ = load_run(checkpoint, registry, dev, weights=weights, which=which)
        try:
            net = method.generator(direction)
        except ValueError as exc:
            raise GanzooError(f"--direction {direction}: {exc}") from None
        channels = recipe.data.channels_a if direction == "AtoB" else recipe.data.channels_b
    if input_.is_dir():
        files = list_images(input_)
        if not files:
            raise GanzooError(f"{input_}: no images in this folder (looked for jpg, png, bmp, tif, webp).")
    elif input_.is_file():
        files = [input_]
    else:
        raise GanzooError(f"{input_}: no such image or folder.")
    written = translate_files(net, files, output, channels_in=channels, device=dev, batch_size=batch_size)
    click.echo(f"wrote {len(written)} image(s) to {output}")

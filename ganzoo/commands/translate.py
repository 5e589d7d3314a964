"""`ganzoo translate`: one generator of a run (or a reference .pth file) over images of any size."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ganzoo.errors import GanzooError


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


@click.command(name="translate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A run directory, a checkpoint file, or a reference .pth generator file.")
@click.option("--input", "input_", required=True, type=click.Path(path_type=Path), help="An image or a folder.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the translated PNGs (sub-folders of --input are kept); not inside --input.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1, max=1024), default=8, show_default=True,
              help="Images of one size read and translated together (tiles, with --tile). On a CPU each batch goes "
                   "through the network in parts of about 256x256 pixels, which runs faster there.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Autocast for the forward pass (bf16 on CPUs with native bf16 and on CUDA; fp16 on CUDA).")
@click.option("--tile", type=click.IntRange(min=0), default=0, metavar="PIXELS",
              help="Translate in overlapping tiles of this side, so memory depends on the tile, not the image.")
@click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True,
              help="Least overlap of neighbouring tiles (blended smoothly).")
@click.option("--device", default="auto", show_default=True)
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the generator with frozen weights: faster per image after compiling for "
                   "about 10 s per image size on a CPU (pays off on folders of many images; not with --tile).")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False, path_type=Path),
              help="For a reference .pth file: a TOML with a [generator] section for what the weights "
                   "cannot show (e.g. padding_type).")
@click.option("--which", default="latest", show_default=True, metavar="latest|best|STEP",
              help="Which checkpoint of a run directory: the latest, the validation-selected best, or a step.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ema: the generator's averaged weights when the run kept them ([optim] ema_decay); raw: as trained.")
def translate_command(checkpoint: Path, input_: Path, output: Path, direction: str, batch_size: int, precision: str,
                      tile: int, overlap: int, device: str, compile_: bool, recipe_path: Path | None, which: str,
                      weights: str) -> None:
    """Translate images at their own size and write PNGs (16-bit in, 16-bit out).

    Only the generator of --direction is loaded. Each PNG is written atomically, so Ctrl-C
    leaves complete files only (exit 130).
    """
    from tqdm import tqdm

    from ganzoo import heap
    from ganzoo.build import compile_failure, resolve_device, root_cause
    from ganzoo.data.images import list_images
    from ganzoo.inference import load_generator
    from ganzoo.translate import check_options, plan_outputs, translate_images

    check_options(compile=compile_, tile=tile)  # before the network is loaded
    _, registry = _registry()
    dev = resolve_device(device, "--device")
    if checkpoint.suffix in (".pth", ".pt"):  # a file of the reference implementation
        from ganzoo.reference_checkpoints import load_reference_generator

        net, channels = load_reference_generator(checkpoint, dev, registry, recipe_path=recipe_path)
    else:
        net, channels, _ = load_generator(checkpoint, registry, dev, direction, weights=weights, which=which)
    if input_.is_dir():
        files = list_images(input_)
        if not files:
            raise GanzooError(f"{input_}: no images in this folder (looked for jpg, png, bmp, tif, webp).")
    elif input_.is_file():
        files = [input_]
    else:
        raise GanzooError(f"{input_}: no such image or folder.")
    pairs = plan_outputs(files, input_, output)
    if dev.type == "cpu" and not tile:  # tiles keep memory low; whole images gain speed (ganzoo.heap)
        heap.hold_large_blocks()
    t0, bar = time.perf_counter(), tqdm(total=len(pairs), unit="img", disable=not sys.stderr.isatty())
    written = 0

    def done(n: int) -> None:
        nonlocal written
        written += n
        bar.update(n)

    try:
        translate_images(net, pairs, channels=channels, device=dev, batch_size=batch_size, precision=precision,
                         tile=tile, overlap=overlap, compile=compile_, progress=done)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"interrupted: {written} of {len(pairs)} image(s) written to {output}, each complete", err=True)
        raise SystemExit(130) from None
    except OSError as exc:
        raise GanzooError(f"{output}: cannot write the translations ({exc.strerror or exc}); {written} image(s) were "
                          "written completely before. Free space or choose another --output.") from None
    except Exception as exc:
        if not (compile_ and compile_failure(exc)):
            raise
        raise GanzooError(f"--compile: torch.compile failed ({root_cause(exc)}); {written} image(s) were written "
                          "before. Translate without --compile.") from None
    bar.close()
    seconds = time.perf_counter() - t0
    click.echo(f"wrote {written} image(s) to {output} ({written / max(seconds, 1e-9):.1f} images/s)")

"""`ganzoo eval`: runs' translations scored beside the untranslated inputs, or two folders scored alike."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ganzoo.errors import GanzooError

METRICS = ("fid", "kid", "psnr", "ssim", "l1")


def _registry():
    from ganzoo import cli  # late: the CLI module imports this one

    return cli._registry()


def _metrics(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(dict.fromkeys(name.strip().lower() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise GanzooError(f"ganzoo eval --metrics {value}: unknown metric(s) {', '.join(unknown) or '(none given)'}. "
                          f"Choose from {','.join(METRICS)}.")
    return names


def _save_to(run: Path, checkpoint_path: Path, which: str) -> tuple[Path | None, bool]:
    """The run directory to write eval_*.json into, and whether the scored checkpoint is not the latest."""
    if run.is_dir():
        return run, which != "latest"
    if checkpoint_path.parent.name == "checkpoints":
        return checkpoint_path.parent.parent, True
    return None, True


def _translates(method, direction: str) -> bool:
    try:
        method.generator(direction)
    except ValueError:
        return False
    return True


@click.command(name="eval")
@click.argument("runs", metavar="[RUN_DIR]...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="A run directory (its latest checkpoint) or a checkpoint file, as in translate and export. "
                   "Repeat it (or give several RUN_DIRs) to compare runs side by side.")
@click.option("--fake", "fake_dir", type=click.Path(path_type=Path),
              help="Score a folder of images (e.g. another tool's outputs) against --real, with the same yardstick.")
@click.option("--real", "real_dir", type=click.Path(path_type=Path), help="The real images --fake is scored against.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--direction", type=click.Choice(["AtoB", "BtoA", "both"]), default="AtoB", show_default=True,
              help="both: each way the method translates.")
@click.option("--metrics", "metrics_opt", metavar="fid,kid,psnr,ssim,l1",
              help="What to compute [default: all that apply; FID and KID need the metrics extra, "
                   "PSNR, SSIM and L1 need ground-truth pairs].")
@click.option("--max-images", type=click.IntRange(min=0), default=0, show_default=True,
              help="Score at most N images of each set (the first N by name); 0: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (for scripts) instead of a table.")
@click.option("--which", default="latest", show_default=True, metavar="latest|best|STEP",
              help="Which checkpoint of a run directory: the latest, the validation-selected best, or a step.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ema: the generators' averaged weights when the run kept them; raw: as trained.")
@click.option("--sheet-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Rows of the contact sheet written next to eval_*.json (0: none).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", default="auto", show_default=True)
def eval_command(runs: tuple[Path, ...], checkpoints: tuple[Path, ...], fake_dir: Path | None, real_dir: Path | None,
                 split: str, direction: str, metrics_opt: str | None, max_images: int, as_json: bool, which: str,
                 weights: str, sheet_images: int, batch_size: int, device: str) -> None:
    """Score translations: FID and KID against the real test targets, PSNR, SSIM and L1 against
    ground truth where pairs exist, each beside the untranslated input scored the same way.

    Writes eval_<split>_<direction>.json and a contact sheet (.png: input | translation | ground
    truth) into each run directory. With --fake DIR --real DIR, scores two folders instead.
    """
    from ganzoo.build import resolve_device
    from ganzoo.evaluate import FeatureScores, evaluate_folders, format_table
    from ganzoo.metrics import FeatureCache

    targets = [*runs, *checkpoints]
    metrics = _metrics(metrics_opt)
    if (fake_dir is None) != (real_dir is None):
        raise GanzooError("ganzoo eval: give --fake DIR and --real DIR together (the images to score and the real "
                          "images they are scored against).")
    if fake_dir is not None and targets:
        raise GanzooError("ganzoo eval: give either runs (RUN_DIR or --checkpoint) or --fake/--real folders, not both.")
    if fake_dir is None and not targets:
        raise GanzooError("ganzoo eval: nothing to score. Give a run (ganzoo eval runs/NAME, or --checkpoint RUN), "
                          "several to compare them, or --fake DIR --real DIR to score two folders.")
    dev = resolve_device(device, "--device")
    scores = FeatureScores(dev, FeatureCache())
    results = []
    if fake_dir is not None:
        results.append(evaluate_folders(fake_dir, real_dir, dev, metrics=metrics, max_images=max_images, scores=scores))
    else:
        results = _evaluate_runs(targets, split=split, direction=direction, metrics=metrics, max_images=max_images,
                                 which=which, weights=weights, sheet_images=sheet_images, batch_size=batch_size,
                                 device=dev, scores=scores)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        for result in results:
            for line in result["warnings"]:
                click.echo(line, err=True)
    else:
        click.echo(format_table(*results))


def _evaluate_runs(targets: list[Path], *, split, direction, metrics, max_images, which, weights, sheet_images,
                   batch_size, device, scores) -> list[dict]:
    """Each run's evaluation in each asked direction, saved into its run directory."""
    from ganzoo.evaluate import evaluate, result_stem, save_result
    from ganzoo.inference import find_checkpoint, load_run

    _, registry = _registry()
    results = []
    for target in targets:
        recipe, method, tree = load_run(target, registry, device, weights=weights, which=which)
        ckpt = find_checkpoint(target, which)
        save_dir, other = _save_to(target, ckpt, which)
        directions = ["AtoB", "BtoA"] if direction == "both" else [direction]
        for way in directions:
            if direction == "both" and not _translates(method, way):
                click.echo(f"note: {target}: method '{recipe.method.name}' does not translate {way}; scored the "
                           "other way only.", err=True)
                continue
            step = tree.get("step")
            stem = result_stem({"split": split, "direction": way}, step if other else None)
            sheet = save_dir / f"{stem}.png" if save_dir is not None and sheet_images else None
            result = evaluate(recipe, method, registry, device, split=split, direction=way, batch_size=batch_size,
                              metrics=metrics, max_images=max_images, scores=scores, sheet=sheet,
                              sheet_images=sheet_images)
            result = {"run": str(target), "checkpoint": str(ckpt), "step": step, **result}
            if save_dir is not None:
                click.echo(f"saved {save_result(result, save_dir, stem)}", err=True)
            results.append(result)
    return results

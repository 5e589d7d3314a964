"""Evaluation against ground truth: PSNR, SSIM and L1 of translations, next to the
untranslated input's figures (the baseline a model has to beat).

Ground truth needs pairs: the recipe's own pairing when it is aligned, otherwise test
folders whose A and B files share names (as the built-in glyph sets do).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ganzoo.config import Recipe
from ganzoo.errors import DataError, GanzooError
from ganzoo.inference import translate_batch
from ganzoo.method import Method
from ganzoo.registry import Registry


def ground_truth_dataset(recipe: Recipe, registry: Registry, split: str):
    """A dataset of true (A, B) pairs for ``split`` at test-time geometry (no crop, no flip)."""
    # As the reference's test options: images are resized to crop_size, never cropped.
    augment = dataclasses.replace(recipe.augment, load_size=recipe.augment.crop_size)
    spec = registry.get("pairing", recipe.pairing.name)
    dataset = spec.build(recipe.pairing.config, split=split, data=recipe.data, augment=augment, seed=0)
    if dataset.aligned:
        return dataset
    named = registry.get("pairing", "named")
    a_dir, b_dir = f"{split}A", f"{split}B"
    if getattr(recipe.pairing.config, "direction", "AtoB") == "BtoA":
        a_dir, b_dir = b_dir, a_dir
    cfg = named.config_cls(a_dir=a_dir, b_dir=b_dir)
    try:
        return named.build(cfg, split=split, data=recipe.data, augment=augment, seed=0)
    except DataError as exc:
        raise GanzooError(
            f"{recipe.data.root}: no ground truth for split '{split}': the pairing "
            f"'{recipe.pairing.name}' is unpaired and {split}A/{split}B do not share file names "
            f"({str(exc).splitlines()[0]}). Evaluation needs paired test images."
        ) from None


def _metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM and L1 for batches in [0, 1]."""
    import kornia.metrics

    mse = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return {
        "psnr": 10 * torch.log10(1.0 / mse),
        "ssim": kornia.metrics.ssim(pred, target, window_size=11).flatten(1).mean(1),
        "l1": (pred - target).abs().flatten(1).mean(1),
    }


@torch.no_grad()
def evaluate(recipe: Recipe, method: Method, registry: Registry, device: torch.device, *,
             split: str = "test", direction: str = "AtoB", batch_size: int = 16) -> dict:
    """Translate every test input and compare with its ground truth. Returns a JSON-ready dict."""
    net = method.generator(direction)
    was_training = net.training
    net.train(False)
    dataset = ground_truth_dataset(recipe, registry, split)
    src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
    sums: dict[str, dict[str, float]] = {"translated": {}, "input": {}}
    n = 0
    for i in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
        x = torch.stack([it[src] for it in items]).to(device)
        y = torch.stack([it[dst] for it in items]).to(device)
        fake = ((translate_batch(net, x * 2 - 1).float() + 1) / 2).clamp(0, 1)
        rows = {"translated": _metrics(fake, y)}
        if x.shape == y.shape:
            rows["input"] = _metrics(x, y)
        for row, values in rows.items():
            for k, v in values.items():
                sums[row][k] = sums[row].get(k, 0.0) + float(v.sum())
        n += len(items)
    net.train(was_training)
    if n == 0:
        raise GanzooError(f"{recipe.data.root}: split '{split}' has no images to evaluate.")
    return {
        "split": split, "direction": direction, "images": n,
        "translated": {k: v / n for k, v in sums["translated"].items()},
        "input": {k: v / n for k, v in sums["input"].items()} or None,
    }


def format_table(result: dict) -> str:
    """The result as a small text table."""
    lines = [f"{result['direction']} on {result['split']} ({result['images']} images)",
             f"{'':<22}{'PSNR dB':>9}{'SSIM':>8}{'L1':>8}"]
    rows = [("translated", "translated")]
    if result.get("input"):
        rows.append(("untranslated input", "input"))
    for label, key in rows:
        m = result[key]
        lines.append(f"{label:<22}{m['psnr']:>9.2f}{m['ssim']:>8.4f}{m['l1']:>8.4f}")
    return "\n".join(lines)


def save_result(result: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / f"eval_{result['split']}_{result['direction']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path

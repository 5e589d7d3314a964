"""Evaluation results for people and scripts: the side-by-side table, eval_*.json and the contact sheet."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

# (key, header, width): KID is printed as mean ± std
_COLUMNS = (("fid", "FID", 9), ("kid_mean", "KID ± std", 19), ("psnr", "PSNR dB", 9), ("ssim", "SSIM", 8),
            ("l1", "L1", 8))
_BASELINE = "untranslated input"


def _cell(key: str, width: int, scores: dict | None) -> str:
    if not scores or key not in scores:
        return f"{'-':>{width}}"
    if key == "kid_mean":
        return f"{scores['kid_mean']:.4f} ± {scores['kid_std']:.4f}".rjust(width)
    return f"{scores[key]:>{width}.{2 if key in ('fid', 'psnr') else 4}f}"


def _label(result: dict) -> str:
    """A result's row name: the run and step when there are several, the fake folder for folders."""
    if "fake" in result:
        return result["fake"]
    if "run" in result:
        step = f" step {result['step']}" if result.get("step") is not None else ""
        return f"{result['run']}{step}"
    return "translated"


def _heading(result: dict) -> str:
    if "fake" in result:
        what = f"{result['fake']} against {result['real']}: {result['images']} images, {result['real_images']} real"
    else:
        what = (f"{result['direction']} on {result['split']}: {result['images']} images translated, "
                f"{result['real_images']} real targets")
    return what + (f", {result['pairs']} ground-truth pairs" if result.get("pairs") else "")


def _group_key(result: dict) -> tuple:
    """Results that share their heading and baseline: the same data scored the same way."""
    return (_heading(result), json.dumps(result.get("input"), sort_keys=True))


def format_table(*results: dict) -> str:
    """One or more results (of :func:`~ganzoo.evaluate.evaluate` or ``evaluate_folders``) as a text
    table: each run's translations beside the untranslated input scored the same way, then the
    notes and warnings.

    Example:
        >>> print(format_table(result_a, result_b))
        AtoB on test: 120 images translated, 140 real targets
                                    FID            KID ± std   PSNR dB    SSIM      L1
        runs/a step 2000          61.20     0.0210 ± 0.0012         -       -       -
        runs/b step 2000          58.87     0.0187 ± 0.0011         -       -       -
        untranslated input       133.05     0.1093 ± 0.0031         -       -       -
    """
    groups: dict[tuple, list[int]] = {}
    for i, result in enumerate(results):
        groups.setdefault(_group_key(result), []).append(i)
    several = len({_label(r) for r in results}) > 1  # runs or checkpoints side by side
    labels = [_label(r) if several or "fake" in r else "translated" for r in results]
    width = max(22, *(len(label) + 2 for label in labels))
    lines: list[str] = []
    for members in groups.values():
        first = results[members[0]]
        present = {k for i in members for scores in (results[i]["translated"], results[i].get("input") or {})
                   for k in scores}
        columns = [c for c in _COLUMNS if c[0] in present]
        if lines:
            lines.append("")
        lines.append(_heading(first) if several or "run" not in first else f"{_label(first)}, {_heading(first)}")
        lines.append(" " * width + "".join(f"{header:>{w}}" for _, header, w in columns))
        for i in members:
            cells = "".join(_cell(k, w, results[i]["translated"]) for k, _, w in columns)
            lines.append(f"{labels[i]:<{width}}{cells}")
        if first.get("input"):
            lines.append(f"{_BASELINE:<{width}}" + "".join(_cell(k, w, first["input"]) for k, _, w in columns))
    hits = sum(r.get("feature_cache", {}).get("hits", 0) for r in results)
    misses = sum(r.get("feature_cache", {}).get("misses", 0) for r in results)
    if hits or misses:
        lines.append(f"real-image features: {hits} set(s) read from the cache, {misses} computed and cached")
    seen: list[str] = []
    for r in results:
        seen += [line for line in (*r.get("notes", ()), *r.get("warnings", ())) if line not in seen]
    return "\n".join(lines + seen)


def save_result(result: dict, run_dir: Path, stem: str | None = None) -> Path:
    """Write ``result`` to ``run_dir / (stem or eval_<split>_<direction>).json``; return the path."""
    path = Path(run_dir) / f"{stem or result_stem(result)}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def result_stem(result: dict, step: int | None = None) -> str:
    """``eval_<split>_<direction>``, with ``_step<N>`` for a checkpoint other than the latest."""
    suffix = f"_step{step}" if step is not None else ""
    return f"eval_{result['split']}_{result['direction']}{suffix}"


def _tile(image: Tensor, size: tuple[int, int]) -> Tensor:
    """A (3, H, W) tile in [-1, 1]: grey (and grey+alpha) made RGB, alpha dropped, resized to ``size``."""
    rgb = image[:3] if image.shape[0] >= 3 else image[:1].expand(3, -1, -1)
    if tuple(rgb.shape[-2:]) != size:
        rgb = F.interpolate(rgb[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return rgb.clamp(-1, 1)


def write_contact_sheet(path: Path, inputs: list[Tensor], fakes: list[Tensor], targets: list[Tensor] | None, *,
                        rows: int = 8, gap: int = 2) -> Path:
    """A PNG grid of the first ``rows`` images: input | translation | ground truth (when there are pairs).

    Tiles take the first input's size; a white ``gap`` separates them.
    """
    columns = [inputs, fakes] + ([targets] if targets is not None else [])
    size = tuple(inputs[0].shape[-2:])
    white_v, white_h = torch.ones(3, size[0], gap), None
    lines = []
    for i in range(min(rows, len(inputs))):
        tiles = [_tile(column[i], size) for column in columns]
        row = torch.cat([t for tile in tiles for t in (tile, white_v)][:-1], dim=2)
        white_h = torch.ones(3, gap, row.shape[2])
        lines += [row, white_h]
    sheet = torch.cat(lines[:-1], dim=1)
    from ganzoo.data.images import write_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, (sheet + 1) / 2)
    return path

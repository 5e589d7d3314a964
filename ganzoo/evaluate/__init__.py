"""Evaluation of translations, always beside the "do nothing" baseline (the untranslated inputs
scored the same way): FID and KID of translated test inputs against the real test targets, and
PSNR, SSIM and L1 where the test split has ground-truth pairs; plain-words warnings when a
generator copies its input or gives one output for all; a contact sheet to look at. Any two
folders can be scored with the same yardstick (:func:`evaluate_folders`).

Example:
    >>> recipe, method, _ = load_run("runs/h2z", registry, device)
    >>> result = evaluate(recipe, method, registry, device, metrics=None, sheet=Path("runs/h2z/eval.png"))
    >>> print(format_table(result)); save_result(result, Path("runs/h2z"))
"""
from __future__ import annotations

from ganzoo.evaluate.data import ground_truth_dataset
from ganzoo.evaluate.report import format_table, result_stem, save_result, write_contact_sheet
from ganzoo.evaluate.run import evaluate, evaluate_folders
from ganzoo.evaluate.scores import ALL, FEATURE, PIXEL, FeatureScores, _metrics

__all__ = [
    "ALL",
    "FEATURE",
    "PIXEL",
    "FeatureScores",
    "_metrics",
    "evaluate",
    "evaluate_folders",
    "format_table",
    "ground_truth_dataset",
    "result_stem",
    "save_result",
    "write_contact_sheet",
]

"""Score a run's translations (or a folder of images) and the untranslated baseline beside them."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganzoo.config import Recipe
from ganzoo.errors import GanzooError
from ganzoo.evaluate.checks import copy_and_collapse, spread, translation_distance
from ganzoo.evaluate.data import ImageSets, folder_images, same_shape_groups, split_images, stack
from ganzoo.evaluate.scores import ALL, FEATURE, PIXEL, FeatureScores, pixel_scores, too_few
from ganzoo.inference import translate_batch
from ganzoo.method import Method
from ganzoo.metrics import FeatureCache
from ganzoo.registry import Registry


def _choose(metrics: tuple[str, ...] | None, sets: ImageSets, scores: FeatureScores | None, device,
            where: str) -> tuple[list[str], list[str], list[str], FeatureScores | None]:
    """The pixel and feature metrics to compute, notes on those skipped, and the feature scorer.

    Metrics asked for by name (``metrics`` not None) that cannot be computed are errors; of the
    default (all), those that do not apply are skipped with a note.
    """
    strict = metrics is not None
    wanted = [m for m in ALL if m in (metrics or ALL)]
    pixel, feature, notes = [m for m in wanted if m in PIXEL], [m for m in wanted if m in FEATURE], []
    if pixel and sets.targets is None:
        if strict:
            raise GanzooError(sets.pairs_error)
        notes.append(f"note: PSNR, SSIM and L1 skipped: no ground-truth pairs ({sets.no_pairs}).")
        pixel = []
    if feature:
        scores = scores or FeatureScores(device, FeatureCache())
        missing = scores.available()
        reason = missing or too_few(len(sets.inputs), sets.labels[0]) or too_few(len(sets.reals), sets.labels[1])
        if reason:
            if strict:
                leave = f"leave {' and '.join(m.upper() for m in feature)} out of --metrics"
                fix = f", or {leave}." if missing else f". Score more images, or {leave}."
                raise GanzooError(f"ganzoo eval --metrics {','.join(wanted)}: {reason}{fix}")
            notes.append(f"note: FID and KID skipped: {reason}.")
            feature = []
    if not pixel and not feature:
        why = " ".join(note.removeprefix("note: ") for note in notes)
        raise GanzooError(f"ganzoo eval {where}: nothing to score. {why}")
    return pixel, feature, notes, scores


@torch.no_grad()
def _translate(net: nn.Module, images: list[Tensor], batch_size: int) -> list[Tensor]:
    weights = next(net.parameters(), None)
    device = weights.device if weights is not None else torch.device("cpu")
    out: list[Tensor] = [None] * len(images)  # type: ignore[list-item]
    for group in same_shape_groups(images):
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            fake = translate_batch(net, stack(images, chunk).to(device)).float().clamp(-1, 1).cpu()
            for i, image in zip(chunk, fake):
                out[i] = image
    return out


def _score(sets: ImageSets, fakes: list[Tensor], pixel: list[str], feature: list[str], scores: FeatureScores | None,
           features: tuple[Tensor, Tensor] | None = None) -> tuple[dict, dict, list[str], dict]:
    """Scores of the fakes and, when they are translations, of the inputs as they are (the baseline).

    ``features`` are the (fake, real) features when the caller has them already. Returns the
    two score dicts, notes, and ``{"kid_subset_size": n}`` when KID was computed.
    """
    translated, baseline, notes, extra = {}, {}, [], {}
    has_inputs = fakes is not sets.inputs
    if pixel:
        translated.update(pixel_scores(fakes, sets.targets, tuple(pixel)))
        if has_inputs and all(x.shape == t.shape for x, t in zip(sets.inputs, sets.targets)):
            baseline.update(pixel_scores(sets.inputs, sets.targets, tuple(pixel)))
    if feature:
        fake, real = features or (scores.features(fakes), scores.features(sets.reals, real=True))
        found, notes = scores.score(fake, real, tuple(feature))
        translated.update(found)
        if has_inputs:
            found, more = scores.score(scores.features(sets.inputs, real=True), real, tuple(feature))
            baseline.update(found)
            notes += [n for n in more if n not in notes]
        if "kid_subset_size" in translated:
            extra["kid_subset_size"] = translated.pop("kid_subset_size")
            baseline.pop("kid_subset_size", None)
    return translated, baseline, [f"note: {n}" for n in notes], extra


def _cache_use(scores: FeatureScores | None, before: tuple[int, int]) -> dict:
    """Hits and misses of the feature cache since ``before``, or {} when no features were computed."""
    if scores is None or scores.cache_counts == before:
        return {}
    hits, misses = scores.cache_counts
    return {"feature_cache": {"hits": hits - before[0], "misses": misses - before[1]}}


def evaluate(recipe: Recipe, method: Method, registry: Registry, device: torch.device, *,
             split: str = "test", direction: str = "AtoB", batch_size: int = 16,
             metrics: tuple[str, ...] | None = PIXEL, max_images: int = 0,
             scores: FeatureScores | None = None, sheet: Path | None = None, sheet_images: int = 8) -> dict:
    """Translate the inputs of ``split`` and score them, and the untranslated inputs beside them.

    Args:
        recipe, method, registry, device: the run, as :func:`ganzoo.inference.load_run` gives it.
        split: the split to score (its folders as the recipe's pairing reads them).
        direction: ``AtoB`` or ``BtoA``; the method must have a generator for it.
        batch_size: images per forward pass.
        metrics: names from ``fid, kid, psnr, ssim, l1``; each must be computable (a missing
            metrics extra or missing ground truth is a GanzooError). None: all that apply,
            with a note for each one skipped.
        max_images: score at most this many images of each set (0: all).
        scores: a :class:`FeatureScores` shared between evaluations (network, cache, scores).
        sheet: write a contact sheet (input | translation | ground truth) PNG here.
        sheet_images: rows of the contact sheet.

    Returns:
        A JSON-ready dict: ``split, direction, images`` (translated), ``real_images`` (FID's
        reference set), ``pairs``, ``translated`` and ``input`` (the baseline; None when
        nothing could score it) mapping metric names to values (``fid, kid_mean, kid_std,
        psnr, ssim, l1``), the distances behind the warnings, ``warnings``, ``notes`` and
        ``feature_cache`` (hits and misses of this evaluation).
    """
    try:
        net = method.generator(direction)
    except ValueError as exc:
        raise GanzooError(f"--direction {direction}: {exc}") from None
    sets = split_images(recipe, registry, split, direction, max_images)
    if not sets.inputs:
        raise GanzooError(f"{recipe.data.root}: split '{split}' has no images to evaluate.")
    where = f"{recipe.data.root} split '{split}' ({direction})"
    pixel, feature, notes, scores = _choose(metrics, sets, scores, device, where)
    was_training = net.training
    net.train(False)
    try:
        fakes = _translate(net, sets.inputs, batch_size)
    finally:
        net.train(was_training)
    before = scores.cache_counts if scores is not None else (0, 0)
    translated, baseline, more, extra = _score(sets, fakes, pixel, feature, scores)
    stats = {"translation_distance": translation_distance(sets.inputs, fakes),
             "output_spread": spread(fakes), "input_spread": spread(sets.inputs)}
    result = {
        "split": split, "direction": direction, "images": len(fakes), "real_images": len(sets.reals),
        "pairs": len(sets.targets) if sets.targets is not None else 0,
        "translated": translated, "input": baseline or None, **extra, **stats,
        "warnings": copy_and_collapse(f"{direction} outputs", stats, translated, baseline or None),
        "notes": notes + more, **_cache_use(scores, before),
    }
    if sheet is not None and sheet_images > 0:
        from ganzoo.evaluate.report import write_contact_sheet

        result["contact_sheet"] = str(write_contact_sheet(sheet, sets.inputs, fakes, sets.targets, rows=sheet_images))
    return result


def evaluate_folders(fake_dir: Path, real_dir: Path, device: torch.device | str = "cpu", *,
                     metrics: tuple[str, ...] | None = None, max_images: int = 0,
                     scores: FeatureScores | None = None) -> dict:
    """Score the images of ``fake_dir`` against those of ``real_dir`` with the same yardstick as a
    run: FID and KID, and PSNR/SSIM/L1 when every fake has a real image of the same name and size.

    Returns the dict of :func:`evaluate` with ``fake`` and ``real`` instead of ``split`` and
    ``direction``, and no baseline (there are no inputs).
    """
    sets, fake_files, real_files = folder_images(Path(fake_dir), Path(real_dir), max_images)
    pixel, feature, notes, scores = _choose(metrics, sets, scores, device, f"--fake {fake_dir} --real {real_dir}")
    features, before = None, scores.cache_counts if scores is not None else (0, 0)
    if feature:  # from the files' bytes, so the real folder's cache entry is the one score_folders uses
        features = (scores.file_features(fake_files), scores.file_features(real_files, real=True))
    translated, _, more, extra = _score(sets, sets.inputs, pixel, feature, scores, features)
    stats = {"output_spread": spread(sets.inputs), "input_spread": spread(sets.reals)}
    result = {
        "fake": str(fake_dir), "real": str(real_dir), "images": len(sets.inputs), "real_images": len(sets.reals),
        "pairs": len(sets.targets) if sets.targets is not None else 0,
        "translated": translated, "input": None, **extra, **stats,
        "warnings": copy_and_collapse(f"the images in {fake_dir}", stats, translated, None,
                                      reference="the real images"),
        "notes": notes + more, **_cache_use(scores, before),
    }
    return result

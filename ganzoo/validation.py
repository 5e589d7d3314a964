"""Evaluation during training (``[eval]``): translate a fixed set of validation inputs every N
steps and score them (FID, KID against the split's real targets; PSNR, SSIM, L1 when the split
holds true pairs). The split is never the test split, which is kept for the final report.

Inputs and targets are read once (the first ``images`` items of the split, at test-time
geometry) and the targets' Inception features computed once, so an evaluation costs the
translations and their features only.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ganzoo.config import LOWER_IS_BETTER, Recipe
from ganzoo.errors import DataError, RecipeError
from ganzoo.registry import Registry


class Validator:
    """Scores a generator on the recipe's ``[eval] split``.

    Args:
        recipe: the run's recipe (``[eval]`` and the data sections).
        registry: to build the split's dataset with the recipe's pairing.
        device: where to translate and extract features.

    Raises:
        RecipeError: the split has no images (e.g. no valA/valB folders), or FID/KID are
            asked for without the metrics extra.
    """

    def __init__(self, recipe: Recipe, registry: Registry, device: torch.device) -> None:
        from ganzoo.build import hold_out

        self.cfg, self.device = recipe.eval, device
        held = self.cfg.holdout > 0
        where = (f"{recipe.source} [eval] holdout = {self.cfg.holdout}" if held
                 else f"{recipe.source} [eval] split = \"{self.cfg.split}\"")
        augment = dataclasses.replace(recipe.augment, load_size=recipe.augment.crop_size, flip=False)
        spec = registry.get("pairing", recipe.pairing.name)
        try:
            dataset = spec.build(recipe.pairing.config, split="train" if held else self.cfg.split, data=recipe.data,
                                 augment=augment, seed=recipe.run.seed)
        except (DataError, ValueError) as exc:
            if held:
                raise RecipeError(f"{where}: {str(exc).splitlines()[0]}") from None
            raise RecipeError(
                f"{where}: {str(exc).splitlines()[0]} Put validation images in {recipe.data.root} as the "
                f"pairing reads them for split \"{self.cfg.split}\" (e.g. valA/ and valB/), never the test images, "
                "or hold out train images with [eval] holdout = N, or set [eval] every = 0."
            ) from None
        if held:
            dataset = hold_out(dataset, recipe)[1]
        src, dst = ("A", "B") if self.cfg.direction == "AtoB" else ("B", "A")
        items = [dataset[i] for i in range(min(self.cfg.images, len(dataset)))]
        if len(items) < 2:
            raise RecipeError(f"{where}: {len(items)} image(s); an evaluation needs at least 2.")
        self.inputs = torch.stack([it[src] for it in items]) * 2 - 1
        self.targets = torch.stack([it[dst] for it in items]) * 2 - 1
        self.paired = bool(dataset.aligned)
        self._extractor = self._real_features = None
        if {"fid", "kid"} & set(self.cfg.metrics):
            from ganzoo.metrics import MetricsUnavailableError, load_fid_extractor

            try:
                self._extractor = load_fid_extractor(device)
            except MetricsUnavailableError as exc:
                raise RecipeError(f"{where} metrics = {list(self.cfg.metrics)}: {exc}") from None
        if not self.paired and {"psnr", "ssim", "l1"} & set(self.cfg.metrics):
            raise RecipeError(f"{where}: PSNR, SSIM and L1 need true pairs, and pairing "
                              f"\"{recipe.pairing.name}\" is unpaired. Use metrics = [\"fid\", \"kid\"].")

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module, autocast) -> dict[str, float]:
        """The scores of ``generator`` (put in eval mode for the call, then restored)."""
        from ganzoo.evaluate import _metrics
        from ganzoo.inference import translate_batch

        was_training = generator.training
        generator.eval()
        fakes = []
        try:
            for i in range(0, len(self.inputs), 16):
                with autocast():
                    fakes.append(translate_batch(generator, self.inputs[i:i + 16].to(self.device)).float().cpu())
        finally:
            generator.train(was_training)
        fake = torch.cat(fakes).clamp(-1, 1)
        scores: dict[str, float] = {}
        if self._extractor is not None:
            from ganzoo.metrics import fid_kid, image_features

            if self._real_features is None:
                self._real_features = image_features(self.targets, self._extractor, progress=False)
            result = fid_kid(image_features(fake, self._extractor, progress=False), self._real_features)
            scores.update({"fid": result["fid"], "kid": result["kid_mean"]})
        if self.paired:
            per_image = _metrics((fake + 1) / 2, (self.targets + 1) / 2)
            scores.update({k: float(v.mean()) for k, v in per_image.items()})
        return {k: v for k, v in scores.items() if k in self.cfg.metrics}

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` of the selection metric beats ``best``."""
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value < best if LOWER_IS_BETTER[self.cfg.select] else value > best


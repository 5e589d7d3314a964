"""The checkpointed training state: where the run stands, and the tree a checkpoint holds.

A checkpoint holds everything needed to continue exactly: the resolved recipe, the position
(step, epoch, batch within the epoch), the method's networks, optimisers and schedules (also
those of networks the method creates lazily), the precision's scalers, the method's own state
(pools, samplers' generators), the RNG states and the versions that wrote it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ganzoo import rng
from ganzoo.config import Recipe, recipe_to_dict
from ganzoo.errors import CheckpointError
from ganzoo.method import Method

TRAINING_KEYS = ("recipe", "step", "epoch", "epoch_pos", "networks", "optimizers", "schedulers", "method", "rng")


@dataclasses.dataclass
class Progress:
    """Where a run stands. ``epoch`` is 0-based; ``epoch_pos`` counts the epoch's batches taken;
    ``monitored`` holds this epoch's values of the method's monitored metric (plateau schedule)."""

    step: int = 0
    epoch: int = 0
    epoch_pos: int = 0
    monitored: list[float] = dataclasses.field(default_factory=list)
    skipped_steps: int = 0
    skipped_images: list[str] = dataclasses.field(default_factory=list)
    best: dict[str, Any] = dataclasses.field(default_factory=dict)  # [eval] select: {"metric", "value", "step"}

    def counts(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps, "skipped_images": len(self.skipped_images)}


def capture(recipe: Recipe, progress: Progress, method: Method, pm, ema: dict | None = None) -> dict[str, Any]:
    """The checkpoint tree of this moment of the run (``ema``: the generator EMA's state, if any)."""
    import ganzoo

    return {
        **({"ema": ema} if ema else {}),
        "recipe": recipe_to_dict(recipe),
        "step": progress.step, "epoch": progress.epoch, "epoch_pos": progress.epoch_pos,
        "epoch_monitored": list(progress.monitored),
        "skipped_steps": progress.skipped_steps, "skipped_images": list(progress.skipped_images),
        "best": dict(progress.best),
        **method.ctx.state(),
        "precision": method.ctx.updater.state_dict(),
        "method": method.extra_state(),
        "rng": rng.capture(),
        "versions": {"ganzoo": ganzoo.__version__, "torch": torch.__version__,
                     "plugins": {n: "/".join(pm.distribution(n)) for n, _ in pm.list_name_plugin()}},
    }


def restore(tree: dict[str, Any], progress: Progress, method: Method, source: str = "checkpoint") -> None:
    """Restore what :func:`capture` wrote; a mismatch is a CheckpointError."""
    ctx = method.ctx
    absent = [n for n in ctx.networks if n not in tree.get("networks", {})]
    if absent:
        raise CheckpointError(f"{source}: no weights for network '{absent[0]}' "
                              f"(found: {', '.join(tree.get('networks', {}))}).")
    try:
        ctx.restore(tree["networks"], tree["optimizers"], tree["schedulers"], source=source)
        ctx.updater.load_state_dict(tree.get("precision", {}))
        method.load_extra_state(tree["method"])
        progress.step, progress.epoch, progress.epoch_pos = _count(tree, "step"), _count(tree, "epoch"), \
            _count(tree, "epoch_pos")
        progress.monitored = [float(v) for v in tree.get("epoch_monitored", tree.get("epoch_g_losses", []))]
        progress.skipped_steps = _count(tree, "skipped_steps")
        progress.skipped_images = [str(m) for m in tree.get("skipped_images", [])]
        best = tree.get("best", {})
        progress.best = {"metric": str(best["metric"]), "value": float(best["value"]), "step": _count(best, "step")} \
            if best else {}
        rng.restore(tree["rng"])
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{source}: the training state does not fit this run ({type(exc).__name__}: {exc}). "
            "Resume without --set overrides that change the method, or start a new run."
        ) from None


def _count(tree: dict[str, Any], key: str) -> int:
    value = tree.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ValueError(f"{key} = {value!r} is not a step count")
    return value

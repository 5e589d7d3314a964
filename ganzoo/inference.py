"""Load trained networks from a run or a checkpoint file and translate images of any size."""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import checkpoint
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import Recipe, load_recipe
from ganzoo.errors import CheckpointError, GanzooError
from ganzoo.method import Method
from ganzoo.registry import Registry


def load_networks(method: Method, states: dict[str, dict[str, torch.Tensor]], source: str) -> None:
    """Load state_dicts into the method's networks; a mismatch names the keys and shapes."""
    for name, net in method.networks.items():
        if name not in states:
            raise CheckpointError(f"{source}: no weights for network '{name}' (found: {', '.join(states)}).")
        load_state_dict_checked(net, states[name], f"{source} network '{name}'")


def state_differences(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], *,
                      network: str = "the network") -> str:
    """What keeps ``state`` from loading strictly into a module whose state_dict is ``own``
    (shapes, missing and unexpected keys, the first few of each), or "" when it fits."""
    shapes = [f"{k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} in {network}"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    for label, keys in (("shape mismatch(es)", shapes), ("key(s) missing from the file", missing),
                        ("unexpected key(s) in the file", unexpected)):
        if keys:
            more = f" (and {len(keys) - 4} more)" if len(keys) > 4 else ""
            parts.append(f"{len(keys)} {label}: {'; '.join(keys[:4])}{more}")
    return "; ".join(parts)


def load_state_dict_checked(net: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with a readable report of every difference."""
    problems = state_differences(net.state_dict(), state)
    if problems:
        raise CheckpointError(
            f"{where}: the weights do not fit this architecture. {problems}. The checkpoint was trained with "
            "another generator/discriminator or other widths: use the recipe it was trained with."
        )
    net.load_state_dict(state, strict=True)


def find_checkpoint(path: str | Path, which: str = "latest") -> Path:
    """A checkpoint file, or a checkpoint of a run directory: ``which`` is ``latest``, ``best``
    (selected by ``[eval] select`` on the validation split) or a step number."""
    path = Path(path)
    if path.is_dir() and which != "latest":
        checkpoints = RunCheckpoints(path)
        if which == "best":
            if not checkpoints.best_path.is_file():
                raise CheckpointError(f"{path}: no best checkpoint (checkpoints/best.safetensors): the run kept none. "
                                      "Set [eval] every and select when training, or use --which latest.")
            return checkpoints.best_path
        if not which.isdigit():
            raise CheckpointError(f"--which {which}: give latest, best or a step number.")
        found = checkpoints.path_for(int(which))
        if not found.is_file():
            kept = ", ".join(str(int(p.stem.split("_")[1])) for p in checkpoints.all()) or "none"
            raise CheckpointError(f"{path}: no checkpoint of step {which} (kept steps: {kept}).")
        return found
    if path.is_dir():
        latest = RunCheckpoints(path).latest()
        if latest is None:
            raise CheckpointError(
                f"{path}: no checkpoint in this run directory (expected checkpoints/step_*.safetensors). "
                "Train first with `ganzoo run RECIPE`, or pass a checkpoint file."
            )
        return latest
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory.")
    return path


def load_run(path: str | Path, registry: Registry, device: torch.device, *,
             weights: str = "ema", which: str = "latest") -> tuple[Recipe, Method, dict]:
    """Rebuild the method of a saved run from the recipe stored in its checkpoint.

    ``weights="ema"`` gives the generators their EMA weights when the run kept an EMA
    (``[optim] ema_decay``); ``"raw"`` the trained weights.
    """
    from ganzoo.build import build_method

    ckpt = find_checkpoint(path, which)
    tree = checkpoint.load(ckpt)
    recipe = load_recipe(tree["recipe"], registry, source=f"{ckpt} (stored recipe)")
    method = build_method(recipe, registry, device, place_networks=False)
    load_networks(method, tree["networks"], str(ckpt))
    if weights == "ema" and isinstance(tree.get("ema"), dict):
        for name, ema in tree["ema"].items():
            if name in method.networks:
                load_state_dict_checked(method.networks[name], ema["weights"], f"{ckpt} EMA of network '{name}'")
    method.train(False)
    return recipe, method, tree


def load_generator(path: str | Path, registry: Registry, device: torch.device, direction: str, *,
                   weights: str = "ema", which: str = "latest") -> tuple[nn.Module, int, Recipe]:
    """The generator of one direction of a saved run, built and loaded alone (the method's
    other networks are built on the meta device only, to learn which network that is).

    Returns ``(generator in eval mode on device, its input channels, the run's recipe)``.
    """
    from ganzoo.build import build_method
    from ganzoo.update import Updater

    ckpt = find_checkpoint(path, which)
    tree = checkpoint.load(ckpt)
    recipe = load_recipe(tree["recipe"], registry, source=f"{ckpt} (stored recipe)")
    meta = torch.device("meta")
    shape = build_method(recipe, registry, meta, Updater("fp32", meta, guard=False), place_networks=False)
    try:
        wanted = shape.generator(direction)
    except ValueError as exc:
        raise GanzooError(f"--direction {direction}: {exc}") from None
    name = next(n for n, net in shape.networks.items() if net is wanted)
    if name not in shape.ctx.build_args:
        raise GanzooError(f"{ckpt}: method \"{recipe.method.name}\" built its {direction} network {name!r} outside "
                          "its context, so it cannot be loaded alone.")
    section, kwargs = shape.ctx.build_args[name]
    net = shape.ctx.__class__(recipe, registry, torch.device("cpu")).build(section, **kwargs)
    ema = tree.get("ema") if weights == "ema" and isinstance(tree.get("ema"), dict) else {}
    state = ema[name]["weights"] if name in ema else tree["networks"].get(name)
    if state is None:
        raise CheckpointError(f"{ckpt}: no weights for network '{name}' (found: {', '.join(tree['networks'])}).")
    load_state_dict_checked(net, state, f"{ckpt} network '{name}'")
    channels = int(kwargs.get("in_channels", recipe.data.channels_a if direction == "AtoB" else recipe.data.channels_b))
    return net.to(device).eval(), channels, recipe


def size_multiple(net: nn.Module) -> int:
    """The factor input sizes must be a multiple of (``size_multiple`` attribute, default 4)."""
    return int(getattr(net, "size_multiple", 4))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right to multiples of ``multiple``; return the old size."""
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / multiple) * multiple - h, math.ceil(w / multiple) * multiple - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


# On a CPU a forward over more pixels than this runs slower per image: the activations leave the
# caches (benchmarks/test_bench_translate.py, 256 px: one image per forward is 1.4x (fp32) and
# 1.08x (bf16) faster than eight). GPUs want the whole batch.
CPU_PIXELS_PER_FORWARD = 1 << 16


def images_per_forward(height: int, width: int, batch: int, device: torch.device | str) -> int:
    """How many of ``batch`` images of this size :func:`forward_in_parts` runs at once."""
    if torch.device(device).type != "cpu":
        return batch
    return min(batch, max(1, CPU_PIXELS_PER_FORWARD // (height * width)))


def forward_in_parts(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``; on a CPU, for a network in eval mode (samples independent), in parts of at
    most :data:`CPU_PIXELS_PER_FORWARD` pixels (at least one image each)."""
    step = len(x) if net.training else images_per_forward(x.shape[-2], x.shape[-1], len(x), x.device)
    if step >= len(x):
        return net(x)
    return torch.cat([net(part) for part in x.split(step)])


@torch.no_grad()
def translate_batch(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Translate a batch in [-1, 1] of any size, padding to what the network needs."""
    padded, (h, w) = pad_to_multiple(x, size_multiple(net))
    return forward_in_parts(net, padded)[..., :h, :w]


def compile_generator(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` compiled for inference (torch.compile, inductor with frozen weights); compiled at
    its first call for each input size. Raises GanzooError when no C++ compiler is on a CPU host."""
    from ganzoo.build import missing_cxx

    missing = missing_cxx(device)
    if missing:
        raise GanzooError(f"--compile: torch.compile needs a C++ compiler on CPU and none was found ({missing}). "
                          "Install one (e.g. apt install g++) or translate without --compile.")
    return torch.compile(net.eval(), options={"freezing": True})

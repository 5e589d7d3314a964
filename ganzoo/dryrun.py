"""``ganzoo run RECIPE --dry-run``: what a training step of the recipe costs, without data or training.

The method is built on the ``meta`` device (shapes, no storage), then two training steps
run on random meta inputs of the recipe's batch and crop size: the first creates the
optimiser state, the second is counted. FLOPs come from ``torch.utils.flop_counter`` at
the real size (no scaling); the memory estimate is the peak of the bytes of live tensors
(parameters, optimiser state, gradients, activations saved for backward, temporaries)
followed through weak references (:class:`ganzoo.flops.TensorMemory`). docs/benchmarks.md
compares it with measured peaks.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ganzoo.build import build_method, resolve_device
from ganzoo.config import AugmentConfig, Recipe
from ganzoo.errors import GanzooError
from ganzoo.flops import MetaScalars, count, forward_flops, method_tensors, optimizer_state_bytes
from ganzoo.registry import Registry
from ganzoo.update import Updater

_META = torch.device("meta")
_GIB = 1024**3


def input_size(augment: AugmentConfig) -> tuple[int, str]:
    """The side of the square training inputs, and where it comes from."""
    if "crop" in augment.preprocess:
        return augment.crop_size, f"crop_size {augment.crop_size}"
    if augment.preprocess == "scale_width":
        return augment.load_size, f"load_size {augment.load_size}, assuming square images"
    return augment.load_size, (
        f'preprocess "{augment.preprocess}" keeps each image\'s size; counted at load_size {augment.load_size}'
    )


def _gib(n: float) -> str:
    return f"{n / _GIB:.2f} GiB" if n >= _GIB / 10 else f"{n / 1024**2:.1f} MiB"


def _device_line(recipe: Recipe) -> str:
    try:
        device = resolve_device(recipe.run.device, recipe.source)
    except GanzooError:
        return f"{recipe.run.device} (not available on this machine)"
    return f"{recipe.run.device} -> {device}" if recipe.run.device == "auto" else str(device)


def meta_method(recipe: Recipe, registry: Registry):
    """The recipe's method built on the meta device (no memory), eager and fp32, in train mode,
    set up with a meta batch (so networks made from the first batch exist); and that batch."""
    eager = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, compile=False))
    method = build_method(eager, registry, _META, Updater("fp32", _META, guard=False), place_networks=False)
    method.train()
    size, _ = input_size(recipe.augment)
    batch = recipe.data.batch_size
    real_a = torch.rand(batch, recipe.data.channels_a, size, size, device=_META) * 2 - 1
    real_b = torch.rand(batch, recipe.data.channels_b, size, size, device=_META) * 2 - 1
    with MetaScalars():
        method.setup(real_a, real_b)
    return method, (real_a, real_b)


def count_step(method, batch):
    """FLOPs and peak tensor bytes of one training step on the meta device (the optimiser state
    made by a first step included); raises what the method raises if it cannot run on meta."""
    with MetaScalars():
        method.train_step(*batch)  # creates the optimiser state
    return count(lambda: method.train_step(*batch), method_tensors(method))


def check_memory(recipe: Recipe, registry: Registry, device: torch.device) -> None:
    """Refuse a recipe whose training cannot fit in the device's free memory (a typo such as
    ``ngf = 6400`` or ``batch_size = 4000``), before anything is allocated or written.

    The estimate is a lower bound that costs a fraction of a second: weights, gradients and
    Adam's two moments (4 x the parameters) plus the activations of one forward pass of the
    A -> B generator at the recipe's batch and input size, all counted on the meta device.
    ``ganzoo run --dry-run`` counts a whole training step.
    """
    from ganzoo.tiling import available_memory

    available = available_memory(device)
    if available is None:
        return
    try:
        method, _ = meta_method(recipe, registry)
        params = sum(p.numel() * p.element_size() for net in method.networks.values() for p in net.parameters())
        size, _ = input_size(recipe.augment)
        x = torch.zeros(recipe.data.batch_size, recipe.data.channels_a, size, size, device=_META)
        activations = _activation_bytes(method.generator("AtoB"), x)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return  # not estimated: the run will tell
    need = 4 * params + activations
    if need > available:
        raise GanzooError(
            f"{recipe.source}: training needs at least {_gib(need)} ({_gib(4 * params)} for weights, gradients and "
            f"optimiser state, {_gib(activations)} for one generator pass at batch {recipe.data.batch_size}, {size} px) "
            f"but {device} has {_gib(available)} free. Lower [data] batch_size, [augment] crop_size or the networks' "
            "widths (e.g. [generator] ngf); `ganzoo run --dry-run` gives the whole estimate."
        )


def _activation_bytes(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of every leaf module's output in one forward pass (what backward keeps, roughly)."""
    total = 0

    def add(_module, _inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(add) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def dry_run_report(recipe: Recipe, registry: Registry) -> str:
    """Build the recipe's method on the meta device and report its size and per-step cost.

    Returns a multi-line report: parameter counts per network, generator inference FLOPs,
    FLOPs of one training step at the recipe's batch and input size, and an estimate of the
    peak memory of training. Needs no dataset and allocates no device memory.
    """
    size, size_note = input_size(recipe.augment)
    batch, ca, cb = recipe.data.batch_size, recipe.data.channels_a, recipe.data.channels_b
    try:  # compiling would trace on meta tensors: eager counts
        method, meta_batch = meta_method(recipe, registry)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        raise GanzooError(f"{recipe.source}: method \"{recipe.method.name}\" cannot be built on the meta device "
                          f"for a dry run ({type(exc).__name__}: {exc}).") from None

    root = Path(recipe.data.root)
    lines = [
        f"dry run of {recipe.source}: nothing is trained",
        f"method {recipe.method.name}: " + ", ".join(f"{s} {c.name}" for s, c in recipe.sections.items()),
        f"device {_device_line(recipe)}, precision {recipe.run.precision}"
        + (", channels_last" if recipe.run.channels_last else "") + (", compile" if recipe.run.compile else ""),
        f"data {root} ({'present' if root.is_dir() else 'not present; a dry run does not need it'})",
        f"step input: batch {batch}, A {ca}x{size}x{size}, B {cb}x{size}x{size} ({size_note})",
        "",
        f"{'network':<10}{'parameters':>14}{'trainable':>14}",
    ]
    total = 0
    for name, net in method.networks.items():
        n = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        total += n
        lines.append(f"{name:<10}{n:>14,}{trainable:>14,}")
    lines.append(f"{'total':<10}{total:>14,}")
    lines.append("")

    for direction, c in (("AtoB", ca), ("BtoA", cb)):
        try:
            net = method.generator(direction)
        except ValueError:
            continue
        flops = forward_flops(net, torch.zeros(1, c, size, size, device=_META))
        lines.append(f"inference {direction}: {flops / 1e9:,.1f} GFLOP per {size}x{size} image")

    try:
        step = count_step(method, meta_batch)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        lines.append(
            f"training step: not counted, the method's train_step does not run on the meta device "
            f"({type(exc).__name__}: {exc})"
        )
        return "\n".join(lines)
    params = sum(p.untyped_storage().nbytes() for net in method.networks.values() for p in net.parameters())
    opt_state = optimizer_state_bytes(method)
    lines += [
        f"training step: {step.flops / 1e9:,.1f} GFLOP (convolutions and matrix products, forward and "
        f"backward, counted at {size}x{size}, batch {batch})",
        f"peak memory estimate: {_gib(step.peak_bytes)} of tensors, in fp32",
        f"  parameters                                       {_gib(params)}",
        f"  optimiser state                                  {_gib(opt_state)}",
        f"  gradients, saved activations, temporaries (peak) {_gib(step.peak_bytes - params - opt_state)}",
        "  not included: the runtime (about 0.4 GiB of RSS for Python and torch on CPU, the CUDA",
        "  context on GPU), allocator caching, library workspaces and data-loader workers",
    ]
    if recipe.run.precision != "fp32":
        lines.append(f"  {recipe.run.precision} keeps most saved activations in 16 bits: expect less than this")
    return "\n".join(lines)

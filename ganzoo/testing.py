"""The testing kit for plugins: build a method from a recipe dict, run a step, check components.

A plugin's own tests need nothing else from ganzoo (besides the public API), and the
registry-wide tests run :func:`check_component` on every registered component and
:func:`check_method` on every method, so a new plugin is tested the moment it registers.

Example:
    >>> from ganzoo import testing
    >>> registry = testing.registry(my_plugin)
    >>> method = testing.build_method({"method": {"name": "mymethod"}, ...}, registry)
    >>> metrics = testing.run_step(method, *testing.random_batch(method))
    >>> testing.check_component(registry, "generator", "mygen_256", ngf=8)
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Mapping

import torch
from torch import nn

from ganzoo import rng
from ganzoo._typed import build_dataclass
from ganzoo.build import build_method as _build_method
from ganzoo.config import Recipe, load_recipe
from ganzoo.method import FeatureGenerator, Method
from ganzoo.plugins import check_hooks, get_plugin_manager
from ganzoo.registry import Registry

CPU = torch.device("cpu")
# Config fields set small by check_component when the test gives no config (fast at 32 px).
TINY = {"ngf": 4, "ndf": 4, "decoder_width": 8, "netF_nc": 8, "nc": 8}


def registry(*plugins: Any, entrypoints: bool = False, **named: Any) -> Registry:
    """A registry of the built-ins plus ``plugins`` (modules or objects with hookimpls; keyword
    arguments register under the given plugin name), without the installed plugins unless
    ``entrypoints``. Misspelt hook names fail here, as at startup (a PluginError)."""
    pm = get_plugin_manager(load_entrypoints=entrypoints)
    entries = [(getattr(p, "__name__", type(p).__name__), p) for p in plugins] + list(named.items())
    for name, plugin in entries:
        if pm.get_name(plugin) is None:
            pm.register(plugin, name=name)
    check_hooks(pm)
    return Registry(pm)


def recipe(raw: Mapping[str, Any], registry: Registry, *, size: int = 32, batch: int = 2) -> Recipe:
    """A validated recipe from a dict; [data] root, batch and the crop default to a tiny
    in-memory setting (nothing is read from disk until a dataset is built)."""
    raw = copy.deepcopy(dict(raw))
    raw.setdefault("run", {}).setdefault("device", "cpu")
    raw.setdefault("data", {}).setdefault("root", "unused")
    raw["data"].setdefault("batch_size", batch)
    raw.setdefault("augment", {}).setdefault("load_size", size)
    raw["augment"].setdefault("crop_size", size)
    return load_recipe(raw, registry, source="<test recipe>")


def build_method(raw: Mapping[str, Any] | Recipe, registry: Registry, *, device: torch.device = CPU,
                 seed: int | None = None) -> Method:
    """Build a method from a recipe dict (or Recipe) on ``device``, seeding every RNG first."""
    cfg = raw if isinstance(raw, Recipe) else recipe(raw, registry)
    rng.seed_everything(cfg.run.seed if seed is None else seed)
    return _build_method(cfg, registry, device)


def random_batch(method: Method, *, size: int = 32, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (real_a, real_b) batch in [-1, 1] with the recipe's channels."""
    g = torch.Generator().manual_seed(seed)
    ctx = method.ctx
    a = torch.rand(batch, ctx.channels_a, size, size, generator=g) * 2 - 1
    b = torch.rand(batch, ctx.channels_b, size, size, generator=g) * 2 - 1
    return a.to(ctx.device), b.to(ctx.device)


def run_step(method: Method, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
    """One training step as the loop runs it: ``setup`` on the first call, then ``train_step``."""
    if not getattr(method, "_testing_set_up", False):
        method.setup(real_a, real_b)
        method._testing_set_up = True  # type: ignore[attr-defined]
    metrics = method.train_step(real_a, real_b)
    bad = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isfinite(v))}
    if bad:
        raise AssertionError(f"train_step returned non-finite or non-float metrics: {bad}")
    return metrics


def check_method(registry: Registry, name: str, sections: Mapping[str, Mapping[str, Any]] | None = None,
                 *, size: int = 32, steps: int = 2) -> dict[str, float]:
    """Train method ``name`` for ``steps`` steps on random tensors and check that it learns
    something, saves and restores exactly, and translates.

    ``sections`` defaults to the MethodSpec's ``example``. Returns the last step's metrics.
    """
    spec = registry.method(name)
    raw = {"method": {"name": name}, **copy.deepcopy(dict(sections or spec.example))}
    method = build_method(raw, registry, seed=0)
    batch = random_batch(method, size=size)
    before = {k: copy.deepcopy(v.state_dict()) for k, v in method.networks.items()}
    for _ in range(steps):
        metrics = run_step(method, *batch)
    changed = [k for k, net in method.networks.items()
               if k in before and any(not torch.equal(v, before[k][n]) for n, v in net.state_dict().items())]
    if not changed:
        raise AssertionError(f"method {name}: {steps} steps changed no network's weights")
    state, extra = copy.deepcopy(method.ctx.state()), copy.deepcopy(method.extra_state())
    twin = build_method(raw, registry, seed=1)
    twin.ctx.restore(state["networks"], state["optimizers"], state["schedulers"])
    twin.load_extra_state(extra)
    twin.setup(*batch)  # networks built from the first batch take their saved state now
    twin._testing_set_up = True  # type: ignore[attr-defined]
    if twin.ctx.unclaimed():
        raise AssertionError(f"method {name}: setup did not recreate {', '.join(twin.ctx.unclaimed())}")
    for net_name, net in method.networks.items():
        _same_state(net, twin.networks[net_name], f"method {name}: network {net_name} after a restore")
    results = []
    for m in (method, twin):  # the next step continues identically from the restored state
        rng.seed_everything(7)
        results.append(run_step(m, *batch))
    if results[0] != results[1]:
        raise AssertionError(f"method {name}: the step after a restore differs: {results[0]} vs {results[1]}")
    for direction in ("AtoB", "BtoA"):
        try:
            generator = method.generator(direction)
        except ValueError:
            continue
        x = batch[0] if direction == "AtoB" else batch[1]
        with torch.no_grad():
            out = generator.eval()(x)
        if out.shape[-2:] != x.shape[-2:]:
            raise AssertionError(f"method {name}: generator({direction}) maps {tuple(x.shape)} to {tuple(out.shape)}")
    return metrics


def tiny_config(spec, **config: Any) -> Any:
    """``spec.config_cls`` from ``config``; with no config, width fields (:data:`TINY`) set small."""
    if not config:
        names = {f.name for f in dataclasses.fields(spec.config_cls)}
        config = {k: v for k, v in TINY.items() if k in names}
    return build_dataclass(spec.config_cls, config)


def check_component(registry: Registry, kind: str, name: str, *, build_args: Mapping[str, Any] | None = None,
                    **config: Any) -> Any:
    """Check one registered component; returns what it built.

    Every kind: it builds from its config (``config``, or :func:`tiny_config`), and building
    twice under one seed gives identical state. Modules: their state_dict loads strictly into
    a fresh build. Generators: the output has the input's shape, gradients reach every
    parameter that takes part, and ``encode`` (if present) returns the layers asked for.
    Discriminators: they map images to logits with a backward pass. Losses: a finite scalar
    for real and fake targets. Pairings need files and are checked by their own tests.
    """
    spec = registry.get(kind, name)
    args = dict(registry.kinds[kind].example_args if build_args is None else build_args)
    if kind == "generator":
        args = {"in_channels": 3, "out_channels": 3, **args}
    elif kind == "discriminator":
        args = {"in_channels": 3, **args}
    cfg = tiny_config(spec, **config)

    def build() -> Any:
        torch.manual_seed(0)
        return spec.build(cfg, **args)

    built, again = build(), build()
    if isinstance(built, nn.Module):
        _same_state(built, again, f"{kind} {name}: two builds under one seed")
        fresh = spec.build(cfg, **args)
        fresh.load_state_dict(built.state_dict(), strict=True)
        _same_state(built, fresh, f"{kind} {name}: state_dict round trip")
    if kind == "generator":
        _check_generator(name, built)
    elif kind == "discriminator":
        out = built(torch.rand(2, args["in_channels"], 64, 64) * 2 - 1)
        out.float().mean().backward()
        _check_grads(f"discriminator {name}", built)
    elif kind == "loss":
        pred = torch.randn(2, 1, 4, 4)
        for real in (True, False):
            for for_d in (True, False):
                value = built(pred, real, for_discriminator=for_d)
                if value.dim() != 0 or not torch.isfinite(value):
                    raise AssertionError(f"loss {name}: expected a finite scalar, got {value}")
    return built


def _check_generator(name: str, net: nn.Module) -> None:
    multiple = int(getattr(net, "size_multiple", 4))
    size = max(32, multiple)
    x = torch.rand(2, 3, size, size) * 2 - 1
    out = net(x)
    if tuple(out.shape) != (2, 3, size, size):
        raise AssertionError(f"generator {name}: maps {tuple(x.shape)} to {tuple(out.shape)}")
    out.mean().backward()
    _check_grads(f"generator {name}", net)
    if isinstance(net, FeatureGenerator):
        feats = net.encode(x, [0, 1])
        if len(feats) != 2 or not all(isinstance(f, torch.Tensor) and f.shape[0] == 2 for f in feats):
            raise AssertionError(f"generator {name}: encode(x, [0, 1]) must return two (B, C, H, W) tensors")


def _check_grads(what: str, net: nn.Module) -> None:
    params = [p for p in net.parameters() if p.requires_grad]
    if params and all(p.grad is None or not torch.isfinite(p.grad).all() for p in params):
        raise AssertionError(f"{what}: no finite gradient reaches its parameters")


def _same_state(a: nn.Module, b: nn.Module, what: str) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(not torch.equal(sa[k], sb[k]) for k in sa):
        raise AssertionError(f"{what}: the states differ")

"""Turn a validated Recipe into objects: the device, the method (through its context), datasets.

Components are built through :class:`ganzoo.context.MethodContext`, so a component that rejects
its arguments is reported against its recipe section.
"""
from __future__ import annotations

import os
import shutil

import torch

from ganzoo.config import Recipe
from ganzoo.context import MethodContext
from ganzoo.distributed import World
from ganzoo.errors import GanzooError, RecipeError
from ganzoo.method import Method
from ganzoo.registry import Registry
from ganzoo.update import Updater


def resolve_device(name: str, source: str = "<recipe>") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; explicit names are checked for availability."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f'{source} [run] device="{name}": not a device. Use auto, cpu, cuda, cuda:N or mps.') from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f'{source} [run] device="{name}": CUDA is not available here. Use device = "auto" or "cpu".')
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RecipeError(f'{source} [run] device="{name}": MPS is not available here. Use device = "auto" or "cpu".')
    return device


_CXX = ("g++", "c++", "clang++")


def check_compile(recipe: Recipe, device: torch.device) -> None:
    """Raise RecipeError if ``[run] compile = true`` cannot work here, before anything is written.

    torch.compile's CPU backend compiles C++ at the first step; without a compiler it would
    fail only then. (On CUDA it generates Triton kernels and needs no C++ compiler.)
    """
    missing = missing_cxx(device) if recipe.run.compile else None
    if missing:
        raise RecipeError(
            f"{recipe.source} [run] compile = true: torch.compile needs a C++ compiler on CPU and none "
            f"was found ({missing}). Install one (e.g. apt install g++) or train without "
            "compiling: --set run.compile=false."
        )


def missing_cxx(device: torch.device) -> str | None:
    """The C++ compilers looked for (``$CXX``, else g++, c++, clang++) when torch.compile on
    ``device`` needs one and none is on PATH; None when compiling can work."""
    if device.type != "cpu":
        return None
    wanted = [os.environ["CXX"]] if os.environ.get("CXX") else list(_CXX)
    return None if any(shutil.which(c) for c in wanted) else ", ".join(wanted)


def compile_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from torch.compile's tracing or code generation."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def root_cause(exc: BaseException) -> str:
    """``Type: first line`` of the innermost exception of a chain (dynamo wraps the real one)."""
    while (inner := getattr(exc, "inner_exception", None) or exc.__cause__) is not None and inner is not exc:
        exc = inner
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def build_method(recipe: Recipe, registry: Registry, device: torch.device, updater: Updater | None = None,
                 world: World = World(), *, place_networks: bool = True) -> Method:
    """Build the recipe's method through a :class:`~ganzoo.context.MethodContext` on ``device``.

    ``place_networks=False`` skips channels_last and compile (for measuring on the meta device).
    """
    ctx = MethodContext(recipe, registry, device, updater, world, place_networks=place_networks)
    spec = registry.method(recipe.method.name)
    try:
        method = spec.build(recipe.method.config, ctx=ctx)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, GanzooError):
            raise
        raise RecipeError(f'{recipe.source} [method] name="{recipe.method.name}": {exc}') from exc
    if not isinstance(method, Method):
        raise RecipeError(
            f'{recipe.source} [method] name="{recipe.method.name}": the plugin built a '
            f"{type(method).__name__}, not a ganzoo.Method ({registry.owner('method', recipe.method.name)})."
        )
    method.ctx = ctx
    return method


def build_dataset(recipe: Recipe, registry: Registry, split: str):
    """The recipe's paired dataset for ``split``; method and pairing must agree on pairing.
    With ``[eval] holdout`` the train split leaves out the held-out images."""
    spec = registry.get("pairing", recipe.pairing.name)
    dataset = spec.build(recipe.pairing.config, split=split, data=recipe.data, augment=recipe.augment,
                         seed=recipe.run.seed)
    if split == "train" and recipe.eval.holdout:
        dataset = hold_out(dataset, recipe)[0]
    if registry.method(recipe.method.name).paired and not dataset.aligned:
        raise RecipeError(
            f'{recipe.source} [data] pairing="{recipe.pairing.name}": method "{recipe.method.name}" '
            "needs aligned pairs but this pairing yields unpaired images. Use pairing = \"aligned\" "
            "(A|B side by side) or \"named\" (A/x.png <-> B/x.png)."
        )
    return dataset


def hold_out(dataset, recipe: Recipe):
    """``dataset.hold_out`` with the recipe's ``[eval] holdout`` and seed: ``(rest, held out)``,
    the same split for the training loader and the validator."""
    n = recipe.eval.holdout
    where = f"{recipe.source} [eval] holdout = {n}"
    try:
        return dataset.hold_out(n, recipe.run.seed)
    except NotImplementedError:
        raise RecipeError(f'{where}: pairing "{recipe.pairing.name}" cannot hold images out of its train split. '
                          "Put validation images in a val split (e.g. valA/ and valB/) and set holdout = 0.") from None
    except ValueError as exc:
        raise RecipeError(f"{where}: {exc}. Hold out fewer images or add training images.") from None

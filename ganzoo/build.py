"""Turn a validated Recipe into objects: device, method (networks + optimisers), datasets.

This is the only place where registered ``build`` functions are called, so a component
that rejects its arguments is reported against its recipe section.
"""
from __future__ import annotations

import os
import shutil
import warnings

import torch
from torch import nn

from ganzoo.config import Recipe
from ganzoo.errors import GanzooError, RecipeError
from ganzoo.method import Method, MethodParts
from ganzoo.precision import Precision
from ganzoo.registry import Registry


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


def _call(section: str, recipe: Recipe, fn, *args, **kwargs):
    """Call a plugin's build function; a ValueError it raises names the recipe section."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, GanzooError):
            raise
        name = getattr(recipe, section).name
        raise RecipeError(f'{recipe.source} [{section}] name="{name}": {exc}') from exc


_CXX = ("g++", "c++", "clang++")


def check_compile(recipe: Recipe, device: torch.device) -> None:
    """Raise RecipeError if ``[run] compile = true`` cannot work here, before anything is written.

    torch.compile's CPU backend compiles C++ at the first step; without a compiler it would
    fail only then. (On CUDA it generates Triton kernels and needs no C++ compiler.)
    """
    if not recipe.run.compile or device.type != "cpu":
        return
    wanted = [os.environ["CXX"]] if os.environ.get("CXX") else list(_CXX)
    if not any(shutil.which(c) for c in wanted):
        raise RecipeError(
            f"{recipe.source} [run] compile = true: torch.compile needs a C++ compiler on CPU and none "
            f"was found ({', '.join(wanted)}). Install one (e.g. apt install g++) or train without "
            "compiling: --set run.compile=false."
        )


def compile_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from torch.compile's tracing or code generation."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def place_network(net: nn.Module, device: torch.device, *, channels_last: bool = False,
                  compile: bool = False) -> nn.Module:
    """Move a freshly built network to ``device``, optionally NHWC and compiled.

    ``channels_last`` stores 4-d weights NHWC; convolutions then return NHWC activations
    whatever the layout of the input, so inputs need no conversion (the first convolution
    converts). ``compile`` compiles the module in place (``nn.Module.compile``): calls go
    through ``torch.compile`` while the module object, its parameters and its state_dict
    keys stay those of the eager module (no ``_orig_mod.`` prefix), so checkpoints and
    reference exports are unchanged. Whether either helps is measured in docs/benchmarks.md.
    """
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile:
        # dynamo reads every tensor's .grad while tracing, which warns for non-leaf tensors
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf",
                                category=UserWarning)
        net.compile()
    return net


def build_method(recipe: Recipe, registry: Registry, device: torch.device, precision: Precision | None = None) -> Method:
    """Build the recipe's method with its networks on ``device``."""
    gen = registry.get("generator", recipe.generator.name)
    disc = registry.get("discriminator", recipe.discriminator.name)
    loss = registry.get("loss", recipe.loss.name)

    def make_generator(in_channels: int, out_channels: int) -> nn.Module:
        net = _call("generator", recipe, gen.build, recipe.generator.config,
                    in_channels=in_channels, out_channels=out_channels)
        return place_network(net, device, channels_last=recipe.run.channels_last, compile=recipe.run.compile)

    def make_discriminator(in_channels: int) -> nn.Module:
        net = _call("discriminator", recipe, disc.build, recipe.discriminator.config, in_channels=in_channels)
        return place_network(net, device, channels_last=recipe.run.channels_last, compile=recipe.run.compile)

    parts = MethodParts(
        make_generator=make_generator,
        make_discriminator=make_discriminator,
        gan_loss=_call("loss", recipe, loss.build, recipe.loss.config),
        optim=recipe.optim,
        channels_a=recipe.data.channels_a,
        channels_b=recipe.data.channels_b,
        device=device,
        precision=precision or Precision(recipe.run.precision, device),
        seed=recipe.run.seed,
    )
    spec = registry.get("method", recipe.method.name)
    method = _call("method", recipe, spec.build, recipe.method.config, parts=parts)
    if not isinstance(method, Method):
        raise RecipeError(
            f'{recipe.source} [method] name="{recipe.method.name}": the plugin built a '
            f"{type(method).__name__}, not a ganzoo.Method."
        )
    return method


def build_dataset(recipe: Recipe, registry: Registry, split: str):
    """The recipe's paired dataset for ``split``; method and pairing must agree on pairing."""
    spec = registry.get("pairing", recipe.pairing.name)
    dataset = spec.build(recipe.pairing.config, split=split, data=recipe.data, augment=recipe.augment,
                         seed=recipe.run.seed)
    method_spec = registry.get("method", recipe.method.name)
    paired = getattr(method_spec.build, "paired", False)
    if paired and not dataset.aligned:
        raise RecipeError(
            f'{recipe.source} [data] pairing="{recipe.pairing.name}": method "{recipe.method.name}" '
            "needs aligned pairs but this pairing yields unpaired images. Use pairing = \"aligned\" "
            "(A|B side by side) or \"named\" (A/x.png <-> B/x.png)."
        )
    return dataset

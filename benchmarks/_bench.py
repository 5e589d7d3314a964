"""Helpers of the benchmark suite: recipes built through ganzoo's public path, FLOPs, memory probes."""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import os
import time
from typing import Any

import torch

from ganzoo.build import build_method
from ganzoo.config import Recipe, load_recipe
from ganzoo.flops import count
from ganzoo.update import Updater
from ganzoo.registry import Registry

_GIB = 1024**3


# ---- recipes ------------------------------------------------------------------------------
def _load_size(crop: int) -> int:
    """The reference loads 286 for 256 crops; other sizes keep the same ratio."""
    return 286 if crop == 256 else round(crop * 286 / 256)


def cyclegan_raw(size: int, batch: int) -> dict[str, dict[str, Any]]:
    """The reference's CycleGAN (recipes/cyclegan_horse2zebra.toml) at ``size`` px."""
    return {
        "run": {"seed": 0},
        "data": {"root": "unused", "pairing": "unaligned", "batch_size": batch},
        "augment": {"preprocess": "resize_and_crop", "load_size": _load_size(size), "crop_size": size},
        "method": {"name": "cyclegan", "lambda_identity": 0.5, "pool_size": 50},
        "generator": {"name": "resnet_9blocks", "ngf": 64, "norm": "instance"},
        "discriminator": {"name": "patchgan_70", "ndf": 64, "norm": "instance"},
        "loss": {"name": "lsgan"},
    }


def pix2pix_raw(size: int, batch: int) -> dict[str, dict[str, Any]]:
    """The reference's pix2pix (U-Net, batch norm, dropout, vanilla GAN, lambda_l1 100)."""
    return {
        "run": {"seed": 0},
        "data": {"root": "unused", "pairing": "aligned", "batch_size": batch},
        "augment": {"preprocess": "resize_and_crop", "load_size": _load_size(size), "crop_size": size},
        "method": {"name": "pix2pix", "lambda_l1": 100.0},
        "generator": {"name": f"unet_{size}", "ngf": 64, "norm": "batch", "dropout": True},
        "discriminator": {"name": "patchgan_70", "ndf": 64, "norm": "batch"},
        "loss": {"name": "vanilla"},
    }


def cut_raw(method: str, size: int, batch: int) -> dict[str, dict[str, Any]]:
    """The paper's CUT or FastCUT (recipes/cut_horse2zebra.toml, fastcut_horse2zebra.toml) at
    ``size`` px: anti-aliased ResNet-9 and 70x70 PatchGAN, LSGAN, F an MLP sampler of width 256
    on 256 patches of layers 0,4,8,12,16; CUT with identity NCE and lambda_nce 1, FastCUT
    without, lambda_nce 10 and flip equivariance. Needs the cut plugin in the registry."""
    fast = method == "fastcut"
    return {
        "run": {"seed": 0},
        "data": {"root": "unused", "pairing": "unaligned", "batch_size": batch},
        "augment": {"preprocess": "resize_and_crop", "load_size": _load_size(size), "crop_size": size},
        "method": {"name": method, "lambda_gan": 1.0, "lambda_nce": 10.0 if fast else 1.0, "nce_idt": not fast,
                   "nce_layers": [0, 4, 8, 12, 16], "flip_equivariance": fast},
        "generator": {"name": "cut_resnet_9blocks", "ngf": 64, "norm": "instance"},
        "discriminator": {"name": "cut_patchgan_70", "ndf": 64, "norm": "instance"},
        "sampler": {"name": "mlp", "nc": 256, "num_patches": 256},
        "loss": {"name": "lsgan"},
    }


def make_recipe(registry: Registry, method: str, size: int, batch: int, *, precision: str = "fp32",
                channels_last: bool = False, compile: bool = False) -> Recipe:
    if method in ("cut", "fastcut"):
        raw = cut_raw(method, size, batch)
    else:
        raw = cyclegan_raw(size, batch) if method == "cyclegan" else pix2pix_raw(size, batch)
    raw["run"].update(precision=precision, channels_last=channels_last, compile=compile)
    return load_recipe(raw, registry, source=f"<benchmark {method} {size}px b{batch}>")


def build(recipe: Recipe, registry: Registry, device: torch.device):
    """Seeded build of the recipe's method, as ``ganzoo run`` does it."""
    torch.manual_seed(recipe.run.seed)
    method = build_method(recipe, registry, device, Updater(recipe.run.precision, device))
    method.train()
    return method


def step_inputs(recipe: Recipe, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch in [-1, 1] of the recipe's batch and crop size (what augmentation yields)."""
    g = torch.Generator().manual_seed(1)
    b, s = recipe.data.batch_size, recipe.augment.crop_size
    real_a = torch.rand(b, recipe.data.channels_a, s, s, generator=g) * 2 - 1
    real_b = torch.rand(b, recipe.data.channels_b, s, s, generator=g) * 2 - 1
    return real_a.to(device), real_b.to(device)


_FLOPS: dict[tuple, int] = {}


def step_flops(recipe: Recipe, registry: Registry) -> int:
    """FLOPs of one training step, counted by FlopCounterMode on the meta device (same shapes).

    Precision, memory format and compilation do not change the count, so it is cached per
    method, networks, batch and size.
    """
    key = (recipe.method, recipe.generator, recipe.discriminator, getattr(recipe, "sampler", None),
           recipe.data.batch_size, recipe.augment.crop_size)
    if key not in _FLOPS:
        _FLOPS[key] = _count_step(recipe, registry)
    return _FLOPS[key]


def _count_step(recipe: Recipe, registry: Registry) -> int:
    meta = torch.device("meta")
    plain = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, compile=False, precision="fp32"))
    method = build_method(plain, registry, meta, Updater("fp32", meta, guard=False), place_networks=False)
    method.train()
    a, b = step_inputs(recipe, meta)
    method.setup(a, b)  # networks made from the first batch (CUT's F); a no-op for the others
    return count(lambda: method.train_step(a, b), memory=False).flops


# ---- memory ---------------------------------------------------------------------------------
def _status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if os.name == "posix" else None


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or on CPU the peak RSS above the start.

    On CPU, freed heap memory is first returned to the OS (``malloc_trim``) and the kernel's
    high-water mark is reset (``/proc/self/clear_refs``), so the delta is what the block
    itself touched. Where that is not possible (not Linux) the numbers are None.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.peak = None

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        try:
            if _LIBC is not None:
                _LIBC.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self.start = _status("VmRSS")
        except (OSError, KeyError, AttributeError):
            self.start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.start is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = _status("VmHWM")

    def info(self) -> dict[str, Any]:
        if self.start is None or self.peak is None:
            return {"peak_memory_kind": "unavailable"}
        kind = "cuda max_memory_allocated" if self.device.type == "cuda" else "peak RSS (VmHWM)"
        return {
            "peak_memory_kind": kind,
            "peak_memory_gib": round(self.peak / _GIB, 3),
            "peak_memory_delta_gib": round((self.peak - self.start) / _GIB, 3),
        }


def _cpu_busy_s() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its children)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    with open("/proc/self/stat") as f:
        mine = f.read().rsplit(")", 1)[1].split()
    own = sum(int(v) for v in mine[11:15])  # utime, stime, cutime, cstime
    return (sum(fields[:8]) - idle) / tick, own / tick


class OtherLoad:
    """How many cores other processes kept busy while a block ran (Linux; None elsewhere).

    The machine is shared: a second process on a 2-core host makes every OpenMP barrier of
    the step wait, so a case measured with ``other_load_cores`` well above 0 is not clean.
    """

    def __enter__(self) -> "OtherLoad":
        try:
            self._start = (time.perf_counter(), *_cpu_busy_s())
        except (OSError, ValueError, IndexError):
            self._start = None
        self.cores = None
        return self

    def __exit__(self, *exc) -> None:
        if self._start is None:
            return
        t0, busy0, own0 = self._start
        busy1, own1 = _cpu_busy_s()
        elapsed = time.perf_counter() - t0
        self.cores = round(max((busy1 - busy0) - (own1 - own0), 0.0) / max(elapsed, 1e-9), 2)


def run_info() -> dict[str, Any]:
    """Context that affects the numbers: threads and the machine's load when the case ran."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"torch_threads": torch.get_num_threads(), "load_avg_1min": round(load[0], 2),
            "torch": torch.__version__}


def record(benchmark, *, flops: int | None = None, items: int | None = None, memory: PeakMemory | None = None,
           load: OtherLoad | None = None, **extra: Any) -> None:
    """Fill ``benchmark.extra_info``: FLOPs per call and achieved GFLOP/s (from the median),
    items per second, peak memory and run context."""
    median = benchmark.stats.stats.median
    info: dict[str, Any] = dict(extra)
    if flops is not None:
        info["flops_per_call"] = flops
        info["gflop_per_call"] = round(flops / 1e9, 2)
        info["achieved_gflop_per_s"] = round(flops / median / 1e9, 1)
    if items is not None:
        info["items_per_s"] = round(items / median, 2)
    if memory is not None:
        info.update(memory.info())
    if load is not None:
        info["other_load_cores"] = load.cores
    info.update(run_info())
    benchmark.extra_info.update(info)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


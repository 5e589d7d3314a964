"""Peak RSS of a fresh process training a few steps: ``python _rss_probe.py METHOD SIZE BATCH PRECISION STEPS``.

METHOD ``reference`` trains the reference's CycleGAN step of ``_reference.py`` (fp32 only).

Prints one JSON line: the process's peak RSS (VmHWM, which includes the Python and torch
runtime, as a training process's figure does) and the time of each step.
"""
from __future__ import annotations

import json
import sys
import time

import torch

from _bench import build, make_recipe, step_inputs
from _reference import ReferenceCycleGAN

import ganzoo_cyclegan
import ganzoo_pix2pix
from ganzoo.plugins import get_plugin_manager
from ganzoo.registry import Registry


def _vm(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def main(method: str, size: str, batch: str, precision: str, steps: str) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(ganzoo_cyclegan, name="cyclegan")
    pm.register(ganzoo_pix2pix, name="pix2pix")
    registry = Registry(pm)
    device = torch.device("cpu")
    reference = method == "reference"
    recipe = make_recipe(registry, "cyclegan" if reference else method, int(size), int(batch), precision=precision)
    baseline = _vm("VmRSS")
    if reference:
        torch.manual_seed(0)
        m = ReferenceCycleGAN(device)
    else:
        m = build(recipe, registry, device)
    real_a, real_b = step_inputs(recipe, device)
    times = []
    for _ in range(int(steps)):
        t0 = time.perf_counter()
        m.train_step(real_a, real_b)
        times.append(round(time.perf_counter() - t0, 3))
    print(json.dumps({
        "peak_rss_gib": round(_vm("VmHWM") / 1024**3, 3),
        "runtime_rss_before_build_gib": round(baseline / 1024**3, 3),
        "step_seconds": times,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])

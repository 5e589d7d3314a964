"""Tiled translation (ganzoo.tiling): a 4096 x 4096 image in a fresh process, and the seam check.

``test_tiled_4096`` runs this file as a script in a new Python process (``python
test_bench_tiling.py SIZE TILE OVERLAP``) that builds resnet_9blocks at ngf 64, makes a
synthetic SIZE x SIZE photo, resets the kernel's high-water mark, translates it in tiles to
uint8 and prints one JSON line: the process's peak RSS (VmHWM, runtime and image included),
the RSS before translating, and the translation's own time. The benchmark's time is that of the
whole child process (about 3 s of start-up and imports on top). The fresh process keeps the
figure free of this pytest process's earlier allocations.

``test_seam_check`` translates a 1024 x 1024 image whole and in 512 px tiles with overlap 64
and records how far apart the two are 16 px and more from the borders, with one set of
instance-norm statistics for all tiles (the default) and with each tile's own.

Measured on an AMD EPYC host, 2 threads, torch 2.14.1, with 1.2-1.4 cores of other load:
4096 px in 81 tiles of 512 (overlap 64) took 689 s, peak RSS 1.18 GiB (0.76 GiB before
translating: runtime, network and the 192 MiB float image); the whole image would need an
estimated 16.5 GiB. Seam check (random-init weights, output std 0.63): shared statistics max
1.18, mean 0.058, p99 0.29; each tile's own statistics max 1.95, mean 0.27, p99 1.07.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _images import photo
from ganzoo._typed import build_dataclass
from ganzoo.tiling import MEMORY_FACTOR, estimate_memory, translate_tiled

_GIB = 1024**3


def _generator(registry, ngf: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = registry.get("generator", "resnet_9blocks")
    return spec.build(build_dataclass(spec.config_cls, {"ngf": ngf}), in_channels=3, out_channels=3).eval()


# ---- the 4096 x 4096 case, in a fresh process ----------------------------------------------------
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _probe(size: int, tile: int, overlap: int) -> None:
    import ganzoo_cyclegan
    from ganzoo.plugins import get_plugin_manager
    from ganzoo.registry import Registry

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(ganzoo_cyclegan, name="cyclegan")
    net = _generator(Registry(pm))
    image = photo(size)
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts from here: building the photo is not counted
    before = _status("VmRSS")
    t0 = time.perf_counter()
    out = translate_tiled(net, image, tile=tile, overlap=overlap, out_dtype=torch.uint8)
    seconds = time.perf_counter() - t0
    assert out.shape == (1, 3, size, size) and out.dtype == torch.uint8
    print(json.dumps({
        "peak_rss_gib": round(_status("VmHWM") / _GIB, 3),
        "rss_before_translate_gib": round(before / _GIB, 3),
        "translate_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }))


@pytest.mark.parametrize("size,tile,overlap", [(4096, 512, 64)], ids=["resnet_9blocks-ngf64-4096px-tile512-ov64"])
def test_tiled_4096(benchmark, registry, device, size, tile, overlap):
    if device.type != "cpu":
        pytest.skip("the fresh-process RSS figure is a CPU figure")
    from _bench import OtherLoad, record

    benchmark.group = f"tiled translation {size}px"
    result = {}

    def run():
        out = subprocess.run([sys.executable, str(Path(__file__)), str(size), str(tile), str(overlap)],
                             check=True, capture_output=True, text=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    with OtherLoad() as load:
        benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    net = _generator(registry)
    record(benchmark, load=load, items=1, fresh_process=result, size=size, tile=tile, overlap=overlap,
           tile_estimate_gib=round(estimate_memory(net, 3, tile, tile) * MEMORY_FACTOR / _GIB, 3),
           whole_image_estimate_gib=round(estimate_memory(net, 3, size, size) * MEMORY_FACTOR / _GIB, 2))


# ---- seam check ---------------------------------------------------------------------------------
def test_seam_check(benchmark, registry, device):
    from _bench import OtherLoad, record

    net = _generator(registry).to(device)
    image = photo(1024, seed=1)
    benchmark.group = "tiled translation seam check 1024px"
    with torch.inference_mode():
        whole = net(image.to(device)).float().cpu()
    with OtherLoad() as load:
        tiled = benchmark.pedantic(lambda: translate_tiled(net, image, tile=512, overlap=64), rounds=1, iterations=1)
    own = translate_tiled(net, image, tile=512, overlap=64, norm_stats="tile")
    figures = {}
    for name, out in (("shared_stats", tiled), ("own_stats", own)):
        d = (out - whole).abs()[..., 16:-16, 16:-16]
        figures[name] = {"max": round(d.max().item(), 4), "mean": round(d.mean().item(), 5),
                         "p99": round(d.flatten()[::7].quantile(0.99).item(), 4)}
    record(benchmark, load=load, items=1, difference_to_whole=figures, whole_output_std=round(whole.std().item(), 3),
           size=1024, tile=512, overlap=64)
    assert tiled.shape == whole.shape


if __name__ == "__main__":
    _probe(*(int(a) for a in sys.argv[1:4]))

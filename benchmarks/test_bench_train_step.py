"""Training-step time of CycleGAN (resnet_9blocks + patchgan_70) and pix2pix (U-Net + patchgan_70).

Each case builds the method through ganzoo's public path (``load_recipe`` on a dict, then
``build_method``), seeds it, and times ``method.train_step`` on a fixed batch: one warm-up
step (it also creates the optimiser state), then a few timed rounds (fewer at 256 px, where
a CPU step takes seconds). ``extra_info`` holds the FLOPs of one step (FlopCounterMode on
the meta device, identical shapes), the achieved GFLOP/s and the peak memory of the case.
The CycleGAN 256 px batch-1 cases also measure the peak RSS of a fresh process that trains
two steps, the figure to set beside the reference's 4.07 GiB.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _bench import OtherLoad, PeakMemory, build, make_recipe, record, step_flops, step_inputs, sync
from _reference import ReferenceCycleGAN

PROBE = Path(__file__).with_name("_rss_probe.py")


def _rounds(method: str, size: int, batch: int) -> int:
    """Timed rounds after the warm-up: few where a CPU step takes seconds (suite under ~10 min)."""
    pixels = size * size * batch
    if method == "cyclegan":
        return 5 if pixels <= 128 * 128 else 3 if pixels <= 256 * 256 else 1
    return 5 if pixels <= 256 * 256 else 3


def _case(method, size, batch, precision="fp32", channels_last=False, compile=False, marks=()):
    name = f"{method}-{size}px-b{batch}-{precision}" + ("-nhwc" if channels_last else "") + ("-compile" if compile else "")
    return pytest.param(method, size, batch, precision, channels_last, compile, id=name, marks=marks)


# dynamo inspects every tensor's .grad while tracing, which warns for non-leaf tensors
COMPILE = [pytest.mark.compile,
           pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")]

CASES = [
    # the grid: both methods, 128 and 256 px, batch 1 and 4 (pix2pix: unet_128 at 128, unet_256 at 256)
    *[_case(m, s, b) for m in ("cyclegan", "pix2pix") for s in (128, 256) for b in (1, 4)],
    # CycleGAN batch 1: precision x memory format
    *[_case("cyclegan", s, 1, p, cl) for s in (128, 256) for p, cl in
      (("bf16-mixed", False), ("fp32", True), ("bf16-mixed", True))],
    _case("pix2pix", 256, 1, "bf16-mixed"),
    # torch.compile: only with --bench-compile (each case compiles for about a minute on this CPU)
    *[_case("cyclegan", s, 1, p, compile=True, marks=COMPILE) for s in (128, 256) for p in ("fp32", "bf16-mixed")],
    _case("pix2pix", 256, 1, compile=True, marks=COMPILE),
]


def _fresh_process_peak(method: str, size: int, batch: int, precision: str) -> dict:
    """Peak RSS of a new Python process that builds the method and trains 2 steps (the
    second is the first with optimiser state, i.e. a steady-state step). ``method``
    ``reference`` is the reference's CycleGAN step (``_reference.py``)."""
    out = subprocess.run(
        [sys.executable, str(PROBE), method, str(size), str(batch), precision, "2"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method,size,batch,precision,channels_last,compile", CASES)
def test_train_step(benchmark, registry, device, method, size, batch, precision, channels_last, compile):
    if device.type == "cpu" and precision == "fp16-mixed":
        pytest.skip("fp16 autocast on CPU is emulated; benchmark it on a GPU")
    recipe = make_recipe(registry, method, size, batch, precision=precision, channels_last=channels_last,
                         compile=compile)
    benchmark.group = f"train step {method} {size}px b{batch}"
    flops = step_flops(recipe, registry)
    with PeakMemory(device) as memory:
        m = build(recipe, registry, device)
        real_a, real_b = step_inputs(recipe, device)

        def step():
            metrics = m.train_step(real_a, real_b)
            sync(device)
            return metrics

        with OtherLoad() as load:
            metrics = benchmark.pedantic(step, rounds=_rounds(method, size, batch), iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    extra = {"method": method, "size": size, "batch": batch, "precision": precision,
             "channels_last": channels_last, "compile": compile}
    if method == "cyclegan" and size == 256 and batch == 1 and not channels_last and not compile \
            and device.type == "cpu":
        extra["fresh_process"] = _fresh_process_peak(method, size, batch, precision)
    record(benchmark, load=load, flops=flops, items=batch, memory=memory, **extra)


@pytest.mark.parametrize("size", [128, 256], ids=lambda s: f"reference-cyclegan-{s}px-b1-fp32")
def test_train_step_reference(benchmark, registry, device, size):
    """The reference's CycleGAN step (``_reference.py``), beside ganzoo's in the same group:
    the ratio of the two medians is the speed-up, free of the machine's drift between runs."""
    recipe = make_recipe(registry, "cyclegan", size, 1)
    benchmark.group = f"train step cyclegan {size}px b1"
    flops = step_flops(recipe, registry)
    with PeakMemory(device) as memory:
        torch.manual_seed(0)
        m = ReferenceCycleGAN(device)
        real_a, real_b = step_inputs(recipe, device)
        ours = build(recipe, registry, torch.device("meta")).networks
        for name in ("G_A", "D_A"):  # the same networks, layer for layer
            want = {k: v.shape for k, v in ours[name].state_dict().items()}
            assert {k: v.shape for k, v in getattr(m, name).state_dict().items()} == want, name

        def step():
            metrics = m.train_step(real_a, real_b)
            sync(device)
            return metrics

        with OtherLoad() as load:
            metrics = benchmark.pedantic(step, rounds=_rounds("cyclegan", size, 1), iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    extra = {"method": "reference cyclegan", "size": size, "batch": 1, "precision": "fp32"}
    if size == 256 and device.type == "cpu":
        extra["fresh_process"] = _fresh_process_peak("reference", size, 1, "fp32")
    record(benchmark, load=load, flops=flops, items=1, memory=memory, **extra)

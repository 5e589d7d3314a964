"""Training-step time and peak memory of CUT and FastCUT beside CycleGAN, 256 px, batch 1.

The CUT paper (Park et al. 2020) presents CUT as lighter than CycleGAN: one generator and one
discriminator instead of two of each, no cycle. This module measures the three methods in one
run, each at the paper's settings (``_bench.cut_raw``: the anti-aliased ResNet-9 and 70x70
PatchGAN, F an MLP sampler of width 256 on 256 patches of layers 0,4,8,12,16; CUT with
identity NCE, FastCUT without, lambda_nce 10 and flip equivariance; CycleGAN as in
``test_bench_train_step.py``), in fp32 and bf16-mixed. The cases run precision by precision,
the three methods next to each other, each with the same warm-up step and the same number
of timed rounds, so the ratios of their medians come from one stretch of the machine.

Each case builds the method through ganzoo's public path, runs ``setup`` on the batch (CUT
creates F from the first batch's feature shapes, as the loop does) and times ``train_step``
after one warm-up step (which also creates the optimiser state). ``extra_info`` holds the
FLOPs of one step (FlopCounterMode on the meta device, after the same ``setup``), the peak
memory of the case (build, setup and steps) and the parameter count of its networks.

Run: ``pytest benchmarks/test_bench_cut_step.py --benchmark-only`` (about 3 minutes on 2 cores).
"""
from __future__ import annotations

import pytest
import torch

import ganzoo_cut
import ganzoo_cyclegan
import ganzoo_pix2pix
from ganzoo import testing
from ganzoo.registry import Registry

from _bench import OtherLoad, PeakMemory, build, make_recipe, record, step_flops, step_inputs, sync

SIZE, BATCH, ROUNDS = 256, 1, 3
METHODS = ("cyclegan", "cut", "fastcut")
PRECISIONS = ("fp32", "bf16-mixed")
CASES = [pytest.param(m, p, id=f"{m}-{SIZE}px-b{BATCH}-{p}") for p in PRECISIONS for m in METHODS]


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The bundled CycleGAN and pix2pix plus the cut plugin (overrides the suite's fixture)."""
    return testing.registry(ganzoo_cyclegan, ganzoo_pix2pix, ganzoo_cut)


@pytest.fixture(scope="module", autouse=True)
def _warm_runtime(registry):
    """One tiny step of each method before the first case, so torch's and oneDNN's one-off
    initialisation is charged to none of them (neither its time nor its memory)."""
    for method in METHODS:
        for precision in PRECISIONS:
            recipe = make_recipe(registry, method, 32, 1, precision=precision)
            m = build(recipe, registry, torch.device("cpu"))
            testing.run_step(m, *step_inputs(recipe, torch.device("cpu")))


@pytest.mark.parametrize("method,precision", CASES)
def test_train_step_beside_cyclegan(benchmark, registry, device, method, precision):
    recipe = make_recipe(registry, method, SIZE, BATCH, precision=precision)
    benchmark.group = f"train step {SIZE}px b{BATCH} {precision}: cyclegan, cut, fastcut"
    flops = step_flops(recipe, registry)
    with PeakMemory(device) as memory:
        m = build(recipe, registry, device)
        real_a, real_b = step_inputs(recipe, device)
        m.setup(real_a, real_b)  # CUT: F from the first batch's features; CycleGAN: nothing

        def step():
            metrics = m.train_step(real_a, real_b)
            sync(device)
            return metrics

        with OtherLoad() as load:
            metrics = benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in m.networks.items()}
    record(benchmark, load=load, flops=flops, items=BATCH, memory=memory, method=method, size=SIZE,
           batch=BATCH, precision=precision, parameters=params, parameters_total=sum(params.values()))

"""Generator inference throughput: ``method.generator("AtoB")`` in eval mode under inference_mode.

The generator comes from the same public build path as training (a recipe dict,
``load_recipe``, ``build_method``). ``extra_info`` gives images per second, FLOPs per batch,
achieved GFLOP/s and peak memory.
"""
from __future__ import annotations

import pytest
import torch

from _bench import OtherLoad, PeakMemory, build, make_recipe, record, sync
from ganzoo.flops import forward_flops
from ganzoo.update import Updater

CASES = [
    pytest.param(method, size, batch, precision, id=f"{method}-{size}px-b{batch}-{precision}")
    for method in ("cyclegan", "pix2pix")
    for size in (256,)
    for batch, precision in ((1, "fp32"), (4, "fp32"), (4, "bf16-mixed"))
]


@pytest.mark.parametrize("method,size,batch,precision", CASES)
def test_generator_inference(benchmark, registry, device, method, size, batch, precision):
    recipe = make_recipe(registry, method, size, batch, precision=precision)
    benchmark.group = f"inference {size}px"
    with PeakMemory(device) as memory:
        net = build(recipe, registry, device).generator("AtoB")
        net.eval()
        x = (torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
        prec = Updater(precision, device, guard=False)

        def translate():
            with torch.inference_mode(), prec.autocast():
                y = net(x)
            sync(device)
            return y

        with OtherLoad() as load:
            y = benchmark.pedantic(translate, rounds=5 if batch == 1 else 3, iterations=1, warmup_rounds=1)
    assert y.shape == x.shape and torch.isfinite(y).all()
    flops = forward_flops(net.to("meta"), x.to("meta"))
    record(benchmark, load=load, flops=flops, items=batch, memory=memory, method=method, generator=recipe.generator.name,
           size=size, batch=batch, precision=precision)

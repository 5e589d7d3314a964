"""Machine calibration: the throughput of the convolution that dominates a CycleGAN step.

The reference's figures (../shared/REFERENCE.md) were measured on another host of "this
machine kind", whose fp32 3x3 convolution peaked at about 450 GFLOP/s. Measuring the same
kind of convolution in the same run as the training steps says how fast this host is, so
the step times can be compared fairly (docs/benchmarks.md). The shapes are those of the
ResNet blocks at 256 px: 256 channels, 64x64 maps (66x66 reflection-padded), 3x3 kernels.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _bench import OtherLoad, record, sync

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@pytest.mark.parametrize("batch", [1, 4], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("pass_", ["forward", "forward+backward"])
def test_conv3x3_throughput(benchmark, device, dtype, batch, pass_):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 256, 66, 66, generator=g).to(device, DTYPES[dtype])
    w = (torch.randn(256, 256, 3, 3, generator=g) * 0.02).to(device, DTYPES[dtype])
    forward_flops = 2 * 256 * 256 * 9 * 64 * 64 * batch
    benchmark.group = f"machine conv3x3 {pass_}"
    if pass_ == "forward":
        def run():
            y = F.conv2d(x, w)
            sync(device)
            return y
        flops = forward_flops
    else:
        x.requires_grad_(True)
        w.requires_grad_(True)

        def run():
            y = F.conv2d(x, w)
            gx, gw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
            sync(device)
            return y
        flops = 3 * forward_flops  # forward, input gradient, weight gradient
    with OtherLoad() as load:
        y = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
    assert y.shape == (batch, 256, 64, 64)
    record(benchmark, load=load, flops=flops, dtype=dtype, batch=batch, pass_=pass_)

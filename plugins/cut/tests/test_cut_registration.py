"""The plugin registers its networks through the public hooks; each builds, runs and backpropagates."""
from __future__ import annotations

import pytest
import torch

import ganzoo_cut
from ganzoo.plugins import get_plugin_manager
from ganzoo.registry import Registry


@pytest.fixture
def registry():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(ganzoo_cut, name="cut")
    return Registry(pm)


def test_names(registry):
    assert {"cut_resnet", "cut_resnet_6blocks", "cut_resnet_9blocks"} <= set(registry.names("generator"))
    assert {"cut_patchgan", "cut_patchgan_70"} <= set(registry.names("discriminator"))
    assert registry.entry("generator", "cut_resnet_9blocks").plugin == "cut"


@pytest.mark.parametrize("name", ["cut_resnet", "cut_resnet_6blocks", "cut_resnet_9blocks"])
def test_generators_build_run_and_backpropagate(registry, name):
    spec = registry.get("generator", name)
    net = spec.build(spec.config_cls(ngf=4), in_channels=3, out_channels=1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = net(x)
    assert out.shape == (2, 1, 32, 32)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", ["cut_patchgan", "cut_patchgan_70"])
def test_discriminators_build_run_and_backpropagate(registry, name):
    spec = registry.get("discriminator", name)
    net = spec.build(spec.config_cls(ndf=4), in_channels=3)
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1, 6, 6)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())

"""The plugin registers its methods, networks and patch samplers through the public hooks; the
networks build, run and backpropagate."""
from __future__ import annotations

import pytest
import torch


def test_names(registry):
    assert {"cut_resnet", "cut_resnet_6blocks", "cut_resnet_9blocks"} <= set(registry.names("generator"))
    assert {"cut_patchgan", "cut_patchgan_70"} <= set(registry.names("discriminator"))
    assert registry.entry("generator", "cut_resnet_9blocks").plugin == "ganzoo_cut"
    assert registry.kinds["patch_sampler"].plural == "patch_samplers"
    assert registry.names("patch_sampler") == ["mlp", "sample"]
    assert {"cut", "fastcut"} <= set(registry.names("method"))
    for name in ("cut", "fastcut"):
        spec = registry.method(name)
        assert dict(spec.sections) == {"generator": "generator", "discriminator": "discriminator",
                                       "loss": "loss", "sampler": "patch_sampler"}
        assert not spec.paired and spec.monitor == "G"
        assert dict(spec.reference_files) == {n: f"{{epoch}}_net_{n}.pth" for n in ("G", "D", "F")}


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

"""The timm_unet generator, tested through ganzoo's public plugin API only."""
from __future__ import annotations

import socket

import pytest
import timm
import torch
from safetensors.torch import save_file

import ganzoo_timm_unet
from ganzoo import testing


@pytest.fixture
def registry():
    """ganzoo's built-ins and this plugin only (whatever else is installed is not loaded)."""
    return testing.registry(ganzoo_timm_unet)


@pytest.fixture
def spec(registry):
    """The registered spec."""
    entry = registry.entry("generator", "timm_unet")
    assert entry is not None and entry.plugin == "ganzoo_timm_unet"
    return entry.spec


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a connection (weights must never be downloaded)."""

    def refuse(*args, **kwargs):
        raise AssertionError("timm_unet tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def build(spec, in_channels=3, out_channels=3, **options):
    return spec.build(spec.config_cls(**options), in_channels=in_channels, out_channels=out_channels)


def test_registered_with_a_summary(spec):
    assert spec.name == "timm_unet"
    assert spec.summary
    assert spec.config_cls().backbone == "resnet18"


def test_loads_by_import_path(monkeypatch):
    # GANZOO_PLUGINS loads plugin modules without installing them, and rejects a hookimpl
    # whose name matches no hook (a misspelt ganzoo_register_generator would fail here).
    monkeypatch.setenv("GANZOO_PLUGINS", "ganzoo_timm_unet")
    assert testing.registry().entry("generator", "timm_unet").plugin == "ganzoo_timm_unet"


def test_passes_the_testing_kit(registry):
    # two builds under one seed are identical, the state_dict round-trips, the output has the
    # input's shape and gradients reach the parameters
    net = testing.check_component(registry, "generator", "timm_unet", decoder_width=8)
    assert net.size_multiple == 16


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0", "mobilenetv3_small_100"])
def test_forward_shape_and_backward(spec, backbone):
    torch.manual_seed(0)
    net = build(spec, backbone=backbone, decoder_width=16)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = net(x)
    assert y.shape == (2, 3, 64, 64)
    assert y.abs().max() <= 1
    y.square().mean().backward()
    first = next(p for p in net.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0, "no gradient reached the timm encoder"
    assert all(p.grad is not None for p in net.head.parameters())


def test_channels_and_size_multiple(spec):
    net = build(spec, in_channels=1, out_channels=2, decoder_width=8)
    assert net.size_multiple == 16
    assert net(torch.zeros(1, 1, 32, 48)).shape == (1, 2, 32, 48)
    assert build(spec, depth=5, decoder_width=8).size_multiple == 32
    with pytest.raises(ValueError, match=r"divisible by 16\. Got \(1, 1, 40, 40\)"):
        net(torch.zeros(1, 1, 40, 40))


def test_unknown_backbone_is_a_value_error(spec):
    with pytest.raises(ValueError, match=r"backbone 'resnet1' is unknown to timm.*Did you mean \"resnet18\"\?"):
        spec.config_cls(backbone="resnet1")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"depth": 0}, "depth must be >= 1"),
        ({"decoder_width": 0}, "decoder_width must be >= 1"),
        ({"pretrained_path": "/nonexistent/resnet18.safetensors"}, "pretrained_path .* no such file"),
    ],
)
def test_bad_options_are_value_errors(spec, options, match):
    with pytest.raises(ValueError, match=match):
        spec.config_cls(**options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"depth": 9}, "depth 9: backbone 'resnet18' has only 5 feature levels"),
        ({"backbone": "vit_tiny_patch16_224"}, "does not return a feature pyramid"),
    ],
)
def test_unusable_backbones_fail_at_build(spec, options, match):
    with pytest.raises(ValueError, match=match):
        build(spec, **options)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_weights_load_from_a_local_file(spec, tmp_path, no_network, suffix):
    torch.manual_seed(0)
    full = timm.create_model("resnet18", pretrained=False)
    state = full.state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)

    net = build(spec, pretrained_path=str(path), decoder_width=8)
    torch.testing.assert_close(net.encoder.state_dict()["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    torch.testing.assert_close(net.encoder.state_dict()["conv1.weight"], state["conv1.weight"])
    # A grey-scale encoder gets the first convolution summed over the RGB channels, as in timm.
    grey = build(spec, in_channels=1, pretrained_path=str(path), decoder_width=8)
    torch.testing.assert_close(grey.encoder.state_dict()["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))


def test_pretrained_weights_of_another_backbone_are_rejected(spec, tmp_path, no_network):
    path = tmp_path / "mobilenet.safetensors"
    save_file(timm.create_model("mobilenetv3_small_100", pretrained=False).state_dict(), str(path))
    with pytest.raises(ValueError, match=r"does not fit this timm encoder: \d+ of \d+ tensors missing"):
        build(spec, pretrained_path=str(path))

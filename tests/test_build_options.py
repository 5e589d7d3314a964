"""[run] channels_last and compile: how build_method places the networks; checkpoint keys unchanged."""
from __future__ import annotations

import pytest
import torch

from ganzoo.build import build_method
from ganzoo.config import load_recipe

CPU = torch.device("cpu")


def _method(registry, **run):
    raw = {
        "run": {"device": "cpu", **run},
        "data": {"root": "unused", "channels_a": 1, "channels_b": 1},
        "augment": {"load_size": 32, "crop_size": 32},
        "method": {"name": "cyclegan"},
        "generator": {"name": "resnet_6blocks", "ngf": 4},
        "discriminator": {"name": "patchgan", "n_layers": 2, "ndf": 4},
        "loss": {"name": "lsgan"},
    }
    torch.manual_seed(0)
    return build_method(load_recipe(raw, registry), registry, CPU)


def _keys(method):
    return {name: list(net.state_dict()) for name, net in method.networks.items()}


def test_channels_last_stores_conv_weights_nhwc_with_the_same_keys_and_values(registry):
    plain, nhwc = _method(registry), _method(registry, channels_last=True)
    assert _keys(plain) == _keys(nhwc)
    w = nhwc.networks["G_A"].model[4].weight  # the first stride-2 conv, 4 -> 8 channels
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    for name, net in plain.networks.items():
        for (k, a), b in zip(net.state_dict().items(), nhwc.networks[name].state_dict().values()):
            assert torch.equal(a, b), k
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():  # NCHW inputs need no conversion: the first convolution converts
        torch.testing.assert_close(nhwc.networks["G_A"](x), plain.networks["G_A"](x), rtol=1e-4, atol=1e-5)


def test_compile_keeps_the_eager_modules_and_unprefixed_keys(registry):
    plain, compiled = _method(registry), _method(registry, compile=True)
    assert _keys(plain) == _keys(compiled)
    assert not any(k.startswith("_orig_mod.") for keys in _keys(compiled).values() for k in keys)
    for name, net in compiled.networks.items():
        assert type(net) is type(plain.networks[name])  # not an OptimizedModule wrapper
        assert net._compiled_call_impl is not None  # calls go through torch.compile
        assert plain.networks[name]._compiled_call_impl is None


@pytest.mark.parametrize("option", ["channels_last", "compile"])
def test_options_survive_the_resolved_recipe(registry, option):
    from ganzoo.config import recipe_to_dict

    raw = recipe_to_dict(load_recipe({
        "run": {option: True}, "data": {"root": "x"}, "method": {"name": "cyclegan"},
        "generator": {"name": "resnet_6blocks"}, "discriminator": {"name": "patchgan_70"}, "loss": {"name": "lsgan"},
    }, registry))
    assert raw["run"][option] is True

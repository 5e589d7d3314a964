"""Reference CUT checkpoints are recognised from their keys alone and load strictly."""
from __future__ import annotations

import pytest
import torch

from cut_layouts import expect_cut_patchgan, expect_cut_resnet, random_state
from ganzoo import CheckpointError
from ganzoo_cut.generator import GENERATORS, CUTResnetBlocksConfig, CUTResnetConfig
from ganzoo_cut.reference import cut_generator_channels, guess_cut_generator, guess_cut_sampler
from ganzoo_cut.sampler import PatchSampler

GENS = {s.name: s for s in GENERATORS}


def reference_file(**kw):
    """A state_dict in the reference's layout, as its torch.save wrote it (small widths)."""
    layout, _ = expect_cut_resnet(**kw)
    return random_state(layout)


def test_the_published_layout_is_cut_resnet_9blocks():
    sd = reference_file(ngf=64, n_blocks=9, cin=3, cout=3)
    assert guess_cut_generator(sd) == ("cut_resnet_9blocks", {
        "ngf": 64, "norm": "instance", "dropout": False, "no_antialias": False, "no_antialias_up": False,
    })
    assert cut_generator_channels(sd) == (3, 3)


@pytest.mark.parametrize("kw, name, extra", [
    (dict(n_blocks=6), "cut_resnet_6blocks", {}),
    (dict(n_blocks=4), "cut_resnet", {"n_blocks": 4}),
    (dict(n_blocks=0), "cut_resnet", {"n_blocks": 0}),
    (dict(n_blocks=9, no_antialias=True), "cut_resnet_9blocks", {"no_antialias": True}),
    (dict(n_blocks=9, no_antialias_up=True), "cut_resnet_9blocks", {"no_antialias_up": True}),
    (dict(n_blocks=6, norm="batch"), "cut_resnet_6blocks", {"norm": "batch"}),
    (dict(n_blocks=6, norm="none"), "cut_resnet_6blocks", {"norm": "none"}),
    (dict(n_blocks=3, dropout=True), "cut_resnet", {"n_blocks": 3, "dropout": True}),
    (dict(n_blocks=3, padding="zero", dropout=True), "cut_resnet",
     {"n_blocks": 3, "dropout": True, "padding_type": "zero"}),
])
def test_options_are_read_back_and_the_file_loads_strictly(kw, name, extra):
    sd = reference_file(ngf=4, cin=1, cout=2, **kw)
    guess = guess_cut_generator(sd)
    assert guess is not None
    got_name, values = guess
    base = {"ngf": 4, "norm": "instance", "dropout": False, "no_antialias": False, "no_antialias_up": False}
    assert (got_name, values) == (name, {**base, **extra})
    assert cut_generator_channels(sd) == (1, 2)
    cls = CUTResnetBlocksConfig if name == "cut_resnet" else CUTResnetConfig
    net = GENS[name].build(cls(**values), in_channels=1, out_channels=2)
    net.load_state_dict(sd, strict=True)


def test_not_cut_files_are_left_alone():
    from ganzoo_cyclegan.generator import GENERATORS as CYCLE
    from ganzoo_cyclegan.generator import ResnetConfig

    cycle = {s.name: s for s in CYCLE}["resnet_9blocks"].build(ResnetConfig(ngf=4), in_channels=3, out_channels=3)
    assert guess_cut_generator(cycle.state_dict()) is None
    # both flags off: key for key the CycleGAN layout, for the CycleGAN rule to claim
    plain = reference_file(ngf=4, n_blocks=9, cin=3, cout=3, no_antialias=True, no_antialias_up=True)
    assert guess_cut_generator(plain) is None
    assert {(k, tuple(v.shape)) for k, v in plain.items()} == {(k, tuple(v.shape)) for k, v in cycle.state_dict().items()}
    assert guess_cut_generator(random_state(expect_cut_patchgan(4, 3, 3))) is None  # a net_D file
    assert guess_cut_generator(PatchSampler([3, 8], nc=4).state_dict()) is None  # a net_F file
    assert guess_cut_generator({}) is None
    with pytest.raises(CheckpointError, match="not a reference CUT generator"):
        cut_generator_channels(cycle.state_dict())


@pytest.mark.parametrize("damage, match", [
    (lambda sd: sd.pop("model.30.weight"), r"model.30.weight has shape None"),
    (lambda sd: sd.pop("model.11.filt"), r"model.11.filt has shape None"),
    (lambda sd: sd.__setitem__("model.22.weight", torch.zeros(16, 8, 3, 3)), r"model.22.weight .*first up conv"),
    (lambda sd: sd.__setitem__("model.3.filt", torch.zeros(8, 1, 3, 3)), r"blur filters at model.\[3, 7, 11"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("model.14.")], r"residual blocks at model.\[12, 13, 15"),
    (lambda sd: sd.pop("model.12.conv_block.5.weight"), "conv_block indices"),
])
def test_damaged_cut_files_say_what_is_wrong(damage, match):
    sd = reference_file(ngf=4, n_blocks=9, cin=3, cout=3)
    damage(sd)
    with pytest.raises(CheckpointError, match=match):
        guess_cut_generator(sd, source="latest_net_G.pth")


def test_sampler_files():
    sd = PatchSampler([3, 128, 256, 256, 256], nc=256).state_dict()
    assert guess_cut_sampler(sd) == ([3, 128, 256, 256, 256], 256)
    assert guess_cut_sampler(reference_file(ngf=4, n_blocks=1, cin=3, cout=3)) is None

"""CUT's generator and discriminator against the reference's layout and forward pass.

Expected layouts and forward passes come from tests/cut_layouts.py, written from the
reference's models/networks.py without ganzoo code. If keys, shapes, order and outputs match,
the reference's checkpoints load with ``strict=True`` and compute the same function. The
full-size parameter counts were derived by hand and are checked against the layouts too.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from cut_layouts import (
    cut_patchgan_reference,
    cut_resnet_reference,
    down_filter,
    expect_cut_patchgan,
    expect_cut_resnet,
    perturbed,
    random_state,
    up_filter,
)
from ganzoo_cut.antialias import Downsample, Upsample, binomial_filter
from ganzoo_cut.discriminator import DISCRIMINATORS, CUTNLayerPatchGANConfig, CUTPatchGANConfig
from ganzoo_cut.generator import GENERATORS, CUTResnetBlocksConfig, CUTResnetConfig, CUTResnetGenerator

GENS = {s.name: s for s in GENERATORS}
DISCS = {s.name: s for s in DISCRIMINATORS}
TOL = dict(atol=1e-5, rtol=1e-5)
AA_COMBOS = list(itertools.product([False, True], [False, True]))  # (no_antialias, no_antialias_up)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layout(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def on_meta(fn):
    with torch.device("meta"):  # full-width nets are counted, never run
        return fn()


def weight_count(expected) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked", ".filt")
    return sum(torch.Size(s).numel() for k, s in expected if not k.endswith(buffers))


# --- full-size layouts and counts -----------------------------------------------------------

@pytest.mark.parametrize("name, cfg, count, n_blocks", [
    ("cut_resnet_9blocks", CUTResnetConfig(), 11_378_179, 9),
    ("cut_resnet_6blocks", CUTResnetConfig(), 7_837_699, 6),
    ("cut_resnet", CUTResnetBlocksConfig(n_blocks=4), 5_477_379, 4),
])
def test_full_size_generator_layout_and_count(name, cfg, count, n_blocks):
    net = on_meta(lambda: GENS[name].build(cfg, in_channels=3, out_channels=3))
    expected, n_modules = expect_cut_resnet(64, n_blocks, 3, 3)
    assert n_params(net) == count == weight_count(expected)
    assert layout(net) == expected
    assert len(net.model) == n_modules


def test_resnet_9blocks_documented_indices():
    net = on_meta(lambda: GENS["cut_resnet_9blocks"].build(CUTResnetConfig(), in_channels=3, out_channels=3))
    assert len(net.model) == 32
    kinds = {i: type(m).__name__ for i, m in enumerate(net.model)}
    assert [i for i, k in kinds.items() if k == "Conv2d"] == [1, 4, 8, 22, 26, 30]
    assert [i for i, k in kinds.items() if k == "Downsample"] == [7, 11]
    assert [i for i, k in kinds.items() if k == "Upsample"] == [21, 25]
    assert [i for i, k in kinds.items() if k == "ResnetBlock"] == list(range(12, 21))
    sd = net.state_dict()
    assert sd["model.7.filt"].shape == (128, 1, 3, 3) and sd["model.11.filt"].shape == (256, 1, 3, 3)
    assert sd["model.21.filt"].shape == (256, 1, 4, 4) and sd["model.25.filt"].shape == (128, 1, 4, 4)
    assert sd["model.22.weight"].shape == (128, 256, 3, 3)  # a Conv2d (out, in), not a ConvTranspose
    assert sd["model.30.weight"].shape == (3, 64, 7, 7)
    # the filters are buffers: in the state_dict, not parameters
    assert not any(name.endswith("filt") for name, _ in net.named_parameters())


@pytest.mark.parametrize("cfg, cin, count", [
    (CUTPatchGANConfig(), 3, 2_764_737),
    (CUTPatchGANConfig(norm="batch"), 6, 2_768_705),
    (CUTPatchGANConfig(no_antialias=True), 3, 2_764_737),
])
def test_full_size_discriminator_layout_and_count(cfg, cin, count):
    net = on_meta(lambda: DISCS["cut_patchgan_70"].build(cfg, in_channels=cin))
    expected = expect_cut_patchgan(64, 3, cin, norm=cfg.norm, no_antialias=cfg.no_antialias)
    assert n_params(net) == count == weight_count(expected)
    assert layout(net) == expected


def test_discriminator_documented_indices():
    sd = on_meta(lambda: DISCS["cut_patchgan_70"].build(CUTPatchGANConfig(), in_channels=3)).state_dict()
    assert [k for k in sd if k.endswith("weight")] == [f"model.{i}.weight" for i in (0, 3, 7, 11, 14)]
    assert [k for k in sd if k.endswith("filt")] == [f"model.{i}.filt" for i in (2, 6, 10)]


# --- small layouts across options -----------------------------------------------------------

@pytest.mark.parametrize("no_aa, no_aa_up", AA_COMBOS)
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_generator_layouts(no_aa, no_aa_up, norm):
    cfg = CUTResnetBlocksConfig(ngf=4, n_blocks=3, norm=norm, no_antialias=no_aa, no_antialias_up=no_aa_up)
    net = GENS["cut_resnet"].build(cfg, in_channels=1, out_channels=2)
    expected, n_modules = expect_cut_resnet(4, 3, 1, 2, norm=norm, no_antialias=no_aa, no_antialias_up=no_aa_up)
    assert layout(net) == expected
    assert len(net.model) == n_modules == 23 + 3 - no_aa * 2 - no_aa_up * 2
    assert net(torch.rand(2, 1, 32, 32) * 2 - 1).shape == (2, 2, 32, 32)


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("dropout", [False, True])
def test_generator_block_options(padding, dropout):
    cfg = CUTResnetBlocksConfig(ngf=4, n_blocks=2, padding_type=padding, dropout=dropout)
    net = GENS["cut_resnet"].build(cfg, in_channels=3, out_channels=3)
    assert layout(net) == expect_cut_resnet(4, 2, 3, 3, padding=padding, dropout=dropout)[0]


def test_both_antialias_flags_off_is_the_cyclegan_generator():
    from ganzoo_cyclegan.generator import GENERATORS as CYCLE
    from ganzoo_cyclegan.generator import ResnetConfig

    cycle = {s.name: s for s in CYCLE}["resnet_6blocks"].build(ResnetConfig(ngf=4), in_channels=3, out_channels=3)
    cfg = CUTResnetConfig(ngf=4, no_antialias=True, no_antialias_up=True)
    cut = GENS["cut_resnet_6blocks"].build(cfg, in_channels=3, out_channels=3)
    assert layout(cut) == layout(cycle)
    cut.load_state_dict(perturbed(cycle))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(cut(x), cycle(x), **TOL)


@pytest.mark.parametrize("n_layers", [1, 3, 4])
@pytest.mark.parametrize("no_aa", [False, True])
def test_discriminator_layouts(n_layers, no_aa):
    cfg = CUTNLayerPatchGANConfig(ndf=4, n_layers=n_layers, no_antialias=no_aa)
    net = DISCS["cut_patchgan"].build(cfg, in_channels=3)
    assert layout(net) == expect_cut_patchgan(4, n_layers, 3, no_antialias=no_aa)


# --- fixed filters --------------------------------------------------------------------------

def test_filters_and_their_buffers():
    assert torch.equal(binomial_filter(3) * 16, torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]))
    down, up = Downsample(5), Upsample(6)
    assert torch.equal(down.filt, down_filter(5)) and torch.equal(up.filt, up_filter(6))
    assert list(down.state_dict()) == ["filt"] and list(up.state_dict()) == ["filt"]
    assert not list(down.parameters()) and not list(up.parameters())
    x = torch.rand(2, 6, 9, 10)
    assert up(x).shape == (2, 6, 18, 20)
    assert down(x[:, :5]).shape == (2, 5, 5, 5)
    # both keep a constant image constant (the filters sum to 1 per output pixel)
    ones = torch.ones(1, 6, 8, 8)
    torch.testing.assert_close(up(ones), torch.ones(1, 6, 16, 16))
    torch.testing.assert_close(down(ones[:, :5]), torch.ones(1, 5, 4, 4))


def test_init_leaves_filters_alone_and_is_xavier():
    torch.manual_seed(0)
    net = GENS["cut_resnet_9blocks"].build(CUTResnetConfig(ngf=16), in_channels=3, out_channels=3)
    sd = net.state_dict()
    assert torch.equal(sd["model.7.filt"], down_filter(32)) and torch.equal(sd["model.21.filt"], up_filter(64))
    block = net.model[12].conv_block[1].weight  # 64 -> 64, 3x3: xavier std = 0.02 * sqrt(2 / (576 + 576))
    assert block.std().item() == pytest.approx(0.02 * (2 / 1152) ** 0.5, rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in net.modules() if isinstance(m, nn.Conv2d) and m.bias is not None)


# --- forward passes against the reference's ---------------------------------------------------

@pytest.mark.parametrize("no_aa, no_aa_up", AA_COMBOS)
def test_generator_matches_reference(no_aa, no_aa_up):
    torch.manual_seed(0)
    cfg = CUTResnetBlocksConfig(ngf=4, n_blocks=5, no_antialias=no_aa, no_antialias_up=no_aa_up)
    net = GENS["cut_resnet"].build(cfg, in_channels=3, out_channels=3)
    sd = perturbed(net)
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    expected, _ = cut_resnet_reference(sd, x, 5, no_antialias=no_aa, no_antialias_up=no_aa_up)
    torch.testing.assert_close(net(x), expected, **TOL)


def test_discriminator_matches_reference():
    torch.manual_seed(0)
    net = DISCS["cut_patchgan_70"].build(CUTPatchGANConfig(ndf=4), in_channels=3)
    sd = perturbed(net)
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    out = net(x)
    assert out.shape == (2, 1, 6, 4)
    torch.testing.assert_close(out, cut_patchgan_reference(sd, x), **TOL)


def test_strict_load_of_a_reference_layout_file(tmp_path):
    """A state_dict written with plain torch.save in the reference's layout loads and runs."""
    expected, _ = expect_cut_resnet(8, 9, 3, 3)
    sd = random_state(expected)
    torch.save(sd, tmp_path / "latest_net_G.pth")
    loaded = torch.load(tmp_path / "latest_net_G.pth", weights_only=True)
    net = GENS["cut_resnet_9blocks"].build(CUTResnetConfig(ngf=8), in_channels=3, out_channels=3)
    net.load_state_dict(loaded, strict=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), cut_resnet_reference(sd, x, 9)[0], **TOL)
    # and the reference's discriminator file
    d_layout = expect_cut_patchgan(8, 3, 3)
    torch.save(random_state(d_layout, seed=1), tmp_path / "latest_net_D.pth")
    d = DISCS["cut_patchgan_70"].build(CUTPatchGANConfig(ndf=8), in_channels=3)
    d.load_state_dict(torch.load(tmp_path / "latest_net_D.pth", weights_only=True), strict=True)


# --- encode ---------------------------------------------------------------------------------

def test_encode_nce_layers_shapes_and_meaning():
    torch.manual_seed(0)
    net = GENS["cut_resnet_9blocks"].build(CUTResnetConfig(ngf=4), in_channels=3, out_channels=3)
    sd = perturbed(net)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    feats = net.encode(x, [0, 4, 8, 12, 16])
    assert [tuple(f.shape) for f in feats] == [
        (2, 3, 38, 54),   # 0: the reflection-padded input
        (2, 8, 32, 48),   # 4: first down conv (stride 1) before its norm
        (2, 16, 16, 24),  # 8: second down conv before its norm, after the first blur-pool
        (2, 16, 8, 12),   # 12: first residual block
        (2, 16, 8, 12),   # 16: fifth residual block
    ]
    _, ref = cut_resnet_reference(sd, x, 9)
    for f, i in zip(feats, [0, 4, 8, 12, 16]):
        torch.testing.assert_close(f, ref[i], **TOL)
    assert net.feature_channels([0, 4, 8, 12, 16]) == [3, 8, 16, 16, 16]


def test_encode_without_antialias_keeps_the_reference_indices():
    cfg = CUTResnetConfig(ngf=4, no_antialias=True, no_antialias_up=True)
    net = GENS["cut_resnet_9blocks"].build(cfg, in_channels=3, out_channels=3)
    x = torch.rand(1, 3, 32, 32)
    # the indices address the sequential as built: 4 and 7 are now the strided convs
    _, ref = cut_resnet_reference(perturbed(net), x, 9, no_antialias=True, no_antialias_up=True)
    feats = net.encode(x, [0, 4, 7, 12, 16])
    assert [tuple(f.shape) for f in feats] == [(1, 3, 38, 38), (1, 8, 16, 16), (1, 16, 8, 8), (1, 16, 8, 8),
                                               (1, 16, 8, 8)]
    for f, i in zip(feats, [0, 4, 7, 12, 16]):
        torch.testing.assert_close(f, ref[i], **TOL)


def test_encode_stops_after_the_last_layer_and_backpropagates():
    net = GENS["cut_resnet_6blocks"].build(CUTResnetConfig(ngf=4), in_channels=3, out_channels=3)
    ran = []
    for i, m in enumerate(net.model):
        m.register_forward_hook(lambda *_, i=i: ran.append(i))
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    feats = net.encode(x, [4, 9])
    assert ran == list(range(10))
    sum(f.sum() for f in feats).backward()
    assert x.grad is not None and net.model[4].weight.grad is not None


@pytest.mark.parametrize("layers", [[], [4, 4], [8, 4], [-1], [32], [1.0], [True]])
def test_encode_rejects_bad_layers(layers):
    net = CUTResnetGenerator(3, 3, ngf=2, n_blocks=9)
    with pytest.raises(ValueError, match="increasing indices"):
        net.encode(torch.rand(1, 3, 16, 16), layers)


@pytest.mark.parametrize("x", [torch.rand(1, 3, 30, 32), torch.rand(1, 1, 32, 32), torch.rand(3, 32, 32)])
def test_generator_rejects_bad_inputs(x):
    net = CUTResnetGenerator(3, 3, ngf=2, n_blocks=1)
    with pytest.raises(ValueError, match=r"Expected input of shape \(B, 3, H, W\)"):
        net(x)
    with pytest.raises(ValueError, match=r"Expected input of shape \(B, 3, H, W\)"):
        net.encode(x, [0])


@pytest.mark.parametrize("cls, values, match", [
    (CUTResnetConfig, {"ngf": 0}, "ngf"),
    (CUTResnetConfig, {"norm": "layer"}, "norm"),
    (CUTResnetConfig, {"padding_type": "circular"}, "padding_type"),
    (CUTResnetConfig, {"init_gain": 0.0}, "init_gain"),
    (CUTResnetBlocksConfig, {"n_blocks": -1}, "n_blocks"),
    (CUTPatchGANConfig, {"ndf": 0}, "ndf"),
    (CUTNLayerPatchGANConfig, {"n_layers": -1}, "n_layers"),
])
def test_config_validation(cls, values, match):
    with pytest.raises(ValueError, match=match):
        cls(**values)


def test_defaults_are_cuts():
    g, d = CUTResnetBlocksConfig(), CUTNLayerPatchGANConfig()
    assert (g.ngf, g.n_blocks, g.norm, g.dropout, g.padding_type) == (64, 9, "instance", False, "reflect")
    assert (g.no_antialias, g.no_antialias_up, g.init_type, g.init_gain) == (False, False, "xavier", 0.02)
    assert (d.ndf, d.n_layers, d.norm, d.no_antialias, d.init_type, d.init_gain) == (64, 3, "instance", False,
                                                                                     "xavier", 0.02)

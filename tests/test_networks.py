"""Network layouts against the reference pix2pix/CycleGAN implementation.

The expected state_dict layouts below are written out from the reference's architecture
description (models/networks.py), independently of ganzoo's code: if the keys, shapes and
order match, the reference's checkpoints load with ``strict=True``. The parameter counts
were derived by hand from the same layout. Functional re-implementations (one F.* call per
layer, weights read by key) live in test_networks_functional.py.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ganzoo._typed import FieldError, build_dataclass
from ganzoo.layers import norm_layer, strip_legacy_norm_keys, use_bias
from ganzoo.layers import patchgan
from ganzoo.layers.patchgan import NLayerPatchGANConfig, PatchGANConfig
from ganzoo_cyclegan.generator import GENERATORS as RESNETS
from ganzoo_cyclegan.generator import ResnetConfig
from ganzoo_pix2pix.generator import GENERATORS as UNETS
from ganzoo_pix2pix.generator import UnetConfig, UnetDepthConfig

GENS = {s.name: s for s in [*RESNETS, *UNETS]}
DISCS = {s.name: s for s in patchgan.ganzoo_register_discriminators()}


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layout(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def on_meta(fn):
    # Full-width networks are only counted, never run: build them without memory or init cost.
    with torch.device("meta"):
        return fn()


# --- expected layouts, from the reference's description -------------------------------------

class Expect:
    """Accumulates the (key, shape) list a state_dict should have, in registration order."""

    def __init__(self, norm: str) -> None:
        self.norm, self.bias, self.keys = norm, norm == "instance", []

    def conv(self, key, cout, cin, k, bias=None):
        self.keys.append((f"{key}.weight", (cout, cin, k, k)))
        if self.bias if bias is None else bias:
            self.keys.append((f"{key}.bias", (cout,)))

    def convt(self, key, cin, cout, k, bias=None):
        self.keys.append((f"{key}.weight", (cin, cout, k, k)))  # ConvTranspose2d: (in, out, k, k)
        if self.bias if bias is None else bias:
            self.keys.append((f"{key}.bias", (cout,)))

    def norm_(self, key, c):
        if self.norm in ("batch", "syncbatch"):
            self.keys += [(f"{key}.{n}", (c,)) for n in ("weight", "bias", "running_mean", "running_var")]
            self.keys.append((f"{key}.num_batches_tracked", ()))


def expect_resnet(ngf, n_blocks, cin, cout, norm="instance", dropout=False, padding="reflect"):
    e, d = Expect(norm), 1 if dropout else 0
    e.conv("model.1", ngf, cin, 7); e.norm_("model.2", ngf)
    e.conv("model.4", 2 * ngf, ngf, 3); e.norm_("model.5", 2 * ngf)
    e.conv("model.7", 4 * ngf, 2 * ngf, 3); e.norm_("model.8", 4 * ngf)
    a, b = (0, 3) if padding == "zero" else (1, 5)  # zero padding has no pad layer
    for i in range(n_blocks):
        p = f"model.{10 + i}.conv_block"
        e.conv(f"{p}.{a}", 4 * ngf, 4 * ngf, 3); e.norm_(f"{p}.{a + 1}", 4 * ngf)
        e.conv(f"{p}.{b + d}", 4 * ngf, 4 * ngf, 3); e.norm_(f"{p}.{b + d + 1}", 4 * ngf)
    u = 10 + n_blocks
    e.convt(f"model.{u}", 4 * ngf, 2 * ngf, 3); e.norm_(f"model.{u + 1}", 2 * ngf)
    e.convt(f"model.{u + 3}", 2 * ngf, ngf, 3); e.norm_(f"model.{u + 4}", ngf)
    e.conv(f"model.{u + 7}", cout, ngf, 7, bias=True)
    return e.keys


def expect_unet(ngf, num_downs, cin, cout, norm="batch"):
    e = Expect(norm)
    inner = lambda lv: ngf * min(2**lv, 8)  # noqa: E731
    e.conv("model.model.0", ngf, cin, 4)

    def level(p, lv):
        outer = inner(lv - 1)
        e.conv(f"{p}.1", inner(lv), outer, 4)
        if lv == num_downs - 1:  # innermost: no down norm, no concatenation below
            e.convt(f"{p}.3", inner(lv), outer, 4); e.norm_(f"{p}.4", outer)
            return
        e.norm_(f"{p}.2", inner(lv))
        level(f"{p}.3.model", lv + 1)
        e.convt(f"{p}.5", 2 * inner(lv), outer, 4); e.norm_(f"{p}.6", outer)

    level("model.model.1.model", 1)
    e.convt("model.model.3", 2 * ngf, cout, 4, bias=True)
    return e.keys


def expect_patchgan(ndf, n_layers, cin, norm="instance"):
    e, mult = Expect(norm), 1
    e.conv("model.0", ndf, cin, 4, bias=True)
    for n in range(1, n_layers):  # stride-2 groups (conv, norm, lrelu) at 2-4, 5-7, ...
        prev, mult = mult, min(2**n, 8)
        e.conv(f"model.{3 * n - 1}", ndf * mult, ndf * prev, 4); e.norm_(f"model.{3 * n}", ndf * mult)
    i, top = 2 + 3 * max(n_layers - 1, 0), ndf * min(2**n_layers, 8)  # stride-1 group, even for n_layers=0
    e.conv(f"model.{i}", top, ndf * mult, 4); e.norm_(f"model.{i + 1}", top)
    e.conv(f"model.{i + 3}", 1, top, 4, bias=True)
    return e.keys


def expect_pixelgan(ndf, cin, norm="instance"):
    e = Expect(norm)
    e.conv("net.0", ndf, cin, 1, bias=True)
    e.conv("net.2", 2 * ndf, ndf, 1); e.norm_("net.3", 2 * ndf)
    e.conv("net.5", 1, 2 * ndf, 1)  # follows the norm's bias rule, like net.2
    return e.keys


# --- full-size parameter counts and key layouts ---------------------------------------------

@pytest.mark.parametrize("name, cfg, kw, count, expected", [
    ("resnet_9blocks", ResnetConfig(), dict(in_channels=3, out_channels=3), 11_378_179,
     expect_resnet(64, 9, 3, 3)),
    ("resnet_6blocks", ResnetConfig(), dict(in_channels=3, out_channels=3), 7_837_699,
     expect_resnet(64, 6, 3, 3)),
    ("unet_256", UnetConfig(), dict(in_channels=3, out_channels=3), 54_413_955, expect_unet(64, 8, 3, 3)),
    ("unet_128", UnetConfig(), dict(in_channels=3, out_channels=3), 41_828_995, expect_unet(64, 7, 3, 3)),
    ("patchgan_70", PatchGANConfig(), dict(in_channels=3), 2_764_737, expect_patchgan(64, 3, 3)),
    ("patchgan_70", PatchGANConfig(norm="batch"), dict(in_channels=6), 2_768_705,
     expect_patchgan(64, 3, 6, "batch")),
    ("pixelgan", PatchGANConfig(), dict(in_channels=3), 8_705, expect_pixelgan(64, 3)),
])
def test_full_size_layout_and_count(name, cfg, kw, count, expected):
    spec = GENS.get(name) or DISCS[name]
    net = on_meta(lambda: spec.build(cfg, **kw))
    assert n_params(net) == count
    assert layout(net) == expected
    # the hand-derived count agrees with the hand-written layout, too
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(torch.Size(s).numel() for k, s in expected if not k.endswith(buffers)) == count


def test_documented_keys():
    sd = on_meta(lambda: GENS["resnet_9blocks"].build(ResnetConfig(), in_channels=3, out_channels=3)).state_dict()
    assert sd["model.1.weight"].shape == (64, 3, 7, 7)
    assert sd["model.10.conv_block.1.weight"].shape == (256, 256, 3, 3)
    assert sd["model.18.conv_block.5.bias"].shape == (256,)
    assert sd["model.19.weight"].shape == (256, 128, 3, 3)
    assert sd["model.26.weight"].shape == (3, 64, 7, 7)
    sd = on_meta(lambda: GENS["unet_256"].build(UnetConfig(), in_channels=3, out_channels=3)).state_dict()
    assert sd["model.model.0.weight"].shape == (64, 3, 4, 4)
    assert "model.model.0.bias" not in sd  # bias follows the norm rule even with no norm after it
    assert sd["model.model.1.model.3.model.1.weight"].shape == (256, 128, 4, 4)
    assert sd["model.model.3.bias"].shape == (3,)
    innermost = "model.model.1.model" + ".3.model" * 6
    assert sd[f"{innermost}.3.weight"].shape == (512, 512, 4, 4)
    sd = on_meta(lambda: DISCS["patchgan_70"].build(PatchGANConfig(), in_channels=3)).state_dict()
    assert [k for k in sd if k.endswith("weight")] == [f"model.{i}.weight" for i in (0, 2, 5, 8, 11)]


@pytest.mark.parametrize("norm", ["instance", "batch", "syncbatch", "none"])
def test_small_layouts_per_norm(norm):
    g = GENS["resnet_6blocks"].build(ResnetConfig(ngf=4, norm=norm), in_channels=3, out_channels=2)
    assert layout(g) == expect_resnet(4, 6, 3, 2, norm)
    g = GENS["unet_128"].build(UnetConfig(ngf=4, norm=norm), in_channels=1, out_channels=3)
    assert layout(g) == expect_unet(4, 7, 1, 3, norm)
    for n_layers in (0, 1, 3, 5):
        d = DISCS["patchgan"].build(NLayerPatchGANConfig(ndf=4, norm=norm, n_layers=n_layers), in_channels=6)
        assert layout(d) == expect_patchgan(4, n_layers, 6, norm)
    d = DISCS["pixelgan"].build(PatchGANConfig(ndf=4, norm=norm), in_channels=3)
    assert layout(d) == expect_pixelgan(4, 3, norm)


@pytest.mark.parametrize("padding, pad_cls", [
    ("reflect", nn.ReflectionPad2d), ("replicate", nn.ReplicationPad2d), ("zero", None),
])
@pytest.mark.parametrize("dropout", [False, True])
def test_resnet_padding_and_dropout_layout(padding, pad_cls, dropout):
    cfg = ResnetConfig(ngf=4, norm="batch", dropout=dropout, padding_type=padding)
    g = GENS["resnet_6blocks"].build(cfg, in_channels=3, out_channels=3)
    assert layout(g) == expect_resnet(4, 6, 3, 3, "batch", dropout, padding)
    block = g.model[10].conv_block
    pads = [m for m in block if isinstance(m, (nn.ReflectionPad2d, nn.ReplicationPad2d))]
    assert len(pads) == (0 if pad_cls is None else 2) and all(type(m) is pad_cls for m in pads)
    drops = [i for i, m in enumerate(block) if isinstance(m, nn.Dropout)]
    assert drops == ([3 if padding == "zero" else 4] if dropout else [])
    assert g(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


# --- behaviour -------------------------------------------------------------------------------

def test_use_bias_rule():
    assert {k: use_bias(k) for k in ("instance", "batch", "syncbatch", "none")} == {
        "instance": True, "batch": False, "syncbatch": False, "none": False}
    g = GENS["resnet_6blocks"].build(ResnetConfig(ngf=4, norm="none"), in_channels=3, out_channels=3)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [m.bias is not None for m in convs] == [False] * (len(convs) - 1) + [True]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in g.modules())


def test_norm_layers():
    inorm = norm_layer("instance", 8)
    assert isinstance(inorm, nn.InstanceNorm2d) and not inorm.affine and not inorm.track_running_stats
    bn = norm_layer("batch", 8)
    assert type(bn) is nn.BatchNorm2d and bn.affine and bn.track_running_stats
    sbn = norm_layer("syncbatch", 8)
    assert type(sbn) is nn.SyncBatchNorm and sbn.affine and sbn.track_running_stats
    assert isinstance(norm_layer("none", 8), nn.Identity)
    with pytest.raises(ValueError, match="norm must be one of"):
        norm_layer("group", 8)


def test_syncbatch_matches_batch_and_runs_on_cpu():
    spec = GENS["unet_128"]
    sync = spec.build(UnetConfig(ngf=4, norm="syncbatch"), in_channels=3, out_channels=3)
    plain = spec.build(UnetConfig(ngf=4, norm="batch"), in_channels=3, out_channels=3)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in sync.modules()) == 11  # 5 middle levels x 2 + innermost
    sync.load_state_dict(plain.state_dict(), strict=True)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    torch.testing.assert_close(sync.eval()(x), plain.eval()(x))


def test_output_shapes():
    cfg = PatchGANConfig(ndf=4)
    assert DISCS["patchgan_70"].build(cfg, in_channels=3)(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert DISCS["patchgan_70"].build(cfg, in_channels=6)(torch.rand(2, 6, 64, 64)).shape == (2, 1, 6, 6)
    assert DISCS["pixelgan"].build(cfg, in_channels=3)(torch.rand(2, 3, 16, 24)).shape == (2, 1, 16, 24)
    g = GENS["unet_256"].build(UnetConfig(ngf=2), in_channels=3, out_channels=1)
    assert g(torch.rand(1, 3, 256, 256)).shape == (1, 1, 256, 256)
    g = GENS["resnet_9blocks"].build(ResnetConfig(ngf=4), in_channels=1, out_channels=3)
    out = g(torch.rand(1, 1, 64, 48) * 2 - 1)
    assert out.shape == (1, 3, 64, 48) and out.abs().max() <= 1


@pytest.mark.parametrize("net, x, match", [
    (lambda: GENS["resnet_6blocks"].build(ResnetConfig(ngf=4), in_channels=3, out_channels=3),
     torch.rand(1, 3, 30, 32),
     r"Expected input of shape \(B, 3, H, W\) with H and W divisible by 4\. Got \(1, 3, 30, 32\)\."),
    (lambda: GENS["unet_128"].build(UnetConfig(ngf=4), in_channels=3, out_channels=3),
     torch.rand(1, 3, 64, 64), r"divisible by 128\. Got \(1, 3, 64, 64\)\."),
    (lambda: DISCS["patchgan_70"].build(PatchGANConfig(ndf=4), in_channels=6),
     torch.rand(1, 3, 64, 64), r"Expected input of shape \(B, 6, H, W\)\. Got \(1, 3, 64, 64\)\."),
])
def test_shape_errors(net, x, match):
    with pytest.raises(ValueError, match=match):
        net()(x)


@pytest.mark.parametrize("name, cfg", [("resnet_9blocks", ResnetConfig(ngf=16)), ("unet_256", UnetConfig(ngf=8))])
def test_init_statistics(name, cfg):
    torch.manual_seed(0)
    g = GENS[name].build(cfg, in_channels=3, out_channels=3)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.02) < 0.0005 and abs(w.mean().item()) < 0.0005
    assert all(m.bias is None or not m.bias.any() for m in convs)
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    if bns:
        bw = torch.cat([m.weight for m in bns]).detach()
        assert abs(bw.mean().item() - 1) < 0.003 and abs(bw.std().item() - 0.02) < 0.003
        assert not torch.cat([m.bias for m in bns]).any()


@pytest.mark.parametrize("init_type, gain", [("xavier", 0.02), ("kaiming", 0.02), ("orthogonal", 0.5), ("normal", 0.1)])
def test_init_types(init_type, gain):
    d = DISCS["patchgan_70"].build(PatchGANConfig(ndf=8, init_type=init_type, init_gain=gain), in_channels=3)
    w = d.model[5].weight.detach()  # Conv2d(16, 32, 4): fan_in 256, fan_out 512
    expected_std = {"xavier": gain * (2 / (256 + 512)) ** 0.5, "kaiming": (2 / 256) ** 0.5, "normal": gain}
    if init_type == "orthogonal":
        rows = w.flatten(1)
        torch.testing.assert_close(rows @ rows.T, gain**2 * torch.eye(32), atol=1e-5, rtol=0)
    else:
        assert abs(w.std().item() / expected_std[init_type] - 1) < 0.1


def test_syncbatch_is_initialised_like_batch():
    d = DISCS["patchgan_70"].build(PatchGANConfig(ndf=8, norm="syncbatch"), in_channels=3)
    w = d.model[3].weight.detach()
    assert isinstance(d.model[3], nn.SyncBatchNorm) and (w != 1).all() and abs(w.mean().item() - 1) < 0.02


def test_dropout_on_off():
    for dropout in (False, True):
        u = GENS["unet_256"].build(UnetConfig(ngf=2, dropout=dropout), in_channels=3, out_channels=3)
        assert sum(isinstance(m, nn.Dropout) for m in u.modules()) == (3 if dropout else 0)  # num_downs - 5
        r = GENS["resnet_6blocks"].build(ResnetConfig(ngf=4, dropout=dropout), in_channels=3, out_channels=3)
        assert sum(isinstance(m, nn.Dropout) for m in r.modules()) == (6 if dropout else 0)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    u.train()
    assert not torch.equal(u(x), u(x))
    u.eval()
    assert torch.equal(u(x), u(x))


def test_strip_legacy_instance_norm_keys():
    g = GENS["resnet_6blocks"].build(ResnetConfig(ngf=4), in_channels=3, out_channels=3)
    legacy = dict(g.state_dict())
    for name, m in g.named_modules():
        if isinstance(m, nn.InstanceNorm2d):  # what PyTorch < 0.4 saved for every instance norm
            legacy[f"{name}.running_mean"] = torch.zeros(m.num_features)
            legacy[f"{name}.running_var"] = torch.ones(m.num_features)
    with pytest.raises(RuntimeError, match="Unexpected running stats buffer"):
        g.load_state_dict(legacy, strict=True)
    g.load_state_dict(strip_legacy_norm_keys(legacy, g), strict=True)


@pytest.mark.parametrize("cls, values, key", [
    (ResnetConfig, {"ngf": 0}, "ngf"),
    (ResnetConfig, {"padding_type": "circular"}, "padding_type"),
    (UnetConfig, {"norm": "group"}, "norm"),
    (UnetConfig, {"init_type": "uniform"}, "init_type"),
    (PatchGANConfig, {"init_gain": 0.0}, "init_gain"),
    (NLayerPatchGANConfig, {"n_layers": -1}, "n_layers"),
])
def test_config_validation(cls, values, key):
    with pytest.raises(ValueError, match=f"^{key} must be"):
        cls(**values)
    with pytest.raises(FieldError) as info:
        build_dataclass(cls, values)
    assert info.value.key == key


def test_unet_of_any_depth_equals_the_named_sizes():
    cfg = UnetDepthConfig(ngf=2, num_downs=7)
    a = GENS["unet"].build(cfg, in_channels=3, out_channels=3)
    b = GENS["unet_128"].build(UnetConfig(ngf=2), in_channels=3, out_channels=3)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    assert GENS["unet"].build(UnetDepthConfig(ngf=2), in_channels=1, out_channels=1).size_multiple == 32
    with pytest.raises(ValueError, match="^num_downs must be between 5 and 10"):
        UnetDepthConfig(num_downs=4)


def test_specs_and_configs():
    assert list(GENS) == ["resnet", "resnet_6blocks", "resnet_9blocks", "unet", "unet_128", "unet_256"]
    assert list(DISCS) == ["patchgan_70", "patchgan", "pixelgan"]
    for spec in [*GENS.values(), *DISCS.values()]:
        assert dataclasses.is_dataclass(spec.config_cls) and spec.summary
        cfg = spec.config_cls()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.init_gain = 1.0
    assert build_dataclass(NLayerPatchGANConfig, {"n_layers": 4, "norm": "batch"}).n_layers == 4

"""Reference checkpoints in and out: layouts built here from the documented structure, not by ganzoo.

The reference networks below are written out layer by layer with plain torch.nn (the
``nn.Sequential`` layouts of the reference's ResnetGenerator and UnetGenerator), saved with
``torch.save`` and read back by ganzoo; their outputs must match ganzoo's exactly.
"""
from __future__ import annotations

import dataclasses
import functools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from ganzoo import CheckpointError, ComponentSpec, checkpoint, hookimpl
from ganzoo._typed import build_dataclass
from ganzoo.build import build_method
from ganzoo.cli import cli
from ganzoo.config import load_recipe, read_toml, recipe_to_dict
from ganzoo.data.images import read_image
from ganzoo.reference_checkpoints import (
    RECIPE_FILE,
    export_reference,
    infer_generator,
    load_reference_generator,
    read_reference_state_dict,
    reference_test_mode,
)
from ganzoo.registry import Registry

CPU = torch.device("cpu")
INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
BATCH = functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)


# ---- the reference's layouts, written out independently -------------------------------------
class RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm, dropout: bool, bias: bool) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    def __init__(self, cin: int, cout: int, ngf: int, n_blocks: int, norm=INSTANCE, dropout: bool = False) -> None:
        super().__init__()
        bias = norm is INSTANCE
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=bias), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm(2 * c), nn.ReLU(True)]
        layers += [RefResnetBlock(4 * ngf, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RefUnetBlock(nn.Module):
    def __init__(self, outer: int, inner: int, cin: int | None = None, sub: nn.Module | None = None, *,
                 outermost: bool = False, innermost: bool = False, norm=BATCH, dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm is INSTANCE
        down = nn.Conv2d(cin or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:  # the reference's in-place LeakyReLU, skip and all
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), norm(outer)]
            layers += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, cin: int, cout: int, num_downs: int, ngf: int, norm=BATCH, dropout: bool = True) -> None:
        super().__init__()
        block = RefUnetBlock(8 * ngf, 8 * ngf, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(8 * ngf, 8 * ngf, sub=block, norm=norm, dropout=dropout)
        for outer in (4 * ngf, 2 * ngf, ngf):
            block = RefUnetBlock(outer, 2 * outer, sub=block, norm=norm)
        self.model = RefUnetBlock(cout, ngf, cin, block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


def _randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere, batch-norm running statistics included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=g)
                t.copy_(values + 0.5 if name.endswith("running_var") else (values - 0.5) * 0.6)
    return net.eval()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _write_png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _expected_png(ref: nn.Module, image: Path) -> np.ndarray:
    x = read_image(image, 3)[0][None] * 2 - 1
    with torch.no_grad():
        y = (ref(x)[0] + 1) / 2
    return (y.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)


# ---- reading reference files ------------------------------------------------------------
def test_resnet_instance_file_gives_identical_outputs(tmp_path, registry):
    ref = _randomise(RefResnetGenerator(3, 3, ngf=2, n_blocks=6))
    torch.save(ref.state_dict(), tmp_path / "latest_net_G_A.pth")
    net, channels = load_reference_generator(tmp_path / "latest_net_G_A.pth", CPU, registry)
    assert channels == 3 and not net.training
    x = torch.rand(2, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-6, rtol=0)


def test_unet_batch_file_gives_identical_outputs(tmp_path, registry):
    ref = _randomise(RefUnetGenerator(3, 1, num_downs=7, ngf=2))
    torch.save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    net, channels = load_reference_generator(tmp_path / "latest_net_G.pth", CPU, registry)
    name = infer_generator(ref.state_dict(), registry)[0]
    assert (name, channels) == ("unet_128", 3)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-6, rtol=0)


def test_translate_cli_with_reference_files(tmp_path, env):
    """End to end: `ganzoo translate --checkpoint FILE.pth` writes what the reference network computes."""
    resnet = _randomise(RefResnetGenerator(3, 3, ngf=2, n_blocks=9), seed=1)
    unet = _randomise(RefUnetGenerator(3, 3, num_downs=7, ngf=2), seed=2)
    for ref, name, (h, w) in ((resnet, "resnet", (32, 24)), (unet, "unet", (128, 128))):
        folder = tmp_path / name
        folder.mkdir()
        torch.save(ref.state_dict(), folder / "latest_net_G.pth")
        image = _write_png(tmp_path / f"{name}_in.png", h, w)
        result = invoke("translate", "--checkpoint", folder / "latest_net_G.pth", "--input", image,
                        "--output", tmp_path / f"{name}_out", "--device", "cpu")
        assert result.exit_code == 0, result.output
        got = np.asarray(Image.open(tmp_path / f"{name}_out" / f"{name}_in.png"))
        np.testing.assert_array_equal(got, _expected_png(ref, image))


def test_legacy_instance_norm_buffers_and_old_serialisation(tmp_path, registry):
    ref = _randomise(RefResnetGenerator(3, 3, ngf=2, n_blocks=6, dropout=True))
    state = ref.state_dict()
    for name, m in ref.named_modules():  # what PyTorch < 0.4 saved for every InstanceNorm2d
        if isinstance(m, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(m.num_features)
            state[f"{name}.running_var"] = torch.ones(m.num_features)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    assert "model.2.running_mean" in state and "model.10.conv_block.2.running_var" in state
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    net, _ = load_reference_generator(tmp_path / "old.pth", CPU, registry)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-6, rtol=0)


def test_wrappers_and_missing_batch_counters(tmp_path, registry):
    ref = _randomise(RefUnetGenerator(1, 3, num_downs=5, ngf=1))
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}  # PyTorch < 0.4.1
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pth")
    assert set(read_reference_state_dict(tmp_path / "wrapped.pth")) == set(state)
    net, channels = load_reference_generator(tmp_path / "wrapped.pth", CPU, registry)
    assert channels == 1
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-6, rtol=0)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling this would create the marker file


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, env, writer):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "latest_net_G.pth"
    if writer == "torch":
        torch.save({"model.1.weight": _Evil(marker)}, evil)
    else:
        evil.write_bytes(pickle.dumps({"model.1.weight": _Evil(marker)}))
    image = _write_png(tmp_path / "in.png", 16, 16)
    result = invoke("translate", "--checkpoint", evil, "--input", image, "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "not a plain state_dict" in result.output and "never executes code" in result.output
    assert "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_damaged_files_are_explained(tmp_path):
    (tmp_path / "page.pth").write_text("<!DOCTYPE html><html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match="HTML error page"):
        read_reference_state_dict(tmp_path / "page.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_reference_state_dict(tmp_path / "empty.pth")
    torch.save(RefResnetGenerator(3, 3, 1, 6).state_dict(), tmp_path / "whole.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        read_reference_state_dict(tmp_path / "cut.pth")
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_reference_state_dict(tmp_path / "list.pth")


def test_wrong_architecture_names_the_mismatched_keys(tmp_path, env):
    state = RefResnetGenerator(3, 3, ngf=2, n_blocks=6).state_dict()
    state["model.12.conv_block.5.weight"] = torch.zeros(8, 8, 1, 1)
    del state["model.13.conv_block.1.bias"]
    torch.save(state, tmp_path / "bad.pth")
    result = invoke("translate", "--checkpoint", tmp_path / "bad.pth", "--input", _write_png(tmp_path / "i.png", 8, 8),
                    "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "model.12.conv_block.5.weight is (8, 8, 1, 1) in the file, (8, 8, 3, 3) in the network" in result.output
    assert "key(s) missing from the file: model.13.conv_block.1.bias" in result.output and "read as resnet_6blocks" in result.output


def test_discriminators_and_unknown_layouts_are_explained(tmp_path, registry):
    from ganzoo.layers import NLayerDiscriminator

    torch.save(NLayerDiscriminator(6, 4, 1, "instance").state_dict(), tmp_path / "latest_net_D.pth")
    with pytest.raises(CheckpointError, match="looks like a patchgan discriminator"):
        load_reference_generator(tmp_path / "latest_net_D.pth", CPU, registry)
    torch.save({"encoder.weight": torch.ones(4, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"cannot infer the generator.*starts with encoder\.weight") as info:
        load_reference_generator(tmp_path / "other.pth", CPU, registry)
    assert RECIPE_FILE in str(info.value) and "[generator]" in str(info.value)
    seven = RefResnetGenerator(3, 3, ngf=1, n_blocks=7)  # any depth: read as `resnet` with n_blocks = 7
    torch.save(seven.state_dict(), tmp_path / "seven.pth")
    net, _ = load_reference_generator(tmp_path / "seven.pth", CPU, registry)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(net(x), seven.eval()(x), rtol=0, atol=1e-6)


# ---- inference rules, over ganzoo's own generators -------------------------------------------
CASES = [
    ("resnet_6blocks", {"norm": "instance", "dropout": False, "padding_type": "reflect"}),
    ("resnet_6blocks", {"norm": "batch", "dropout": True, "padding_type": "zero"}),
    ("resnet_9blocks", {"norm": "none", "dropout": True, "padding_type": "reflect"}),
    ("resnet_9blocks", {"norm": "instance", "dropout": False, "padding_type": "zero"}),
    ("unet_128", {"norm": "batch"}),
    ("unet_256", {"norm": "instance"}),
    ("unet_256", {"norm": "none"}),
    ("unet", {"norm": "batch", "num_downs": 6}),
]


@pytest.mark.parametrize(("name", "settings"), CASES)
def test_inference_rules(registry, name, settings):
    spec = registry.get("generator", name)
    net = spec.build(build_dataclass(spec.config_cls, {"ngf": 1, **settings}), in_channels=4, out_channels=1)
    got_name, cfg, cin, cout = infer_generator(net.state_dict(), registry)
    assert (got_name, cin, cout, cfg.ngf) == (name, 4, 1, 1)
    for key, value in settings.items():
        assert getattr(cfg, key) == value


# ---- recipes for what the weights cannot show ------------------------------------------------
def test_recipe_supplies_padding_and_is_checked_against_the_weights(tmp_path, registry):
    ref = RefResnetGenerator(3, 3, ngf=1, n_blocks=6)
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    (tmp_path / "pad.toml").write_text('[generator]\nname = "resnet_6blocks"\npadding_type = "replicate"\n')
    net, _ = load_reference_generator(tmp_path / "g.pth", CPU, registry, recipe_path=tmp_path / "pad.toml")
    assert any(isinstance(m, nn.ReplicationPad2d) for m in net.modules())
    (tmp_path / "ngf.toml").write_text("[generator]\nngf = 64\n")
    with pytest.raises(CheckpointError, match=r"says \[generator\] ngf = 64 but the weights have ngf = 1"):
        load_reference_generator(tmp_path / "g.pth", CPU, registry, recipe_path=tmp_path / "ngf.toml")
    (tmp_path / "dropout.toml").write_text("[generator]\ndropout = true\nnorm = \"instance\"\n")
    with pytest.raises(CheckpointError, match=r"dropout = True but the weights have dropout = False"):
        load_reference_generator(tmp_path / "g.pth", CPU, registry, recipe_path=tmp_path / "dropout.toml")
    (tmp_path / "empty.toml").write_text("[run]\n")
    with pytest.raises(CheckpointError, match=r"no \[generator\] section"):
        load_reference_generator(tmp_path / "g.pth", CPU, registry, recipe_path=tmp_path / "empty.toml")


@dataclasses.dataclass(frozen=True)
class _PointwiseConfig:
    width: int = 3


class _Pointwise(nn.Module):
    def __init__(self, cfg: _PointwiseConfig, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, cfg.width, 1), nn.Conv2d(cfg.width, out_channels, 1))

    def forward(self, x):
        return self.body(x)


def test_recipe_names_a_third_party_generator(tmp_path, pm):
    class Plugin:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("pointwise", _PointwiseConfig, _Pointwise, "1x1 convs")]

    pm.register(Plugin(), name="pointwise_plugin")
    registry = Registry(pm)
    net = _Pointwise(_PointwiseConfig(width=5), in_channels=4, out_channels=2)
    torch.save(net.state_dict(), tmp_path / "latest_net_G_B.pth")  # G_B translates B (4 ch) -> A (2 ch)
    (tmp_path / RECIPE_FILE).write_text(
        '[data]\nchannels_a = 2\nchannels_b = 4\n[generator]\nname = "pointwise"\nwidth = 5\n')
    loaded, channels = load_reference_generator(tmp_path / "latest_net_G_B.pth", CPU, registry)
    assert channels == 4 and isinstance(loaded, _Pointwise)
    x = torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(loaded(x), net(x))


def test_reference_test_mode_uses_batch_statistics(tmp_path, registry):
    torch.save(_randomise(RefUnetGenerator(3, 3, num_downs=5, ngf=1)).state_dict(), tmp_path / "g.pth")
    net, _ = load_reference_generator(tmp_path / "g.pth", CPU, registry)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        eval_out = net(x)
        reference_test_mode(net)
        assert all(m.training for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.Dropout)))
        assert not torch.allclose(net(x), eval_out)


# ---- export -> import ---------------------------------------------------------------------
def test_export_import_round_trip_is_bit_exact(tiny_recipe, tmp_path, env, registry):
    run = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--steps", 1, "--out", run, "--set", 'generator.padding_type="replicate"')
    assert result.exit_code == 0, result.output
    out = tmp_path / "exported"
    result = invoke("export", "--checkpoint", run, "--format", "reference", "--output", out)
    assert result.exit_code == 0, result.output
    names = ["latest_net_G_A.pth", "latest_net_G_B.pth", "latest_net_D_A.pth", "latest_net_D_B.pth", RECIPE_FILE]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    tree = checkpoint.load(run / "checkpoints" / "step_000000001.safetensors")
    for name, state in tree["networks"].items():
        plain = read_reference_state_dict(out / f"latest_net_{name}.pth")
        assert plain.keys() == state.keys() and all(torch.equal(plain[k], state[k]) for k in state)
    recipe = load_recipe(read_toml(out / RECIPE_FILE), registry)
    assert recipe.generator.config.padding_type == "replicate" and recipe.run.max_steps == 1
    for name in ("G_A", "G_B"):
        net, _ = load_reference_generator(out / f"latest_net_{name}.pth", CPU, registry)
        assert any(isinstance(m, nn.ReplicationPad2d) for m in net.modules())  # from ganzoo_recipe.toml
        own = net.state_dict()
        assert all(torch.equal(own[k], v) for k, v in tree["networks"][name].items())


def test_export_pix2pix_networks(tmp_path, registry):
    raw = {
        "data": {"root": str(tmp_path), "pairing": "aligned"},
        "method": {"name": "pix2pix"},
        "generator": {"name": "unet_128", "ngf": 2},
        "discriminator": {"name": "patchgan", "n_layers": 2, "ndf": 2, "norm": "batch"},
        "loss": {"name": "vanilla"},
    }
    recipe = load_recipe(raw, registry)
    method = build_method(recipe, registry, CPU)
    _randomise(method.networks["G"])
    ckpt = tmp_path / "step_000000007.safetensors"
    checkpoint.save(ckpt, {"recipe": recipe_to_dict(recipe),
                           "networks": {k: n.state_dict() for k, n in method.networks.items()}})
    written = export_reference(ckpt, tmp_path / "out", registry)
    assert [p.name for p in written] == ["latest_net_G.pth", "latest_net_D.pth", RECIPE_FILE]
    net, _ = load_reference_generator(tmp_path / "out" / "latest_net_G.pth", CPU, registry)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), method.networks["G"].eval()(x))

"""ganzoo.export: every format round-trips the registered generators within tolerance at two
sizes and at a third, dynamic size; a planted difference, an interruption, a missing extra and
hostile names leave no file behind.

The networks are 8 channels wide. U-Nets are built with init_gain 0.08 (at the default 0.02
their eval-mode output is within 0.03 of zero, so any export would pass) and every batch
norm gets random running statistics, so a lost buffer would show. ONNX export takes about 4 s
per network on one core: the format x family matrix covers one ResNet and one U-Net.
"""
from __future__ import annotations

import importlib.util
import sys
import warnings

import pytest
import torch
from torch import nn

from ganzoo._typed import build_dataclass
from ganzoo.errors import GanzooError
from ganzoo.export import (
    FORMATS,
    INPUT_NAME,
    ExportError,
    check_file_name,
    default_check_sizes,
    export_generator,
    output_path,
)

_NO_ONNX = any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(_NO_ONNX, reason='the export extra is not installed (pip install -e ".[test]")')
FORMAT_CASES = [pytest.param(f, marks=needs_onnx) if f == "onnx" else f for f in FORMATS]
FAMILIES = {"resnet_6blocks": {"ngf": 8}, "unet_128": {"ngf": 8, "init_gain": 0.08}}


def make_net(registry, name: str, **cfg) -> nn.Module:
    torch.manual_seed(0)
    spec = registry.get("generator", name)
    config = build_dataclass(spec.config_cls, {**FAMILIES.get(name, {"ngf": 8}), **cfg})
    net = spec.build(config, in_channels=3, out_channels=3)
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return net


def load(fmt: str, path, net: nn.Module):
    """The artifact loaded with the public API its users call, as a function image -> image."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path))
    if fmt == "exported-program":
        return torch.export.load(str(path)).module()
    from safetensors.torch import load_file

    twin = make_net_like(net)
    twin.load_state_dict(load_file(str(path)))
    return twin.eval()


def make_net_like(net: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(net)
    for p in twin.parameters():
        p.data.zero_()
    return twin


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("fmt", FORMAT_CASES)
def test_export_matches_eager_at_two_sizes_and_a_third(registry, tmp_path, fmt, name):
    net = make_net(registry, name)
    net.train()
    m = net.size_multiple
    report = export_generator(net, fmt, tmp_path / f"G{FORMATS[fmt]}", channels=3, multiple=m)

    assert report.path.exists() and report.nbytes == report.path.stat().st_size
    assert [c.shape for c in report.checks] == [(b, 3, h, w) for b, h, w in default_check_sizes(m)]
    assert report.max_abs_diff <= 1e-4
    assert net.training, "the caller's mode is restored"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"G{FORMATS[fmt]}"], "no temporary file is left"
    if fmt == "onnx":
        assert report.opset is not None and f"opset {report.opset}" in report.summary()

    # a size that neither the export example nor the checks used: batch 3, 3 x 5 strides
    x = torch.rand(3, 3, 3 * m, 5 * m, generator=torch.Generator().manual_seed(5)) * 2 - 1
    net.eval()
    with torch.inference_mode():
        expected = net(x)
        got = load(fmt, report.path, net)(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4
    assert expected.std() > 0.05, "the check would be vacuous on a near-constant output"


@needs_onnx
def test_onnx_graph_has_dynamic_batch_height_width_and_the_chosen_opset(registry, tmp_path):
    import onnx

    net = make_net(registry, "unet", num_downs=5, init_gain=0.08)
    report = export_generator(net, "onnx", tmp_path / "G.onnx", channels=3, multiple=32, opset=18)
    assert report.opset == 18
    model = onnx.load(str(report.path))
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3


@pytest.mark.parametrize("fmt", FORMAT_CASES)
def test_a_difference_above_tolerance_fails_and_leaves_no_file(registry, tmp_path, monkeypatch, fmt):
    import ganzoo.export as export

    real = export._load_runner

    def off_by_a_bit(*args):
        run = real(*args)
        return lambda x: run(x) + 1e-2

    monkeypatch.setattr(export, "_load_runner", off_by_a_bit)
    target = tmp_path / f"G{FORMATS[fmt]}"
    target.write_bytes(b"an older export")
    net = make_net(registry, "resnet_6blocks")
    with pytest.raises(ExportError) as info:
        export_generator(net, fmt, target, channels=3, multiple=4)
    message = str(info.value)
    assert str(target) in message and f"exported {fmt} model differs" in message
    assert "0.01" in message and "tolerance 0.0001" in message and "nothing was written" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"an older export", "the previous file is untouched"


def test_an_interrupted_write_leaves_no_file(registry, tmp_path, monkeypatch):
    import ganzoo.export as export

    def half_written(net, file, **kw):
        file.write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(export._WRITERS, "safetensors", half_written)
    with pytest.raises(KeyboardInterrupt):
        export_generator(make_net(registry, "resnet_6blocks"), "safetensors", tmp_path / "G.safetensors",
                         channels=3, multiple=4)
    assert list(tmp_path.iterdir()) == []


def test_a_network_that_cannot_be_traced_is_one_error(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.mean() > 0 else -x  # branches on a value: torch.export refuses

    with pytest.raises(ExportError, match="exported-program exporter could not trace this network"):
        export_generator(DataDependent(), "exported-program", tmp_path / "G.pt2", channels=3, multiple=4)
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_is_one_error_naming_it(registry, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ExportError) as info:
        export_generator(make_net(registry, "resnet_6blocks"), "onnx", tmp_path / "G.onnx", channels=3, multiple=4)
    assert 'pip install "ganzoo[export]"' in str(info.value) and "missing: onnxruntime" in str(info.value)
    assert isinstance(info.value, GanzooError)
    assert list(tmp_path.iterdir()) == []


HOSTILE = ["", "..", "../G.onnx", "a/../../G", "/etc/passwd", "sub/G", "a\\b", "G\n.onnx", "G\x00",
           "G\x1b[2J", "G\u202egnp.onnx", ".hidden", "x" * 256]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_names_are_refused(tmp_path, name):
    with pytest.raises(ExportError, match="refused"):
        output_path(tmp_path, name, "onnx")
    with pytest.raises(ExportError, match="refused"):
        check_file_name(name)


def test_plain_names_pass_and_get_the_format_suffix(tmp_path):
    assert output_path(tmp_path, "G_A", "onnx") == tmp_path / "G_A.onnx"
    assert output_path(tmp_path, "horse2zebra.AtoB-ema", "exported-program") == tmp_path / "horse2zebra.AtoB-ema.pt2"
    assert check_file_name("Gé_1.pt") == "Gé_1.pt"


def test_bad_requests_are_refused_before_any_work(registry, tmp_path):
    net = make_net(registry, "resnet_6blocks")
    with pytest.raises(ExportError, match='Did you mean "onnx"'):
        export_generator(net, "onxx", tmp_path / "G.onnx", channels=3, multiple=4)
    with pytest.raises(ExportError, match="only the onnx format has an opset"):
        export_generator(net, "torchscript", tmp_path / "G.pt", channels=3, multiple=4, opset=17)
    with pytest.raises(ExportError, match="multiples of 4"):
        export_generator(net, "torchscript", tmp_path / "G.pt", channels=3, multiple=4, check_sizes=[(1, 30, 32)])
    with pytest.raises(ExportError, match="does not exist"):
        export_generator(net, "torchscript", tmp_path / "nope" / "G.pt", channels=3, multiple=4)
    assert list(tmp_path.iterdir()) == []


def test_safetensors_keeps_metadata_and_every_module_keeps_its_mode(registry, tmp_path):
    from safetensors import safe_open

    net = make_net(registry, "resnet_6blocks").train()
    net.model[2].eval()  # a caller's frozen norm stays frozen
    report = export_generator(net, "safetensors", tmp_path / "G.safetensors", channels=3, multiple=4,
                              metadata={"generator": "resnet_6blocks", "ngf": "8"})
    with safe_open(str(report.path), "pt") as f:
        assert f.metadata()["generator"] == "resnet_6blocks"
    assert report.max_abs_diff == 0.0
    assert net.training and not net.model[2].training and net.model[3].training

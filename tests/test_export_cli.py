"""ganzoo export through the CLI: each generator of a run, checked against the eager network at
two sizes; a reference .pth file exports the same way; a missing extra is one error line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cliinvoke import invoke, trained_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("export_cli"), name="tiny")


def test_onnx_of_every_direction_is_checked(run, tmp_path):
    pytest.importorskip("onnxruntime")
    out = invoke("export", "--checkpoint", run, "--format", "onnx", "--output", tmp_path / "o").output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["tiny_AtoB.onnx", "tiny_BtoA.onnx"]
    lines = [line for line in out.splitlines() if line.startswith("onnx ")]
    assert len(lines) == 2 and all("max |diff| vs eager" in line and "(2, 3, 96, 128)" in line for line in lines)


def test_a_reference_file_exports_like_a_run(run, tmp_path):
    invoke("export", "--checkpoint", run, "--format", "reference", "--output", tmp_path / "ref")
    out = invoke("export", "--checkpoint", tmp_path / "ref" / "latest_net_G_B.pth", "--format", "torchscript",
                 "--output", tmp_path / "ts").output
    assert "torchscript" in out and (tmp_path / "ts" / "G_B.pt").is_file()
    with pytest.warns(FutureWarning):  # torch 2.10+ deprecates TorchScript; C++ servers still load it
        scripted = torch.jit.load(str(tmp_path / "ts" / "G_B.pt"))
    assert scripted(torch.zeros(1, 3, 32, 40)).shape == (1, 3, 32, 40)


def test_missing_extra_is_one_error_line(run, tmp_path, monkeypatch):
    import ganzoo.export as export

    monkeypatch.setitem(export._EXTRAS, "onnx", ("onnx", "a_package_that_is_not_installed"))
    result = invoke("export", "--checkpoint", run, "--format", "onnx", "--output", tmp_path / "x", code=2)
    assert 'pip install "ganzoo[export]"' in result.output and not (tmp_path / "x").exists()

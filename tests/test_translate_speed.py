"""The fast paths of ganzoo translate: on a CPU a batch goes through the network in parts of
about 256x256 pixels (same result as one forward); ``--compile`` translates like the eager
network, and where it cannot work it is one clear error (exit 2) with nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo import inference
from ganzoo.data.images import read_image
from ganzoo.inference import forward_in_parts, translate_batch
from cliinvoke import invoke, trained_run
from imagefiles import write_images


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("translate_speed"), name="run")


def _generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()


def _forward_sizes(net: nn.Module) -> list[int]:
    sizes: list[int] = []
    net.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    return sizes


@pytest.mark.parametrize("side,batch,parts", [(256, 8, [1] * 8), (128, 8, [4, 4]), (64, 8, [8]), (96, 5, [5])])
def test_a_cpu_batch_runs_in_parts_of_the_pixel_budget(side, batch, parts):
    net = _generator()
    sizes = _forward_sizes(net)
    x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        whole = net(x)
        sizes.clear()
        got = translate_batch(net, x)
    assert sizes == parts
    torch.testing.assert_close(got, whole, rtol=0, atol=1e-5)


def test_parts_follow_the_budget_and_never_split_a_training_network(monkeypatch):
    monkeypatch.setattr(inference, "CPU_PIXELS_PER_FORWARD", 3 * 32 * 32)
    net = _generator()
    sizes = _forward_sizes(net)
    x = torch.rand(7, 3, 32, 32)
    with torch.no_grad():
        forward_in_parts(net, x)
        assert sizes == [3, 3, 1]
        sizes.clear()
        net.train()  # batch statistics would change with the parts
        forward_in_parts(net, x)
        assert sizes == [7]


def test_compile_with_tiles_is_refused_before_loading(tmp_path):
    write_images(tmp_path / "in", 1, size=32)
    result = invoke("translate", "--checkpoint", tmp_path / "no-such-run", "--input", tmp_path / "in",
                    "--output", tmp_path / "out", "--compile", "--tile", "64", code=2)
    assert result.output.strip() == "error: --compile works on whole images; with --tile, translate without --compile."
    assert not (tmp_path / "out").exists()


def test_compile_without_a_cpp_compiler_is_one_error(run, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-ganzoo")
    write_images(tmp_path / "in", 1, size=32)
    result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "out",
                    "--compile", code=2)
    assert "Traceback" not in result.output
    line, = result.output.strip().splitlines()
    assert "--compile: torch.compile needs a C++ compiler" in line and "no-such-compiler-ganzoo" in line
    assert not list((tmp_path / "out").rglob("*.png")) if (tmp_path / "out").exists() else True


def test_a_compiler_failure_is_one_error(run, tmp_path, monkeypatch):
    import torch._inductor.compile_fx as compile_fx

    def broken(*args, **kwargs):
        raise RuntimeError("cc1plus: fatal error: out of memory")

    monkeypatch.setattr(compile_fx, "compile_fx", broken)
    torch._dynamo.reset()
    write_images(tmp_path / "in", 2, size=32)
    try:
        result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "out",
                        "--compile", code=2)
    finally:
        torch._dynamo.reset()
    line, = result.output.strip().splitlines()
    assert line.startswith("error: --compile: torch.compile failed (") and "out of memory" in line
    assert "0 image(s) were written before. Translate without --compile." in line


def test_compiled_translation_matches_eager(run, tmp_path):
    """In a fresh interpreter, as a user runs it (torch.compile's code generation imports
    setuptools, which other tests' imports can break in this process)."""
    write_images(tmp_path / "in", 2, size=32)
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "eager")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "ganzoo.cli", "translate", "--checkpoint", str(run),
                             "--input", str(tmp_path / "in"), "--output", str(tmp_path / "compiled"), "--compile"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 image(s)" in result.stdout
    for name in ("img000.png", "img001.png"):
        eager, compiled = (read_image(tmp_path / d / name, 3)[0] for d in ("eager", "compiled"))
        assert (eager - compiled).abs().max() <= 1 / 255 + 1e-6  # fused kernels round differently


def test_whole_images_on_a_cpu_hold_large_blocks_and_tiles_do_not(run, tmp_path, monkeypatch):
    from ganzoo import heap

    calls = []
    monkeypatch.setattr(heap, "hold_large_blocks", lambda: calls.append(1) or True)
    write_images(tmp_path / "in", 1, size=32)
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "whole")
    assert calls == [1]
    invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "tiled",
           "--tile", "32", "--overlap", "8")
    assert calls == [1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_hold_large_blocks_applies_on_glibc():
    import platform

    from ganzoo import heap

    assert heap.hold_large_blocks() is (platform.libc_ver()[0] == "glibc")


def test_the_memory_check_counts_the_images_run_at_once(run, tmp_path, monkeypatch):
    from ganzoo import cli, tiling
    from ganzoo.inference import load_generator

    net, _, _ = load_generator(run, cli._registry()[1], torch.device("cpu"), "AtoB")
    one, four = (tiling.estimate_memory(net, 3, 64, 64, batch=b) * tiling.MEMORY_FACTOR for b in (1, 4))
    assert four > 1.5 * one
    monkeypatch.setattr("ganzoo.translate.WHOLE_CHECK_PIXELS", 0)
    monkeypatch.setattr("ganzoo.tiling.available_memory", lambda device: int((one + four) / 2))
    write_images(tmp_path / "in", 4, size=64)
    monkeypatch.setattr(inference, "CPU_PIXELS_PER_FORWARD", 64 * 64)  # one image per forward: it fits
    result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "parts",
                    "--batch-size", "4")
    assert "wrote 4 image(s)" in result.output
    monkeypatch.setattr(inference, "CPU_PIXELS_PER_FORWARD", 4 * 64 * 64)  # all four at once: it does not
    result = invoke("translate", "--checkpoint", run, "--input", tmp_path / "in", "--output", tmp_path / "whole",
                    "--batch-size", "4", code=2)
    assert "Translate it in tiles: --tile" in result.output

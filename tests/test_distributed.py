"""torchrun with 2 CPU processes (gloo) trains to the same weights as one process with the
same global batch: the shards of each global batch are disjoint and complete, and averaged
gradients equal the gradient of the global mean loss (instance norm is per sample)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganzoo import checkpoint
from ganzoo.checkpoint import RunCheckpoints
from recipefiles import tiny_toml


def recipe_text(root: Path, batch: int) -> str:
    return tiny_toml(
        root, run={"name": "ddp", "seed": 3, "n_epochs": 100, "n_epochs_decay": 100, "max_steps": 3},
        data={"batch_size": batch},
        # no random crops or flips (they draw per-rank random numbers); no history pools (per rank by design)
        augment={"preprocess": "none", "load_size": 32, "crop_size": 32, "flip": False}, method={"pool_size": 0},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_DISABLE_PLUGIN_AUTOLOAD": ""}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, write_images):
    root = tmp_path / "ds"
    write_images(root / "trainA", 12, size=32, seed=1)
    write_images(root / "trainB", 12, size=32, seed=2)
    one = tmp_path / "one.toml"
    one.write_text(recipe_text(root, 4))
    two = tmp_path / "two.toml"
    two.write_text(recipe_text(root, 2))

    _run([sys.executable, "-m", "ganzoo.cli", "run", str(one), "--out", "single"], tmp_path)
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                "-m", "ganzoo.cli", "run", str(two), "--out", "ddp"], tmp_path)
    assert "x 2 processes" in ddp.stderr

    single = checkpoint.load(RunCheckpoints(tmp_path / "single").latest())
    ranked = checkpoint.load(RunCheckpoints(tmp_path / "ddp").latest())
    assert single["step"] == ranked["step"] == 3
    # Adam divides each gradient by its own running magnitude, so float rounding (a batch of 4
    # vs. two all-reduced halves) is not shrunk by lr as in SGD. Conv biases right before an
    # instance norm have an exactly zero true gradient (the norm removes them), so for them
    # Adam turns pure rounding noise into +-lr steps: they are checked by the outputs below.
    lr = 2e-4
    for name, state in single["networks"].items():
        for key, value in state.items():
            if key.endswith("bias") and value.numel() > 1 and _feeds_instance_norm(name, key):
                continue
            torch.testing.assert_close(ranked["networks"][name][key], value, rtol=0, atol=lr / 2,
                                       msg=f"{name}.{key}")
    # what matters: both generators translate alike
    from ganzoo.build import build_method
    from ganzoo.config import load_recipe
    from ganzoo.plugins import get_plugin_manager
    from ganzoo.registry import Registry

    registry = Registry(get_plugin_manager())
    recipe = load_recipe(single["recipe"], registry)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    outputs = []
    for tree in (single, ranked):
        method = build_method(recipe, registry, torch.device("cpu"))
        for net_name, net in method.networks.items():
            net.load_state_dict(tree["networks"][net_name])
        with torch.no_grad():
            outputs.append(method.networks["G_A"].eval()(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=2e-3)
    # only rank 0 writes: one checkpoint file, one event file
    assert len(RunCheckpoints(tmp_path / "ddp").all()) == 1
    assert len(list((tmp_path / "ddp" / "tb").glob("events.out.tfevents.*"))) == 1


def _feeds_instance_norm(name: str, key: str) -> bool:
    """For resnet_6blocks and patchgan_70 with instance norm: every conv bias feeds an instance
    norm except the generators' last conv (model.23) and the discriminators' first and last."""
    free = {"model.23.bias"} if name.startswith("G") else {"model.0.bias", "model.11.bias"}
    return key not in free

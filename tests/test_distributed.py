"""torchrun with 2 CPU processes (gloo) trains like one process with the same global batch:
the shards of each global batch are disjoint and complete, and averaged gradients equal the
gradient of the global mean loss (instance norm is per sample). A planted fault (gradients
not averaged) shows that the comparison would catch a broken average."""
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
from imagefiles import write_images
from recipefiles import tiny_toml

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")

STEPS = 3
# Adam moves each weight by about lr whatever the size of its gradient, so float rounding
# (a batch of 4 vs. two all-reduced halves; other kernels on other CPUs) decides the sign of
# the steps of weights whose gradient is about 0. At the usual lr (2e-4) those moves changed
# the next gradients of these tiny GANs by up to 30 % within 3 steps, and the runs parted
# chaotically on some seeds and kernels. At a tiny lr each step's gradient is that of nearly
# the initial weights, so rounding does not compound. The drift below is a ratio of Adam
# steps, about lr each, so a wrong average shows at any lr.
LR = 1e-6
# Largest drift (see _weight_drift) of a network that still counts as the same training.
# Measured on a 2-core AMD EPYC (AVX-512, fp32): at most 0.004 as is (seeds 0, 3, 7); at most
# 0.02 with the 1-process run forced onto other kernels (seeds 0, 3, 5, 11; ATEN_CPU_CAPABILITY
# =default, or avx2 with ONEDNN_MAX_CPU_ISA=AVX2); at least 0.77, and 1.1 at this test's seed,
# when the gradients are not averaged.
DRIFT_TOLERANCE = 0.2

# Started by torchrun in place of `-m ganzoo.cli`: ganzoo with torch.distributed.all_reduce
# patched so that each rank keeps its own shard's gradient. Only tensors far larger than the
# one-element flags (non-finite guard, stop requests) and any vector of loss scalars are
# touched: those are the flattened gradients of a network (11k elements for the smallest here).
# The buffer is multiplied by the world size so that the division that follows the sum leaves
# exactly the local gradient; a sum instead of a mean would not do as a fault, since Adam is
# nearly invariant to a constant factor.
NOT_AVERAGED = '''\
import sys

import torch.distributed as dist

_all_reduce = dist.all_reduce


def all_reduce_but_gradients(tensor, *args, **kwargs):
    if tensor.numel() > 1000:
        print(f"planted fault: {tensor.numel()} gradients not averaged", file=sys.stderr, flush=True)
        tensor.mul_(dist.get_world_size())
        return None
    return _all_reduce(tensor, *args, **kwargs)


dist.all_reduce = all_reduce_but_gradients
sys.argv = ["ganzoo", *sys.argv[1:]]
from ganzoo.cli import main  # noqa: E402

main()
'''


def recipe_text(root: Path, batch: int) -> str:
    return tiny_toml(
        # a checkpoint after every step: the first one is the reference point of the drift
        root, run={"name": "ddp", "seed": 3, "n_epochs": 100, "n_epochs_decay": 100, "max_steps": STEPS,
                   "save_every": 1, "keep_last": STEPS},
        data={"batch_size": batch},
        # no random crops or flips (they draw per-rank random numbers); no history pools (per rank by design)
        augment={"preprocess": "none", "load_size": 32, "crop_size": 32, "flip": False}, method={"pool_size": 0},
        optim={"lr": LR},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_DISABLE_PLUGIN_AUTOLOAD": ""}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _torchrun(program: list[str], recipe: Path, out: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                 *program, "run", str(recipe), "--out", out], cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The data, the recipe of 2 ranks x batch 2, and the 1-process run of batch 4 in ``single``
    (shared by both tests: only read)."""
    folder = tmp_path_factory.mktemp("ddp")
    root = folder / "ds"
    write_images(root / "trainA", 12, size=32, seed=1)
    write_images(root / "trainB", 12, size=32, seed=2)
    (folder / "one.toml").write_text(recipe_text(root, 4))
    (folder / "two.toml").write_text(recipe_text(root, 2))
    _run([sys.executable, "-m", "ganzoo.cli", "run", str(folder / "one.toml"), "--out", "single"], folder)
    return folder


def _weight_drift(single: Path, ranked: Path) -> dict[str, tuple[float, str]]:
    """For each network, how far the ranked run ended from the single one relative to how far
    training moved it, ||w_ranked - w_single|| / ||w_single - w_single@1|| over all its weight
    tensors at the last step (@1: after step 1, the first checkpoint; no checkpoint holds the
    initial weights, which both runs share: same seed, and rank 0's weights are broadcast),
    with the name of its tensor of largest drift.

    Not elementwise: rounding flips the Adam steps of the few weights whose gradient is about
    0 (see LR), and a norm over a network averages those away, while gradients that are not
    the global batch's move most weights differently (drift of order 1). Biases (1-D) are left
    out: a conv bias before an instance norm has an exactly zero true gradient (the norm
    removes it), so Adam moves it by rounding noise alone (drift about 1 in correct runs),
    and it cannot change the outputs; the weights go through the same all-reduce.
    """
    first = checkpoint.load(RunCheckpoints(single).all()[0])
    last = checkpoint.load(RunCheckpoints(single).latest())
    other = checkpoint.load(RunCheckpoints(ranked).latest())
    assert first["step"] == 1 and last["step"] == other["step"] == STEPS
    drift = {}
    for net, state in last["networks"].items():
        keys = [k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2]
        moved = {k: (state[k] - first["networks"][net][k]).double().norm() for k in keys}
        apart = {k: (other["networks"][net][k] - state[k]).double().norm() for k in keys}
        total = torch.stack(list(moved.values())).norm()
        assert total > 0, f"{net}: no weight changed in {STEPS - 1} steps, nothing to compare"
        worst = max(keys, key=lambda k: apart[k] / moved[k].clamp_min(1e-30))
        drift[net] = (float(torch.stack(list(apart.values())).norm() / total), worst)
    return drift


def _assert_same_training(single: Path, ranked: Path) -> None:
    drift = _weight_drift(single, ranked)
    apart = {net: f"{d:.3f} (most: {worst})" for net, (d, worst) in drift.items() if d > DRIFT_TOLERANCE}
    assert not apart, f"weights trained apart (drift > {DRIFT_TOLERANCE}): {apart}"


def test_two_processes_equal_one_process_with_the_same_global_batch(runs):
    ddp = _torchrun(["-m", "ganzoo.cli"], runs / "two.toml", "ddp", runs)
    assert "x 2 processes" in ddp.stderr

    _assert_same_training(runs / "single", runs / "ddp")
    # only rank 0 writes: one file per checkpoint, one event file
    assert len(RunCheckpoints(runs / "ddp").all()) == STEPS
    assert len(list((runs / "ddp" / "tb").glob("events.out.tfevents.*"))) == 1


def test_the_comparison_fails_when_gradients_are_not_averaged(runs):
    wrapper = runs / "not_averaged.py"
    wrapper.write_text(NOT_AVERAGED)
    bad = _torchrun([str(wrapper)], runs / "two.toml", "bad", runs)
    assert "planted fault" in bad.stderr  # the patch reached ganzoo's gradient all-reduce

    with pytest.raises(AssertionError, match="weights trained apart") as failure:
        _assert_same_training(runs / "single", runs / "bad")
    for net in ("G_A", "G_B", "D_A", "D_B"):  # both optimisers' averages are checked
        assert f"'{net}'" in str(failure.value), net

"""Exact resume on CPU: a run stopped at step k and resumed gives bit-identical losses and
weights to an uninterrupted run; the same recipe and seed give the same loss curve."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganzoo import checkpoint, hookimpl
from ganzoo.runlog import read_metrics
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.registry import Registry
from imagefiles import write_images
from recipefiles import tiny_toml

STEPS = 20


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """6 A images, 5 B images, batch 1: epochs end at steps 6, 12 and 18, and the linear
    schedule lowers the learning rate from the third epoch on. No test split: no evaluation."""
    base = tmp_path_factory.mktemp("resume")
    write_images(base / "ds" / "trainA", 6, seed=1)
    write_images(base / "ds" / "trainB", 5, seed=2)
    path = base / "recipe.toml"
    path.write_text(tiny_toml(base / "ds", run={"seed": 7, "n_epochs": 2, "n_epochs_decay": 3}, method={"pool_size": 3}))
    return path


def run(*args, code: int = 0):
    result = CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def losses(run_dir: Path) -> list[tuple[int, dict]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def tensors(node, path="") -> dict[str, torch.Tensor | object]:
    """Every leaf of a checkpoint tree by its path."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in tensors(child, f"{path}/{key}").items()}
    if isinstance(node, (list, tuple)):
        return {k: v for i, child in enumerate(node) for k, v in tensors(child, f"{path}/{i}").items()}
    return {path: node}


def assert_same_state(a: Path, b: Path) -> None:
    """Every tensor and value of the two latest checkpoints is equal (but the worker count)."""
    left = tensors(checkpoint.load(RunCheckpoints(a).latest()))
    right = tensors(checkpoint.load(RunCheckpoints(b).latest()))
    assert left.keys() == right.keys()
    del left["/recipe/data/num_workers"], right["/recipe/data/num_workers"]
    differ = [k for k in left if not (torch.equal(left[k], right[k]) if isinstance(left[k], torch.Tensor)
                                      else left[k] == right[k])]
    assert not differ, f"{len(differ)} leaves differ, e.g. {differ[:5]}"


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    run(recipe, "--out", out, "--steps", STEPS)
    return out


class SigintAt:
    """A plugin that sends this process a real SIGINT at the end of a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def ganzoo_on_step_end(self, step: int) -> None:
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    "workers, stop_at, how",
    [(0, 7, "steps"), (2, 7, "sigint"), (0, 6, "sigint")],
    ids=["0-workers-stop-7-by-steps", "2-workers-stop-7-by-sigint", "0-workers-stop-6-epoch-end-by-sigint"],
)
def test_interrupted_and_resumed_run_is_bit_identical(recipe, reference, tmp_path, monkeypatch, pm,
                                                      workers, stop_at, how):
    out = tmp_path / "run"
    workers_set = ("--set", f"data.num_workers={workers}")
    if how == "steps":
        run(recipe, "--out", out, "--steps", stop_at, *workers_set)
    else:
        pm.register(SigintAt(stop_at), name="sigint-at")
        monkeypatch.setattr("ganzoo.cli._registry", lambda: (pm, Registry(pm)))
        stopped = run(recipe, "--out", out, "--steps", STEPS, *workers_set, code=130)
        assert f"stopped at step {stop_at}" in stopped.output
        pm.unregister(name="sigint-at")
    assert checkpoint.load(RunCheckpoints(out).latest())["step"] == stop_at
    resumed = run("--resume", out, "--steps", STEPS)
    assert f"at step {stop_at}" in resumed.output

    assert [s for s, _ in losses(out)] == list(range(1, STEPS + 1))  # each step logged once
    assert losses(out) == losses(reference)  # floats compared exactly
    assert_same_state(out, reference)


def test_same_recipe_and_seed_give_the_same_loss_curve(recipe, reference, tmp_path):
    out = tmp_path / "again"
    run(recipe, "--out", out, "--steps", STEPS, "--set", "data.num_workers=2")
    assert losses(out) == losses(reference)
    other = tmp_path / "other-seed"
    run(recipe, "--out", other, "--steps", 3, "--set", "run.seed=8")
    assert losses(other) != losses(reference)[:3]  # the comparison is not vacuous


def test_the_run_crosses_epochs_and_the_schedule_moves(reference):
    records = [r for r in read_metrics(reference / "metrics.jsonl") if "loss" in r]
    assert [r["epoch"] for r in records] == [1] * 6 + [2] * 6 + [3] * 6 + [4] * 2
    lrs = [r["lr"]["G"] for r in records]
    assert lrs[0] == lrs[11] == 2e-4 and lrs[12] < lrs[11] and lrs[18] < lrs[17]


def test_a_checkpoint_holds_the_whole_training_state(reference):
    tree = checkpoint.load(RunCheckpoints(reference).latest())
    assert tree["step"] == STEPS and (tree["epoch"], tree["epoch_pos"]) == (3, 2)
    assert set(tree["networks"]) == {"G_A", "G_B", "D_A", "D_B"}
    for name in ("G", "D"):  # Adam moments and step counts of every parameter
        state = tree["optimizers"][name]["state"]
        assert state and all({"step", "exp_avg", "exp_avg_sq"} <= set(s) for s in state.values())
        assert all(s["step"].item() == STEPS for s in state.values())
        assert tree["schedulers"][name]["last_epoch"] == 3
    pool = tree["method"]["pool_A"]
    assert pool["images"].shape[0] == 3 and len(pool["rng"][1]) == 625  # full pool and its own RNG
    assert {"python", "numpy", "torch"} <= set(tree["rng"])
    assert tree["recipe"]["method"]["pool_size"] == 3 and tree["recipe"]["run"]["seed"] == 7
    assert {"ganzoo", "torch", "plugins"} <= set(tree["versions"])


def test_tensorboard_forgets_what_a_crashed_run_logged_after_its_checkpoint(recipe, reference, tmp_path):
    """A kill -9 after step 10 whose last checkpoint is step 7: the resumed run trains 8-10
    again, and TensorBoard shows each step once, with the values of the run that counts."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run(recipe, "--out", out, "--steps", 7)
    saved = tmp_path / "checkpoints-at-7"
    shutil.copytree(out / "checkpoints", saved)
    run("--resume", out, "--steps", 10)  # logs steps 8-10 and saves at 10 ...
    shutil.rmtree(out / "checkpoints")  # ... which the crash never wrote to disk
    shutil.copytree(saved, out / "checkpoints")
    run("--resume", out, "--steps", 12)

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("loss/G")]
    want = [(step, loss["G"]) for step, loss in losses(reference) if step <= 12]
    assert [s for s, _ in logged] == [s for s, _ in want]
    for (step, got), (_, value) in zip(logged, want):
        assert got == pytest.approx(value, rel=1e-6), step

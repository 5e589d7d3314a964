"""Signals and kills against a real child process: SIGINT/SIGTERM save and say how to resume,
a second Ctrl-C aborts at once, and kill -9 in the middle of checkpoint writes never leaves a
broken checkpoint behind."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganzoo import checkpoint
from ganzoo.runlog import read_metrics
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from childruns import logged_steps, wait_for_step
from imagefiles import write_images
from recipefiles import tiny_toml


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


# The real CLI with each training step slowed down, so that a signal sent right after a
# step was logged is sure to arrive in the middle of the next one.
SLOW_CLI = """
import sys, time
import ganzoo_cyclegan.method as objective
from ganzoo.cli import main
step = objective.CycleGAN.train_step
def slow_step(self, real_a, real_b):
    time.sleep({seconds})
    return step(self, real_a, real_b)
objective.CycleGAN.train_step = slow_step
sys.argv[0] = "ganzoo"
main()
"""


def child_env() -> dict[str, str]:
    # one thread per child: the suite runs on small shared machines
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def root(tmp_path) -> Path:
    write_images(tmp_path / "ds" / "trainA", 4, seed=1)
    write_images(tmp_path / "ds" / "trainB", 3, seed=2)
    return tmp_path / "ds"


def recipe(tmp_path: Path, root: Path, *, workers: int = 0, save_every: int = 0) -> Path:
    path = tmp_path / "long.toml"
    path.write_text(tiny_toml(root, run={"n_epochs": 1000, "n_epochs_decay": 0, "save_every": save_every},
                              data={"num_workers": workers}, method={"pool_size": 3}))
    return path


def start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            **kwargs)


def kill(proc: subprocess.Popen) -> str:
    """SIGKILL the child, reap it, close its pipes; return its stderr."""
    proc.kill()
    return proc.communicate()[1]


def resume_in_process(run_dir: Path, steps: int):
    return CliRunner().invoke(cli, ["run", "--resume", str(run_dir), "--steps", str(steps)], catch_exceptions=False)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_says_how_to_resume_and_resume_continues(tmp_path, root, sig, code):
    out = tmp_path / "run"
    # The signal goes to the whole process group, DataLoader workers included, as a terminal's
    # Ctrl-C does (and systemd's or SLURM's SIGTERM): the workers must not die under the step.
    proc = start([sys.executable, "-m", "ganzoo.cli", "run", str(recipe(tmp_path, root, workers=2)),
                  "--out", str(out)], start_new_session=True)
    wait_for_step(proc, out, 2, kill)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"{sig.name}: finishing this step and saving a checkpoint" in err
    assert f"Resume with: ganzoo run --resume {out}" in err
    assert "Traceback" not in err
    latest = RunCheckpoints(out).latest()
    tree = checkpoint.load(latest)
    assert tree["step"] == logged_steps(out)[-1] >= 2  # the step in progress was finished and saved
    assert read_metrics(out / "metrics.jsonl")[-1] == {
        "step": tree["step"], "event": "end", "status": "interrupted", "skipped_steps": 0, "skipped_images": 0}

    resumed = resume_in_process(out, tree["step"] + 2)
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {out} at step {tree['step']}" in resumed.output
    assert checkpoint.load(RunCheckpoints(out).latest())["step"] == tree["step"] + 2
    assert logged_steps(out) == list(range(1, tree["step"] + 3))


def test_second_ctrl_c_aborts_at_once_without_saving(tmp_path, root):
    out = tmp_path / "run"
    code = SLOW_CLI.format(seconds=2.0)
    proc = start([sys.executable, "-c", code, "run", str(recipe(tmp_path, root)), "--out", str(out)])
    wait_for_step(proc, out, 1, kill)  # step 2 has just begun and sleeps for 2 s
    proc.send_signal(signal.SIGINT)
    line = ""
    while "finishing this step" not in line:  # the first Ctrl-C was handled...
        line = proc.stderr.readline()
        assert line, f"child exited early: {kill(proc)}"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)  # ...and the second comes before the step ends
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5  # promptly: well before the 2 s step plus a save would end
    assert proc.returncode == 130, err
    assert "aborted at step 1 without saving; no checkpoint was written" in err
    assert "Traceback" not in err
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").iterdir())


SAVER = """
import os, sys, time, torch
from ganzoo.checkpoint import RunCheckpoints
run_dir, first, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pause"
real_fsync = os.fsync
def announced_fsync(fd):  # say so and linger, so the parent can kill us in the middle of a write
    print("fsync", flush=True)
    time.sleep(2)
    real_fsync(fd)
checkpoints = RunCheckpoints(run_dir, keep_last=3)
weights = torch.randn(3_000_000, generator=torch.Generator().manual_seed(0))
for step in range(first, first + 10_000):
    # a realistic tree: tensors, nested tables, int-keyed optimiser state
    tree = {"step": step, "networks": {"G": {"w": weights + step}},
            "optimizers": {"G": {"state": {0: {"step": torch.tensor(float(step))}}, "param_groups": []}}}
    checkpoints.save(step, tree)
    print(step, flush=True)
    if pause:
        os.fsync = announced_fsync
"""


def check_run_dir(run_dir: Path) -> int:
    """Every checkpoint under its final name is complete; ``latest`` loads. Returns its step."""
    checkpoints = RunCheckpoints(run_dir)
    for path in checkpoints.all():
        tree = checkpoint.load(path)  # raises if half-written
        step = int(path.stem.split("_")[1])
        assert tree["step"] == step
        assert tree["networks"]["G"]["w"].shape == (3_000_000,)
        assert tree["optimizers"]["G"]["state"][0]["step"].item() == step
    return checkpoint.load(checkpoints.latest())["step"]


def test_kill_9_during_checkpoint_writes_keeps_every_checkpoint_loadable(tmp_path):
    run_dir = tmp_path / "run"
    rnd = random.Random(1234)
    last, torn = 0, 0
    for i in range(10):
        # even rounds: kill at a random moment; odd rounds: kill inside the fsync of a data file
        pause = i % 2 == 1
        proc = start([sys.executable, "-c", SAVER, str(run_dir), str(last + 1), "pause" if pause else "go"])
        lines = (line.strip() for line in iter(proc.stdout.readline, ""))
        assert str(last + 1) in lines, kill(proc)  # one checkpoint written ...
        if pause:
            assert next(lines) == "fsync"  # ... and the next one is being written
        else:
            time.sleep(rnd.uniform(0.0, 0.3))
        kill(proc)
        leftovers = list((run_dir / "checkpoints").glob(".step_*.tmp"))
        torn += bool(leftovers)
        assert not pause or leftovers, "the kill in the middle of a write left no temporary file"
        step = check_run_dir(run_dir)
        assert step >= last + 1
        last = step
    assert torn >= 5
    # the next writer removes what the killed ones left behind
    proc = start([sys.executable, "-c", SAVER, str(run_dir), str(last + 1), "go"])
    assert proc.stdout.readline().strip() == str(last + 1)
    kill(proc)
    assert len(list((run_dir / "checkpoints").glob(".*.tmp"))) <= 1  # at most the write the kill interrupted
    check_run_dir(run_dir)


def test_kill_9_of_a_training_run_resumes_from_the_last_checkpoint(tmp_path, root):
    out = tmp_path / "run"
    proc = start([sys.executable, "-m", "ganzoo.cli", "run", str(recipe(tmp_path, root, save_every=1)),
                  "--out", str(out)])
    wait_for_step(proc, out, 3, kill)
    kill(proc)
    step = checkpoint.load(RunCheckpoints(out).latest())["step"]
    assert step >= 2
    resumed = resume_in_process(out, step + 1)
    assert resumed.exit_code == 0, resumed.output
    assert f"at step {step}" in resumed.output
    # metrics.jsonl was rewound to the checkpoint: every step once, in order
    assert logged_steps(out) == list(range(1, step + 2))


WORKER = """
import os, signal, sys, time
from ganzoo import _signals
_signals.WORKER_GRACE_SECONDS = 1
_signals.ignore_in_worker(0)
os.kill(os.getpid(), signal.SIGINT)   # ignored
os.kill(os.getpid(), signal.SIGTERM)  # leave, but only a grace period later
print("alive", flush=True)
time.sleep(30)
sys.exit(3)
"""


def test_a_worker_ignores_sigint_and_leaves_quietly_soon_after_sigterm():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, env=child_env(), timeout=60)
    assert proc.stdout == "alive\n", proc.stderr  # survived both signals at first
    assert proc.returncode == 0  # status 0: the DataLoader does not take it for a crash
    assert time.monotonic() - started < 20  # and did not wait for the sleep to end


def test_a_second_ctrl_c_outside_the_step_is_deferred_to_the_next_interruptible_block():
    from ganzoo._signals import StopSignals

    stop = StopSignals()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and not stop.aborting
        os.kill(os.getpid(), signal.SIGINT)  # e.g. while TensorBoard holds a lock: nothing raised here
        assert stop.aborting
        with pytest.raises(KeyboardInterrupt):
            with stop.interruptible():  # ... but at once on entering the next step or save
                pytest.fail("the block must not run")
        stop.disarm()
    assert stop._abort_timer.finished.is_set()  # the forced exit was cancelled

    inside = StopSignals()
    with inside.installed():
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            with inside.interruptible():
                os.kill(os.getpid(), signal.SIGINT)  # inside a step: raised right here
                time.sleep(5)
                pytest.fail("not interrupted")
        inside.disarm()

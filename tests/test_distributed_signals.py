"""SIGTERM to one rank of a 2-process torchrun job (gloo, CPU), as a scheduler or a user's
``kill`` sends it: every rank stops after the same step, rank 0 saves, each rank exits with
143, torchrun reports that and exits 1, the message says how to resume, and a resumed torchrun
job continues from the checkpoint to the requested step."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from ganzoo import checkpoint
from ganzoo.runlog import read_metrics
from ganzoo.checkpoint import RunCheckpoints
from childruns import logged_steps, wait_for_step
from imagefiles import write_images
from recipefiles import tiny_toml

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the ranks' PIDs in /proc (Linux)"),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="torch.distributed with the gloo backend is not available"),
]


# The real CLI, with rank 0's last write (the "end" record of metrics.jsonl) slowed down as on
# a busy shared disk: torchrun SIGTERMs the other workers as soon as one exits non-zero, so a
# rank that left before rank 0 was done would get rank 0 killed in the middle of its writes.
# Each rank notes the status it leaves with in exits/RANK (torchrun reports only the first).
SLOW_END_CLI = """
import os, sys, time
from pathlib import Path
from ganzoo import runlog as _runlog
from ganzoo.cli import main
rank = os.environ["RANK"]
write = _runlog.MetricsLog.write
def slow_write(self, record):
    if "event" in record and rank == "0":
        time.sleep(1.0)
    write(self, record)
_runlog.MetricsLog.write = slow_write
sys.argv[0] = "ganzoo"
try:
    main()
except SystemExit as exc:
    Path("exits").mkdir(exist_ok=True)
    Path("exits", rank).write_text(str(exc.code))
    raise
"""

#: what torchrun itself returns when a worker exits non-zero (it raises ChildFailedError)
TORCHRUN_FAILED = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, logs: str, *args: str, script: Path | None = None) -> subprocess.Popen:
    """``torchrun --nproc_per_node 2 -m ganzoo.cli run ARGS`` (or ``SCRIPT run ARGS``); each
    rank's output goes to ``tmp_path/logs/*/attempt_0/<rank>/``, torchrun's own to the pipes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "GANZOO_DISABLE_PLUGIN_AUTOLOAD": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "--log-dir", str(tmp_path / logs), "--redirects", "3",
               *([str(script)] if script else ["-m", "ganzoo.cli"]), "run", *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def rank_pids(torchrun_pid: int) -> dict[int, int]:
    """rank -> PID of the workers torchrun started (its children with RANK in their environment)."""
    pids = {}
    for children in Path(f"/proc/{torchrun_pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # a thread that just ended
            for pid in map(int, children.read_text().split()):
                with contextlib.suppress(OSError):
                    environ = Path(f"/proc/{pid}/environ").read_text().split("\0")
                    ranks = [v.removeprefix("RANK=") for v in environ if v.startswith("RANK=")]
                    if ranks:
                        pids[int(ranks[0])] = pid
    return pids


def kill_job(proc: subprocess.Popen) -> str:
    """SIGKILL torchrun and its workers (they run in sessions of their own); return torchrun's stderr."""
    if proc.poll() is None:
        for pid in rank_pids(proc.pid).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()[1]


def rank_stderr(tmp_path: Path, logs: str, rank: int) -> str:
    files = list((tmp_path / logs).glob(f"*/attempt_0/{rank}/stderr.log"))
    assert len(files) == 1, f"rank {rank}'s stderr.log under {tmp_path / logs}: {files}"
    return files[0].read_text()


def last_printed_step(stderr: str) -> int:
    """The last ``step N/TOTAL`` progress line a rank printed (every rank prints its own)."""
    return int(re.findall(r"^step (\d+)/\d+ ", stderr, flags=re.MULTILINE)[-1])


@pytest.mark.parametrize("signalled", [1, 0], ids=["rank1", "rank0"])
def test_sigterm_to_one_rank_stops_every_rank_after_the_same_step_and_resumes(tmp_path, signalled):
    root = tmp_path / "ds"
    write_images(root / "trainA", 4, size=32, seed=1)
    write_images(root / "trainB", 4, size=32, seed=2)
    recipe = tmp_path / "sig.toml"
    recipe.write_text(tiny_toml(  # ~0.05 s a step: 200 steps are far more than the test waits for
        root, run={"name": "sig", "n_epochs": 100, "n_epochs_decay": 100, "max_steps": 200},
        augment={"preprocess": "none", "load_size": 32, "crop_size": 32, "flip": False}, method={"pool_size": 0}))
    out = tmp_path / "run"

    slow_end = tmp_path / "slow_end.py"
    slow_end.write_text(SLOW_END_CLI)
    proc = torchrun(tmp_path, "logs", str(recipe), "--out", str(out), script=slow_end)
    try:
        wait_for_step(proc, out, 2, kill_job)  # both ranks are training (each step all-reduces)
        pids = rank_pids(proc.pid)
        assert sorted(pids) == [0, 1], pids
        os.kill(pids[signalled], signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_job(proc)
    logs = {rank: rank_stderr(tmp_path, "logs", rank) for rank in (0, 1)}
    everything = err + "".join(logs.values())

    # each rank exited with 143, none was killed by torchrun's SIGTERM to the others, and
    # torchrun reports the failed worker(s) and exits 1
    assert proc.returncode == TORCHRUN_FAILED, everything
    assert set(re.findall(r"exitcode\s*:\s*(-?\d+)", err)) == {"143"}, err
    assert {p.name: p.read_text() for p in (tmp_path / "exits").iterdir()} == {"0": "143", "1": "143"}, everything
    assert "SIGTERM: finishing this step and saving a checkpoint" in logs[signalled]
    for rank, log in logs.items():
        assert "Traceback" not in log, f"rank {rank}:\n{log}"

    # every rank finished the same step, rank 0 saved exactly that step, nothing logged past it
    tree = checkpoint.load(RunCheckpoints(out).latest())
    step = tree["step"]
    assert step >= 2  # signalled after step 2 was logged: at least that step is saved
    assert last_printed_step(logs[0]) == last_printed_step(logs[1]) == step, everything
    assert [p.name for p in RunCheckpoints(out).all()] == [f"step_{step:09d}.safetensors"]
    assert logged_steps(out) == list(range(1, step + 1))
    assert read_metrics(out / "metrics.jsonl")[-1] == {
        "step": step, "event": "end", "status": "interrupted", "skipped_steps": 0, "skipped_images": 0}
    latest = RunCheckpoints(out).latest()
    assert (f"stopped at step {step}; saved {latest}. Resume with: torchrun <this run's options> "
            f"-m ganzoo.cli run --resume {out}") in logs[0]
    assert "stopped at step" not in logs[1]  # said once, by rank 0
    if signalled == 0:
        return  # resuming is the same whichever rank was signalled

    resumed = torchrun(tmp_path, "logs_resumed", "--resume", str(out), "--steps", str(step + 3))
    try:
        _, err = resumed.communicate(timeout=60)
    finally:
        kill_job(resumed)
    logs = {rank: rank_stderr(tmp_path, "logs_resumed", rank) for rank in (0, 1)}
    assert resumed.returncode == 0, err + "".join(logs.values())
    assert f"resuming {out} at step {step}" in logs[0]
    assert last_printed_step(logs[0]) == last_printed_step(logs[1]) == step + 3
    assert checkpoint.load(RunCheckpoints(out).latest())["step"] == step + 3
    assert logged_steps(out) == list(range(1, step + 4))  # every step once, in order
    assert read_metrics(out / "metrics.jsonl")[-1]["status"] == "completed"

"""One writer per run folder (ganzoo.runlock): a second `ganzoo run` on a folder a live process
writes to fails at once, naming that process, with nothing written; a killed holder's lock is
taken over; a user's own recipe.toml in --out is never overwritten."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganzoo import runlock
from ganzoo.cli import cli
from ganzoo.runlock import LOCK_FILE, RunLock, RunLockedError
from ganzoo.runner import RECIPE_HEADER

GANZOO = Path(sys.executable).with_name("ganzoo")

# holds the lock of argv[1] until killed; with argv[2] == "fork", a forked child outlives it
HOLDER = textwrap.dedent("""
    import multiprocessing, sys, time
    from pathlib import Path
    from ganzoo.runlock import RunLock
    RunLock().acquire(Path(sys.argv[1]))
    child = None
    if sys.argv[2:] == ["fork"]:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))
        child.start()
    print("held", child.pid if child else "", flush=True)
    time.sleep(600)
""")


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("GANZOO_PLUGINS", raising=False)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    return errors[0]


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def start_holder(run_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), *extra], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = proc.stdout.readline()
    assert line.startswith("held"), line
    return proc, line.split()[1] if len(line.split()) > 1 else ""


def kill9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_second_run_fails_at_once_naming_the_live_run_and_takes_over_after_kill9(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gz_sleepy.py").write_text(textwrap.dedent("""
        import os, time
        from pathlib import Path
        from ganzoo import hookimpl

        @hookimpl
        def ganzoo_on_run_start(trainer):
            Path(os.environ["GZ_MARKER"]).write_text("started")
            time.sleep(600)
    """))
    marker = tmp_path / "started"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            [str(GANZOO), "run", str(tiny_recipe), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_PLUGINS": "gz_sleepy", "GZ_MARKER": str(marker),
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (out / "recipe.toml").read_text().startswith(RECIPE_HEADER)
        before = snapshot(out)

        started = time.monotonic()
        second = invoke("run", tiny_recipe, "--out", out)
        assert second.exit_code == 2, second.output
        message = one_error(second.output)
        assert f"pid {first.pid} on host" in message and "ganzoo run" in message, message
        assert "Nothing was written" in message and "--resume" in message and "another --out" in message
        assert time.monotonic() - started < 20  # before building anything
        assert snapshot(out) == before
    finally:
        kill9(first)

    third = invoke("run", tiny_recipe, "--out", out, "--steps", 1)  # the dead run's lock is free
    assert third.exit_code == 0, third.output
    assert (out / "checkpoints" / "step_000000001.safetensors").exists()
    assert (out / "recipe.toml").read_text().startswith(RECIPE_HEADER)  # its own earlier recipe.toml, rewritten
    assert (out / LOCK_FILE).read_text() == ""  # released: emptied, not deleted


def test_resume_of_a_run_another_process_holds_fails_then_works(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    assert invoke("run", tiny_recipe, "--out", out, "--steps", 1).exit_code == 0
    holder, _ = start_holder(out)
    try:
        before = snapshot(out)
        refused = invoke("run", "--resume", out, "--steps", 2)
        assert refused.exit_code == 2, refused.output
        message = one_error(refused.output)
        assert f"pid {holder.pid} on host" in message and "-c" in message, message
        assert snapshot(out) == before
    finally:
        kill9(holder)
    resumed = invoke("run", "--resume", out, "--steps", 2)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000000002.safetensors"


def test_a_users_recipe_toml_in_out_is_never_overwritten(tiny_recipe, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    mine = out / "recipe.toml"
    mine.write_text("# my experiment\n" + tiny_recipe.read_text())
    before = snapshot(out)
    for recipe in (tiny_recipe, mine):  # another recipe, or this very file
        result = invoke("run", recipe, "--out", out)
        assert result.exit_code == 2, result.output
        message = one_error(result.output)
        assert f"{mine}: this recipe.toml was not written by ganzoo" in message, message
        assert "Nothing was written" in message and "another --out" in message
        assert snapshot(out) == before


# ---- the lock itself -------------------------------------------------------------------------
def test_one_holder_at_a_time_and_release_frees_it(tmp_path):
    run_dir = tmp_path / "a" / "run"
    first, second = RunLock(), RunLock()
    assert second.acquire(run_dir, create=False) is False and not run_dir.exists()  # creates nothing
    assert first.acquire(run_dir) and first.held
    record = (run_dir / LOCK_FILE).read_text()
    assert f'"pid": {os.getpid()}' in record and '"host"' in record and '"started"' in record
    with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on host"):
        second.acquire(run_dir, create=False)
    with pytest.raises(RunLockedError):
        second.acquire(run_dir)
    first.release()
    first.release()  # twice is harmless
    assert (run_dir / LOCK_FILE).read_text() == ""
    with second:
        assert second.acquire(run_dir, create=False)
    assert not second.held


def test_a_lock_of_a_killed_process_is_taken_over_even_if_its_forked_child_lives(tmp_path):
    run_dir = tmp_path / "run"
    holder, child = start_holder(run_dir, "fork")
    try:
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} "):
            RunLock().acquire(run_dir)
        kill9(holder)
        assert runlock.pid_running(int(child))  # the forked child (a DataLoader worker, say) lives on
        lock = RunLock()
        assert lock.acquire(run_dir)  # but it closed its copy of the lock at the fork
        lock.release()
    finally:
        kill9(holder)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGKILL)


FORKED_CHILD_CHECK = """
import multiprocessing, os, sys, time
from pathlib import Path
from ganzoo import runlock
from ganzoo.runlock import RunLock

run_dir = Path(sys.argv[1])
lock = RunLock()
lock.acquire(run_dir)
child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
child.start()
try:
    os.close(lock._fd)  # the parent's descriptor closes (as at a kill -9) without an unlock
    runlock._HELD.discard(lock._fd)
    lock._fd = None
    other = RunLock()
    deadline = time.monotonic() + 10  # the child closes its copy right after the fork, but asynchronously
    while True:
        try:
            assert other.acquire(run_dir)
            break
        except runlock.RunLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    other.release()
finally:
    child.kill()
    child.join()
print("ok")
"""


def test_forked_children_do_not_keep_the_lock(tmp_path):
    # in a fresh interpreter: processes the test session forked earlier must not be in the picture
    result = subprocess.run([sys.executable, "-c", FORKED_CHILD_CHECK, str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_a_filesystem_without_locks_gets_a_warning(tmp_path, monkeypatch, capsys):
    class NoLocks:
        LOCK_EX, LOCK_NB = 2, 4

        @staticmethod
        def flock(fd, op):
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock, "fcntl", NoLocks)
    lock = RunLock()
    assert lock.acquire(tmp_path / "run")
    lock.release()
    assert "does not support file locks (No locks available)" in capsys.readouterr().err


def test_without_flock_a_dead_holders_file_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "fcntl", None)  # the O_EXCL fallback (Windows)
    run_dir = tmp_path / "run"
    first = RunLock()
    assert first.acquire(run_dir)
    with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on host"):
        RunLock().acquire(run_dir)
    first.release()
    assert not (run_dir / LOCK_FILE).exists()  # the file is the lock: removed on release

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = runlock.socket.gethostname()
    (run_dir / LOCK_FILE).write_text(f'{{"pid": {int(dead.stdout)}, "host": "{host}"}}\n')
    assert RunLock().acquire(run_dir, create=False) is False  # not taken over before the first write
    taker = RunLock()
    assert taker.acquire(run_dir)
    assert f'"pid": {os.getpid()}' in (run_dir / LOCK_FILE).read_text()
    taker.release()

    (run_dir / LOCK_FILE).write_text('{"pid": 1, "host": "elsewhere", "command": "ganzoo run x.toml"}\n')
    with pytest.raises(RunLockedError, match="pid 1 on host elsewhere, `ganzoo run x.toml`.*shared filesystem"):
        RunLock().acquire(run_dir)


def test_under_torchrun_only_rank_0_takes_the_lock(tiny_recipe, tmp_path, monkeypatch, pm, registry):
    from ganzoo import distributed, runner

    class PastTheLock(Exception):
        pass

    def init(world, device):
        raise PastTheLock(world.rank)

    out = tmp_path / "run"
    holder = RunLock()
    holder.acquire(out)
    monkeypatch.setattr(distributed, "init", init)  # no process group: stop where it would be joined
    monkeypatch.setenv("WORLD_SIZE", "2")
    options = dict(recipe=tiny_recipe, overrides=[], steps=None, out=out, resume=None)
    try:
        monkeypatch.setenv("RANK", "1")
        with pytest.raises(PastTheLock):
            runner.run_training(pm, registry, **options)
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(RunLockedError):
            runner.run_training(pm, registry, **options)
    finally:
        holder.release()

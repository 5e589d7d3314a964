"""One writer per run directory: a lock on ``RUN_DIR/.ganzoo.lock`` held while a run writes there.

On POSIX the lock is ``fcntl.flock``: the kernel drops it when the holding process ends, however
it ends (``kill -9`` and power cuts included), so a stale lock cannot exist and the next run just
takes it. The file itself only tells a second process who holds the lock (pid, host, command,
start time) and is emptied, never deleted, on release: deleting a flock file lets two
processes lock two different files of one name. Processes forked from the holder (DataLoader
workers) close their copy of the descriptor, so they never keep a lock after the run ends.
Elsewhere (Windows), the file is created with ``O_EXCL`` and holds the same record; a file
whose process is gone (same host, pid not running) is a stale lock and is taken over.

Shared filesystems: on NFS, Linux implements flock with the server's byte-range locks, so a run
on another host holds the lock too and the message names that host; its pid cannot be checked
from here, and if that host died, the server frees the lock when its lease expires (NFSv4:
about 90 s). On a mount with ``local_lock=flock`` or ``nolock``, locks are local to each host.
A filesystem without locks (``ENOLCK``) gets a warning and no lock.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from ganzoo.errors import GanzooError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".ganzoo.lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds (closed in forked children)
_FORK_HOOK = False


class RunLockedError(GanzooError):
    """Another live process writes to the run directory."""


class RunLock:
    """The lock of one run directory, taken by :meth:`acquire` and held until :meth:`release`.

    Example:
        >>> lock = RunLock()
        >>> lock.acquire(Path("runs/h2z"))  # RunLockedError if another process holds it
        >>> try:
        ...     train()
        ... finally:
        ...     lock.release()
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_dir: Path, *, create: bool = True) -> bool:
        """Take the lock of ``run_dir``; True once held.

        ``create=False`` writes nothing new: it takes the lock only if the directory and its lock
        file exist already (returns False otherwise), so a run can fail fast before it builds
        anything. Raises RunLockedError naming the holder when another live process holds it; an
        OSError when the lock file cannot be made.
        """
        if self._fd is not None:
            return True
        path = Path(run_dir) / LOCK_FILE
        if not create and not path.is_file():
            return False
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock_posix(path, create) if fcntl is not None else _lock_exclusive(path, create)
        if fd is None:
            return False
        self.path, self._fd = path, fd
        _HELD.add(fd)
        _close_in_forked_children()
        _write_record(fd)
        return True

    def release(self) -> None:
        """Give the lock up (nothing happens when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(fd)
        with contextlib.suppress(OSError):
            if fcntl is not None:
                os.ftruncate(fd, 0)  # the file stays: see the module docstring
        with contextlib.suppress(OSError):
            os.close(fd)
        if fcntl is None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_posix(path: Path, create: bool) -> int | None:
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if create:
            raise
        return None  # gone or not writable: the write that follows reports it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_record(path)
        os.close(fd)
        raise RunLockedError(_locked_message(path, holder)) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.close(fd)
            raise
        print(f"warning: {path.parent}: this filesystem does not support file locks ({exc.strerror}), so "
              "ganzoo cannot stop a second run from writing here at the same time: start only one.",
              file=sys.stderr, flush=True)
    return fd


def _lock_exclusive(path: Path, create: bool) -> int | None:
    """Without flock: the file's existence is the lock; a dead holder's file is taken over."""
    for _ in range(3):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            pass
        holder = _read_record(path)
        if not _stale(holder, path):
            raise RunLockedError(_locked_message(path, holder))
        if not create:
            return None  # taken over at the first write, not before
        aside = path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.replace(path, aside)  # only one of several racing processes moves this very file
        except FileNotFoundError:
            continue
        if _read_record(aside) != holder:  # another process took over in between: give its lock back
            try:
                os.replace(aside, path)
            except OSError:
                pass
            continue
        aside.unlink(missing_ok=True)
    raise RunLockedError(_locked_message(path, _read_record(path)))


def _close_in_forked_children() -> None:
    global _FORK_HOOK
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_locks)
        _FORK_HOOK = True


def _forget_locks() -> None:
    # a forked child shares the lock with its parent; closing its copy (never LOCK_UN, which
    # would release the parent's lock) lets the lock end with the run, not with the child
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


def _write_record(fd: int) -> None:
    argv = [os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(argv)[:500],
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
    except OSError:
        pass  # the record is for messages only; the lock holds without it


def _read_record(path: Path) -> dict:
    """The holder's record; {} when it is empty or unreadable (retried briefly: a new holder
    writes it just after taking the lock)."""
    for attempt in range(10):
        try:
            record = json.loads(path.read_text(encoding="utf-8", errors="replace") or "null")
            if isinstance(record, dict):
                return record
        except (OSError, ValueError):
            pass
        if attempt < 9:
            time.sleep(0.05)
    return {}


def _stale(holder: dict, path: Path) -> bool:
    """Whether the holder of a lock file is known to be gone: this host and its pid not running,
    or no record a minute after the file was made (its maker died between the two)."""
    pid = holder.get("pid")
    if not holder:
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime > 60
        return False
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_running(pid)


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked_message(path: Path, holder: dict) -> str:
    run_dir, pid, host = path.parent, holder.get("pid"), holder.get("host")
    if not holder:
        who = f"another process holds its lock ({path}; who it is was not recorded)"
        stop = "stop it"
    else:
        here = host == socket.gethostname()
        who = f"another ganzoo process is writing to it: pid {pid} on host {host}"
        if holder.get("command"):
            who += f", `{holder['command']}`"
        if holder.get("started"):
            who += f", started {holder['started']}"
        if not here:
            who += " (over a shared filesystem; if that host is down, its lock expires with its lease)"
        elif isinstance(pid, int) and not pid_running(pid):
            who += " (not running on this host now: a process it started, or one in another container, holds the lock)"
        stop = f"stop it (`kill {pid}`{'' if here else f' on {host}'} saves a checkpoint)"
    return (f"{run_dir}: {who}. Nothing was written. Wait for it to end, or {stop} and then continue with "
            f"`ganzoo run --resume {run_dir}`, or use another --out.")

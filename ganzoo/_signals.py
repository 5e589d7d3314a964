"""Graceful stops: SIGINT/SIGTERM ask the trainer to finish its step and save; a second
SIGINT aborts at once. DataLoader workers do not die of either signal on the spot, so a
Ctrl-C sent to the whole process group (a terminal does that) cannot kill a worker under the
trainer's feet.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

#: exit status of ``ganzoo run`` stopped by a signal: 128 + the signal number, as shells
#: report it (130 for SIGINT, 143 for SIGTERM), whether or not a checkpoint was written.
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


#: after a second Ctrl-C the cleanup (closing event files, joining threads) gets this long, then
#: the process exits regardless: "abort at once" must never turn into a hang
ABORT_GRACE_SECONDS = 10


class StopSignals:
    """Records the first SIGINT or SIGTERM; a second SIGINT aborts.

    The abort is a KeyboardInterrupt raised at once inside an :meth:`interruptible` block (the
    training step, a checkpoint write), and at the next entry into one otherwise: raised in the
    middle of logging or TensorBoard's writer it could leave a lock held and hang the exit.
    From the second SIGINT on, the process gets ``ABORT_GRACE_SECONDS`` to clean up before it
    exits with status 130 regardless, unless :meth:`disarm` is called.

    Example:
        >>> stop = StopSignals()
        >>> with stop.installed():
        ...     while not stop.requested:
        ...         with stop.interruptible():
        ...             train_one_step()
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.aborting = False
        self._depth = 0  # nesting of interruptible blocks
        self._abort_timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handler(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            _say(f"\n{name}: finishing this step and saving a checkpoint (press Ctrl-C again to abort without saving)")
        elif signum == signal.SIGINT and not self.aborting:
            self.aborting = True
            self._abort_timer = threading.Timer(ABORT_GRACE_SECONDS, _exit_now)
            self._abort_timer.daemon = True
            self._abort_timer.start()
            if self._depth:
                raise KeyboardInterrupt
        elif signum == signal.SIGTERM:
            _say(f"\n{name}: already stopping after this step (Ctrl-C aborts without saving)")

    @contextlib.contextmanager
    def interruptible(self):
        """A block a second Ctrl-C may interrupt at any point."""
        if self.aborting:
            raise KeyboardInterrupt
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def requested_anywhere(self, world, device) -> bool:
        """:attr:`requested` on any rank under torchrun (one small all-reduce), so that every
        rank stops after the same step; a rank stopping alone would leave the others waiting
        in the next gradient all-reduce forever."""
        if not world.distributed:
            return self.requested
        import torch
        import torch.distributed as dist

        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signum is None:
            self.signum = signal.SIGTERM  # stopped from outside, through another rank
        return bool(flag.item())

    def disarm(self) -> None:
        """The run has ended and cleaned up: cancel the forced exit of an abort."""
        if self._abort_timer is not None:
            self._abort_timer.cancel()

    @contextlib.contextmanager
    def installed(self):
        """Install the handlers for the duration of the block (main thread only)."""
        try:
            old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals cannot be handled here
            old = {}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _say(text: str) -> None:
    """Write from a signal handler straight to stderr's file descriptor: the interrupted code
    may be in the middle of a write to the same buffered stream, and a reentrant write raises."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (tests capture stderr)
        print(text, file=sys.stderr, flush=True)
        return
    try:
        os.write(fd, f"{text}\n".encode())
    except OSError:
        pass


def _exit_now() -> None:
    try:
        os.write(2, b"aborted: cleaning up took too long, exiting now\n")
    finally:
        os._exit(EXIT_SIGINT)


#: a DataLoader worker sent SIGTERM leaves this many seconds later (see ``ignore_in_worker``)
WORKER_GRACE_SECONDS = 10


def ignore_in_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave SIGINT/SIGTERM to the main process.

    A terminal sends Ctrl-C to the whole process group, and systemd or SLURM send SIGTERM to
    every process; a worker killed at once would break the step the trainer is finishing. So
    a worker ignores SIGINT, and on SIGTERM leaves quietly (status 0) a grace period later:
    long enough for the trainer to take its batch and shut the workers down itself, short
    enough that a parent terminating its workers at exit does not wait long.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _leave_soon)


def _leave_soon(signum: int, frame) -> None:
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(WORKER_GRACE_SECONDS)

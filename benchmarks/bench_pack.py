"""pack: wall time against one hashlib.sha256 pass over the same file, and peak RSS as the model grows.

    python benchmarks/bench_pack.py [--big-gib N]

Each measurement runs in a fresh interpreter (peak RSS is that process's ru_maxrss);
wall time is measured inside the process, so interpreter start-up is excluded on both
sides.  The store is on the same filesystem as the GGUF (so pack links, then hashes).
A last row times whole processes as a user starts them: `ollama-oci pack` (the console script
of the benchmark venv) against a Python process that only hashes the file, run alternately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from common import gemma, installed, make_big_gguf, measure

HASH = r"""
import hashlib, sys
h = hashlib.sha256(); buf = bytearray(1 << 20); m = memoryview(buf)
with open(ARGS[0], "rb", buffering=0) as f:
    while (n := f.readinto(m)):
        h.update(m[:n])
print(h.hexdigest())
"""

PACK = r"""
from ollama_oci import OllamaStore, Recipe, pack
r = pack(Recipe(files=[ARGS[0]]), "bench:latest", [OllamaStore(ARGS[1])], link_mode=ARGS[2])
print(r.manifest.layers[0].digest)
"""


PACK_WARM = r"""
import time
from ollama_oci import OllamaStore, Recipe, pack
pack(Recipe(files=[ARGS[0]]), "warmup:latest", [OllamaStore(ARGS[1] + "-warmup")], link_mode=ARGS[2])
t = time.perf_counter()
r = pack(Recipe(files=[ARGS[0]]), "bench:latest", [OllamaStore(ARGS[1])], link_mode=ARGS[2])
print("WARM", time.perf_counter() - t)
"""


def warm(path: str, work: str, mode: str, runs: int = 3) -> float:
    best = None
    for i in range(runs):
        store = os.path.join(work, f"warm-{mode}-{i}")
        _, _, out = measure(PACK_WARM, path, store, mode)
        t = float(out.split("WARM")[1])
        best = t if best is None else min(best, t)
        shutil.rmtree(store)
        shutil.rmtree(store + "-warmup")
    return best


def one(path: str, work: str, mode: str, runs: int = 3) -> tuple[float, float, float, float]:
    h_walls, p_walls, h_rss, p_rss = [], [], 0.0, 0.0
    for i in range(runs):
        w, r, out_h = measure(HASH, path)
        h_walls.append(w)
        h_rss = max(h_rss, r)
        store = os.path.join(work, f"models-{mode}-{i}")
        w, r, out_p = measure(PACK, path, store, mode)
        assert out_p.strip() == "sha256:" + out_h.strip(), (out_p, out_h)
        p_walls.append(w)
        p_rss = max(p_rss, r)
        shutil.rmtree(store)
    return min(h_walls), min(p_walls), h_rss, p_rss


def whole_process(path: str, work: str, rounds: int = 15) -> tuple[float, float, float, float]:
    """(median, best) wall of `python hash.py FILE` and of `ollama-oci pack FILE`, whole processes."""
    import statistics
    import subprocess
    import time
    py, cli = installed()
    script = os.path.join(work, "hash.py")
    with open(script, "w") as f:
        f.write(HASH.replace("ARGS[0]", "__import__('sys').argv[1]"))
    hs, ps = [], []
    for i in range(rounds):
        t = time.perf_counter()
        subprocess.run([py, script, path], stdout=subprocess.DEVNULL, check=True)
        hs.append(time.perf_counter() - t)
        store = os.path.join(work, f"cli-{i}")
        t = time.perf_counter()
        subprocess.run([cli, "pack", path, "--name", "bench:latest", "--models-dir", store],
                       stdout=subprocess.DEVNULL, check=True)
        ps.append(time.perf_counter() - t)
        shutil.rmtree(store)
    return statistics.median(hs), min(hs), statistics.median(ps), min(ps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-gib", type=float, default=4.0, help="size of the generated sparse GGUF")
    args = ap.parse_args()
    src = gemma()
    work = tempfile.mkdtemp(prefix="bench-pack-", dir=os.path.dirname(src))
    try:
        print("file                         mode      sha256 pass   pack      ratio   RSS hash  RSS pack")
        for mode in ("auto", "copy"):
            h, p, hr, pr = one(src, work, mode)
            print(f"gemma-3-270m (253 MB)        {mode:<8}  {h:8.3f} s  {p:8.3f} s  {p / h:5.2f}x  "
                  f"{hr:6.1f} MB  {pr:6.1f} MB   (fresh process: imports included)")
            w = warm(src, work, mode)
            print(f"gemma-3-270m (253 MB)        {mode:<8}  {h:8.3f} s  {w:8.3f} s  {w / h:5.2f}x  "
                  f"                     (second pack in a warm process)")
        hm, hb, pm, pb = whole_process(src, work)
        print(f"gemma-3-270m (253 MB)        auto      {hm:8.3f} s  {pm:8.3f} s  {pm / hm:5.2f}x  "
              f"(whole processes, medians; best {hb:.3f} s / {pb:.3f} s = {pb / hb:.2f}x)")
        big = os.path.join(work, "big.gguf")
        make_big_gguf(big, int(args.big_gib * (1 << 30)))
        measure(HASH, big)  # warm the page cache so neither side pays the first touch
        h, p, hr, pr = one(big, work, "auto", runs=2)
        print(f"generated sparse ({args.big_gib:g} GiB)    auto      {h:8.3f} s  {p:8.3f} s  {p / h:5.2f}x  "
              f"{hr:6.1f} MB  {pr:6.1f} MB")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

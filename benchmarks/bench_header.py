"""GGUF header reading: ollama-oci's reader vs gguf-py's GGUFReader, same file, same run.

    python benchmarks/bench_header.py [FILE.gguf]      (default: the real Gemma 3 270M, 262,144 tokens)

With OLLAMA_GGUF_READER=PROGRAM set, PROGRAM FILE is timed as a whole process beside `ollama-oci
inspect FILE`: a small program around Ollama's own `fs/ggml.Decode(f, -1)`, built from Ollama's
source (docs/benchmarks.md says how it was measured; it is not part of this repository).
"""

from __future__ import annotations

import sys

from common import best_of, gemma


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else gemma()
    # first, while this process is small (a child's ru_maxrss starts from its parent's RSS at fork):
    # the whole `ollama-oci inspect FILE` process, as deployed (the benchmark venv), and its peak RSS
    import os
    import statistics
    import subprocess
    import time

    from common import installed
    _, cli = installed()
    go = os.environ.get("OLLAMA_GGUF_READER")
    walls, start, go_walls, rss = [], [], [], 0.0
    for _ in range(21):          # round-robin: a slow moment of the machine falls on every row alike
        t = time.perf_counter()
        p = subprocess.Popen([cli, "inspect", path], stdout=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t)
        rss = max(rss, ru.ru_maxrss / 1024)
        t = time.perf_counter()
        subprocess.run([cli, "--version"], stdout=subprocess.DEVNULL, check=True)
        start.append(time.perf_counter() - t)
        if go:
            t = time.perf_counter()
            subprocess.run([go, path], stdout=subprocess.DEVNULL, check=True)
            go_walls.append(time.perf_counter() - t)
    lines = [f"`ollama-oci inspect FILE` process  median {statistics.median(walls) * 1000:8.1f} ms   min "
             f"{min(walls) * 1000:8.1f} ms   peak RSS {rss:.1f} MiB",
             f"`ollama-oci --version` process     median {statistics.median(start) * 1000:8.1f} ms   min "
             f"{min(start) * 1000:8.1f} ms   (interpreter, click)"]
    if go_walls:
        lines.append(f"Ollama's Go reader process         median {statistics.median(go_walls) * 1000:8.1f} ms   min "
                     f"{min(go_walls) * 1000:8.1f} ms   (OLLAMA_GGUF_READER; inspect / Go: "
                     f"{statistics.median(walls) / statistics.median(go_walls):.2f}x)")
    from ollama_oci import model_info, read_gguf

    def ours():
        with read_gguf(path) as g:
            model_info(g)

    from gguf import GGUFReader

    def theirs():
        r = GGUFReader(path)
        len(r.tensors)

    ours()  # warm the page cache and the tables
    o_med, o_min = best_of(ours, 7)
    t_med, t_min = best_of(theirs, 3)
    print(f"file: {path}")
    print(f"ollama-oci read_gguf+model_info  median {o_med * 1000:8.1f} ms   min {o_min * 1000:8.1f} ms")
    print(f"gguf-py GGUFReader               median {t_med * 1000:8.1f} ms   min {t_min * 1000:8.1f} ms")
    print(f"ratio (gguf-py / ollama-oci, medians): {t_med / o_med:.0f}x")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

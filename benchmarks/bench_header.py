"""GGUF header reading: ollama-oci's reader vs gguf-py's GGUFReader, same file, same run.

    python benchmarks/bench_header.py [FILE.gguf]      (default: the real Gemma 3 270M, 262,144 tokens)
"""

from __future__ import annotations

import sys

from common import best_of, gemma


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else gemma()
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


if __name__ == "__main__":
    main()

"""Merging a split GGUF set into a model store, against `cat` of the shards piped to one sha256 pass
(`openssl dgst -sha256`: coreutils' sha256sum is 5x slower here, with no SHA extensions).

    python benchmarks/bench_split.py      # BENCH_GIB=4 BENCH_SHARDS=4 BENCH_ROUNDS=3

The set is cut from a generated GGUF (one tensor per shard would be too few: the source has
BENCH_SHARDS * 8 tensors of random bytes) in llama.cpp's gguf-split layout. Both sides read the same
shards from the page cache; the merge also writes the merged blob into the store (page cache, fsync
at the end) and hashes it; `cat | openssl dgst` only reads and hashes, so a second baseline also
writes the bytes to a file with `tee` and syncs it: the floor for any tool that makes the file. Each round packs into a fresh
store. Peak RSS is the pack process's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))


GIB = float(os.environ.get("BENCH_GIB", "4"))
SHARDS = int(os.environ.get("BENCH_SHARDS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def make_source(path: str, total: int, n_tensors: int) -> None:
    """A GGUF with ``n_tensors`` F32 tensors of random bytes, ``total`` bytes of data in all."""
    per = (total // n_tensors) // 4 * 4
    key = b"general.architecture"
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, 1) + struct.pack("<Q", len(key)) + key
    head += struct.pack("<IQ", 8, 5) + b"llama"
    off = 0
    for i in range(n_tensors):
        name = f"blk.{i}.w".encode()
        head += struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, per // 4, 0, off)
        off += per + (-per % 32)
    head += b"\0" * (-len(head) % 32)
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(head)
        for _ in range(n_tensors):
            left = per
            while left:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
            f.write(b"\0" * (-per % 32))


def timed(cmd, shell=False) -> tuple[float, float]:
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(p.stderr.read().decode()[-500:])
    return time.perf_counter() - t, ru.ru_maxrss / 1024


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-split-", dir=os.environ.get("BENCH_DIR"))
    try:
        src = os.path.join(work, "src.gguf")
        # made in a child process: a child's ru_maxrss starts from the RSS of the process it was
        # forked from, so this one stays small
        subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {[HERE, os.path.join(REPO, 'tests')]!r}\n"
                        "from bench_split import make_source\nfrom gguf_factory import split_like_llama_cpp\n"
                        f"make_source({src!r}, {int(GIB * (1 << 30))}, {SHARDS * 8})\n"
                        f"split_like_llama_cpp({src!r}, {os.path.join(work, 'set')!r}, {SHARDS})"], check=True)
        shards = sorted(os.path.join(work, f) for f in os.listdir(work) if f.startswith("set-"))
        os.unlink(src)
        size = sum(os.path.getsize(p) for p in shards)
        # warm: the shards in the page cache, and page-cache pages backed (see bench_gateway.py)
        subprocess.run(f"cat {' '.join(shards)} > /dev/null", shell=True, check=True)
        warm = os.path.join(work, "warm")
        subprocess.run(["dd", "if=/dev/zero", f"of={warm}", "bs=1M", f"count={int(size / (1 << 20)) + 256}"],
                       check=True, capture_output=True)
        os.unlink(warm)
        cat, tee, merge, rss = [], [], [], []
        out = os.path.join(work, "merged-by-tee")
        for r in range(ROUNDS):
            cat.append(timed(f"cat {' '.join(shards)} | openssl dgst -sha256", shell=True)[0])
            # the floor for anything that writes the merged file: read, write, hash, make it durable
            tee.append(timed(f"cat {' '.join(shards)} | tee {out} | openssl dgst -sha256 && sync {out}", shell=True)[0])
            os.unlink(out)
            store = os.path.join(work, f"store{r}")
            wall, peak = timed([sys.executable, "-m", "ollama_oci.cli", "pack", shards[0], "--name", "big:split",
                                "--models-dir", store, "-q"])
            merge.append(wall)
            rss.append(peak)
            shutil.rmtree(store)
        print(f"split set: {SHARDS} shards, {size / 1e9:.2f} GB; {ROUNDS} rounds\n")
        print("| | best | median | peak RSS |")
        print("|---|---|---|---|")
        print(f"| `cat shards | openssl dgst -sha256` | {min(cat):.2f} s | {statistics.median(cat):.2f} s | |")
        print(f"| `cat shards | tee FILE | openssl dgst -sha256 && sync FILE` | {min(tee):.2f} s | "
              f"{statistics.median(tee):.2f} s | |")
        print(f"| `ollama-oci pack SHARD` (merge into the store) | {min(merge):.2f} s | {statistics.median(merge):.2f} s "
              f"| {max(rss):.1f} MiB |")
        print(f"| pack / cat-and-hash | {min(merge) / min(cat):.2f}x | {statistics.median(merge) / statistics.median(cat):.2f}x | |")
        print(f"| pack / cat-tee-hash-sync | {min(merge) / min(tee):.2f}x | {statistics.median(merge) / statistics.median(tee):.2f}x | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

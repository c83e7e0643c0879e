"""Bundle import and export against tar and zstd on the same model.

    python benchmarks/bench_bundle.py      # BENCH_ROUNDS=5; BENCH_GIB=1 adds a generated model (0 skips it)

`ollama-oci import` unpacks a bundle into an empty Ollama store, verifying every blob and fsyncing it
before anything is visible; the references unpack the same archive with `tar -x` (no verification,
no fsync), and with `tar -x` followed by one `openssl dgst -sha256` pass over the blobs (the hashing
the import also does; still no fsync). `.tar.zst` is compared with `zstd -d -c | tar -x`. Export is compared
with `tar -cf - | zstd -3 -T0`, and with the same pipeline followed by `sync FILE` (the bundle made
durable, as the export makes it before giving it its name). Every command is its own process (the ollama-oci one from the
benchmark venv, as deployed), round-robin after a `sync`, best and median. Start-up is its own row
(`ollama-oci export --help`: the interpreter, click, the command's modules), and the export's ratio
is also given without it.
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

from common import gemma, installed

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GIB = float(os.environ.get("BENCH_GIB", "1"))


def random_gguf(path: str, data_bytes: int) -> None:
    """A GGUF with one F32 tensor of random bytes (zeros would make zstd's side trivial)."""
    key = b"general.architecture"
    head = (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, 5) + b"llama"
            + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, data_bytes // 4, 0, 0))
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        left = data_bytes
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n


def timed(cmd: str) -> float:
    subprocess.run("sync", check=True)
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def one_model(cli: str, gguf: str, work: str, label: str) -> list[str]:
    models = os.path.join(work, "models")
    subprocess.run([cli, "pack", gguf, "--name", "bench/m:1", "--models-dir", models, "-q"], check=True)
    tar, tzst = os.path.join(work, "m.tar"), os.path.join(work, "m.tar.zst")
    subprocess.run([cli, "export", "bench/m:1", "-o", tar, "--models-dir", models, "-q"], check=True)
    subprocess.run([cli, "export", "bench/m:1", "-o", tzst, "--models-dir", models, "-q"], check=True)
    out = os.path.join(work, "out")
    rows: dict[str, list[float]] = {k: [] for k in ("tar", "tarsum", "imp", "zt", "zimp", "etar", "etarsync", "eimp",
                                                    "start")}

    def fresh() -> str:
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        return out

    cmds = {
        "tar": lambda: f"tar -xf {tar} -C {fresh()}",
        "tarsum": lambda: (f"tar -xf {tar} -C {fresh()} && "
                           f"find {out}/blobs -type f -exec cat {{}} + | openssl dgst -sha256"),
        "imp": lambda: f"{cli} import {tar} --models-dir {fresh()} -q",
        "zt": lambda: f"zstd -d -q -c {tzst} | tar -xf - -C {fresh()}",
        "zimp": lambda: f"{cli} import {tzst} --models-dir {fresh()} -q",
        "etar": lambda: f"tar -C {models} -cf - manifests blobs | zstd -3 -T0 -q -c > {fresh()}/x.tar.zst",
        "etarsync": lambda: (f"tar -C {models} -cf - manifests blobs | zstd -3 -T0 -q -c > {fresh()}/x.tar.zst && "
                             f"sync {out}/x.tar.zst"),
        "eimp": lambda: f"{cli} export bench/m:1 -o {fresh()}/x.tar.zst --models-dir {models} -q",
        # start-up, its own row: the interpreter, click and the export command's modules
        "start": lambda: f"{cli} export --help",
    }
    keys = list(cmds)
    for r in range(ROUNDS):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            rows[k].append(timed(cmds[k]()))
    shutil.rmtree(out, ignore_errors=True)

    def cell(k: str) -> str:
        return f"{min(rows[k]):.3f} s | {statistics.median(rows[k]):.3f} s"

    def ratio(ref: str, k: str) -> str:
        return f"{min(rows[ref]) / min(rows[k]):.2f}x, {statistics.median(rows[ref]) / statistics.median(rows[k]):.2f}x"

    def without_start(ref: str, k: str) -> str:
        start_min, start_med = min(rows["start"]), statistics.median(rows["start"])
        return (f"{min(rows[ref]) / (min(rows[k]) - start_min):.2f}x, "
                f"{statistics.median(rows[ref]) / (statistics.median(rows[k]) - start_med):.2f}x")

    size = os.path.getsize(tar)
    return [
        f"| {label} ({size / 1e9:.2f} GB tar) | best | median | vs reference (best, median) |",
        "|---|---|---|---|",
        f"| `tar -xf` | {cell('tar')} | reference |",
        f"| `tar -xf` + `openssl dgst` of the blobs | {cell('tarsum')} | {ratio('tar', 'tarsum')} of tar |",
        f"| `ollama-oci import x.tar` | {cell('imp')} | **{ratio('tar', 'imp')}** of tar; **{ratio('tarsum', 'imp')}** of tar + hash |",
        f"| `zstd -d -c \\| tar -xf -` | {cell('zt')} | reference |",
        f"| `ollama-oci import x.tar.zst` | {cell('zimp')} | **{ratio('zt', 'zimp')}** |",
        f"| `tar -cf - \\| zstd -3 -T0` | {cell('etar')} | reference |",
        f"| `tar -cf - \\| zstd -3 -T0 > x && sync x` | {cell('etarsync')} | durable reference |",
        f"| `ollama-oci export -o x.tar.zst` | {cell('eimp')} | **{ratio('etar', 'eimp')}**; "
        f"{ratio('etarsync', 'eimp')} of the durable one; {without_start('etar', 'eimp')} without start-up |",
        f"| start-up: `ollama-oci export --help` | {cell('start')} | part of every ollama-oci row |",
        "",
    ]


def main() -> None:
    _, cli = installed()
    lines = []
    work = tempfile.mkdtemp(prefix="bench-bundle-", dir=os.environ.get("BENCH_DIR"))
    try:
        lines += one_model(cli, gemma(), work, "Gemma 3 270M")
        if GIB > 0:
            shutil.rmtree(work)
            os.makedirs(work)
            big = os.path.join(work, "big.gguf")
            random_gguf(big, int(GIB * (1 << 30)))
            lines += one_model(cli, big, work, f"generated {GIB:g} GiB model")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{ROUNDS} rounds\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()

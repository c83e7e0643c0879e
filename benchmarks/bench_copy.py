"""Registry-to-registry copy and bundle export, against skopeo and tar + zstd, same run.

    python benchmarks/bench_copy.py

Two Debian docker-registry instances on 127.0.0.1; the real Gemma 3 270M.  Each tool runs
as its own process (wall time and peak RSS from wait4), round-robin after a `sync`, 4 rounds,
best kept.  skopeo copies the OCI-typed form of the same artifact (it refuses Ollama's
Docker schema 2 form); ollama-oci copies the Ollama form.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from bench_registry import interleaved, report, run  # noqa: E402
from common import gemma, installed  # noqa: E402
from registry_env import Registry  # noqa: E402


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-copy-")
    _, cli = installed()  # ollama-oci as pip installs it, in its own venv
    try:
        models = os.path.join(work, "models")
        subprocess.run([cli, "pack", gemma(), "--name", "gemma3:270m", "--models-dir", models,
                        "-q"], check=True, capture_output=True)
        a = Registry(os.path.join(work, "a")).start()
        for tag, fmt in (("1", "keep"), ("oci", "oci")):
            subprocess.run([cli, "push", "gemma3:270m", f"{a.host}/ml/gemma3:{tag}",
                            "--format", fmt, "--plain-http", "--models-dir", models, "-q"], check=True)
        size = 253_113_024

        def fresh():
            return Registry(os.path.join(work, f"b-{time.monotonic_ns()}")).start()

        def ours():
            b = fresh()
            try:
                return run([cli, "copy", f"{a.host}/ml/gemma3:1", f"{b.host}/ml/gemma3:1",
                            "--plain-http", "-q"])
            finally:
                b.kill()
                shutil.rmtree(b.workdir, ignore_errors=True)

        def skopeo():
            b = fresh()
            try:
                return run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                            f"docker://{a.host}/ml/gemma3:oci", f"docker://{b.host}/ml/gemma3:oci"])
            finally:
                b.kill()
                shutil.rmtree(b.workdir, ignore_errors=True)

        print(f"model blob: {size:,} bytes\n")
        report("REGISTRY -> REGISTRY (fresh target each run; 4 interleaved rounds)", interleaved(4, [
            ("skopeo copy docker:// docker://", skopeo), ("ollama-oci copy (mirror)", ours)]), size)
        a.kill()

        out = os.path.join(work, "out")
        os.makedirs(out)

        def export_ours():
            return run([cli, "export", "gemma3:270m", "-o", f"{out}/ours.tar.zst",
                        "--models-dir", models, "-q"])

        def export_tar():
            return run(f"cd {models} && tar -cf - manifests blobs | zstd -3 -T0 -q -f -o {out}/tar.tar.zst",
                       shell=True)

        def export_tar_plain():
            return run(f"cd {models} && tar -cf {out}/tar.tar manifests blobs", shell=True)

        def export_ours_plain():
            return run([cli, "export", "gemma3:270m", "-o", f"{out}/ours.tar",
                        "--models-dir", models, "-q"])

        print()
        report("EXPORT .tar.zst (zstd level 3, all cores; 4 interleaved rounds)", interleaved(4, [
            ("tar | zstd -3 -T0", export_tar), ("ollama-oci export .tar.zst", export_ours)]), size)
        print()
        report("EXPORT .tar (no compression)", interleaved(4, [
            ("tar -cf", export_tar_plain), ("ollama-oci export .tar", export_ours_plain)]), size)
        for f in ("ours.tar.zst", "tar.tar.zst"):
            print(f"  size of {f}: {os.path.getsize(os.path.join(out, f)):,} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A pack killed with SIGKILL at any point leaves nothing half-done visible, and a re-run succeeds.
Two packs of the same GGUF at once both succeed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY
from gguf_factory import make_big_gguf as make_gguf
from ollama_oci import OCILayout, OllamaStore, parse_name

DRIVER = os.path.join(REPO, "tests", "crash_driver.py")


def check_invariants(models: str, oci: str) -> None:
    """No manifest points at a missing, short or wrong blob; the OCI index is valid JSON."""
    store = OllamaStore(models)
    _, problems = store.verify()
    assert problems == [], problems
    if os.path.exists(os.path.join(oci, "index.json")):
        with open(os.path.join(oci, "index.json")) as f:
            json.load(f)
        _, problems = OCILayout(oci).verify()
        assert problems == [], problems
    # nothing with a final blob name is a partial file: every sha256-<hex> hashes to its name
    blobs = os.path.join(models, "blobs")
    if os.path.isdir(blobs):
        import hashlib
        for name in os.listdir(blobs):
            if name.startswith("sha256-"):
                with open(os.path.join(blobs, name), "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == name[7:], name


def _driver(n, gguf, models, oci, mode):
    return subprocess.run([sys.executable, DRIVER, str(n), gguf, models, oci, mode], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_sigkill_at_every_filesystem_operation(tmp_path, mode):
    gguf = str(tmp_path / "m.gguf")
    with open(TINY, "rb") as f, open(gguf, "wb") as g:
        g.write(f.read())
    models, oci = str(tmp_path / "models"), str(tmp_path / "oci")
    n = 1
    killed = 0
    while True:
        cp = _driver(n, gguf, models, oci, mode)
        if cp.returncode == 0:
            break
        assert cp.returncode == -signal.SIGKILL, cp.stderr
        killed += 1
        check_invariants(models, oci)
        n += 1
        assert n < 500
    assert killed >= 20  # the pack really was cut at many points
    check_invariants(models, oci)
    assert [e.name for e in OllamaStore(models).list()] == [parse_name("crash:test")]
    assert [e.name for e in OCILayout(oci).list()] == [parse_name("crash:test")]


@pytest.mark.slow
def test_sigkill_during_large_copy_then_rerun(tmp_path):
    gguf = str(tmp_path / "big.gguf")
    make_gguf(gguf, 192 << 20)
    models, oci = str(tmp_path / "models"), str(tmp_path / "oci")
    args = [sys.executable, "-m", "ollama_oci.cli", "pack", gguf, "--name", "big", "--models-dir", models,
            "--oci-layout", oci, "--link-mode", "copy", "-q"]
    t0 = time.monotonic()
    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    full = time.monotonic() - t0
    import shutil
    shutil.rmtree(models)
    shutil.rmtree(oci)
    for i in range(8):
        p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (i + 0.5) / 8)
        p.send_signal(signal.SIGKILL)
        p.wait()
        check_invariants(models, oci)
    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    check_invariants(models, oci)
    assert len(OllamaStore(models).list()) == 1 and len(OCILayout(oci).list()) == 1


def test_two_packs_of_the_same_gguf_at_once(tmp_path):
    gguf = str(tmp_path / "m.gguf")
    make_gguf(gguf, 64 << 20)
    models, oci = str(tmp_path / "models"), str(tmp_path / "oci")
    procs = []
    for i in range(2):
        for name in ("same:tag", f"other{i}"):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ollama_oci.cli", "pack", gguf, "--name", name, "--models-dir", models,
                 "--oci-layout", oci, "--link-mode", "copy", "-q"], cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    check_invariants(models, oci)
    assert sorted(e.name.display for e in OllamaStore(models).list()) == ["other0:latest", "other1:latest", "same:tag"]
    assert sorted(e.name.display for e in OCILayout(oci).list()) == ["other0:latest", "other1:latest", "same:tag"]
    assert not [n for n in os.listdir(os.path.join(models, "blobs")) if not n.startswith("sha256-")]


def test_write_behind_flushes_while_writing_and_never_twice_at_once(tmp_path, monkeypatch):
    """fsutil.WriteBehind: a file being written goes to disk every `every` bytes, on a thread, one
    flush at a time, and close() waits for the flush in progress (so the fd is never closed under it)."""
    import threading

    from ollama_oci import fsutil
    calls, running, overlap = [], [0], []
    release = threading.Event()
    real = os.fdatasync

    def slow_fdatasync(fd):
        running[0] += 1
        overlap.append(running[0])
        calls.append(fd)
        release.wait(5)
        real(fd)
        running[0] -= 1
    monkeypatch.setattr(fsutil.os, "fdatasync", slow_fdatasync)
    path = tmp_path / "f"
    with open(path, "wb") as f:
        wb = fsutil.WriteBehind(f.fileno(), every=1 << 20)
        block = b"x" * (256 << 10)
        for _ in range(3):               # 768 KiB: not due yet
            f.write(block)
            wb.wrote(f.tell())
        assert calls == []
        for _ in range(8):               # past 1 MiB: one flush starts; the next ones are skipped while it runs
            f.write(block)
            f.flush()
            wb.wrote(f.tell())
        for _ in range(500):             # the flush runs on its thread: wait (bounded) until it has begun
            if calls:
                break
            time.sleep(0.01)
        assert calls == [f.fileno()]
        release.set()
        wb.close()
        assert wb._thread is None
        f.write(block * 8)               # due again after the first flush ended
        f.flush()
        wb.wrote(f.tell())
        wb.close()
    assert len(calls) == 2 and max(overlap) == 1
    assert path.stat().st_size == 19 * (256 << 10)

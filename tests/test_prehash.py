"""The console script hashes the GGUFs a `pack` names before it loads the program (prehash.py);
staging takes that digest only for the same, unchanged file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from conftest import TINY, run_cli
from ollama_oci import fsutil, prehash
from ollama_oci.console import gguf_args


@pytest.fixture(autouse=True)
def _no_leftover_jobs():
    prehash.cancel()
    yield
    prehash.cancel()


def _sha(path) -> str:
    return "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_staging_takes_the_digest_hashed_ahead(tmp_path, monkeypatch):
    src = tmp_path / "m.gguf"
    shutil.copyfile(TINY, src)
    assert prehash.start(str(src))
    prehash._jobs[next(iter(prehash._jobs))].finished.wait(10)

    def no_second_pass(*a, **k):
        raise AssertionError("hashed twice")
    monkeypatch.setattr(fsutil, "hash_stream", no_second_pass)
    seen = []
    st = fsutil.stage_file(str(src), str(tmp_path / "tmp"), link_mode="hardlink",
                           progress=lambda done, total: seen.append((done, total)))
    assert st.digest == _sha(src) and st.size == os.path.getsize(src)
    assert seen[-1] == (st.size, st.size)
    assert prehash.pending() == 0
    fsutil.discard_staged(st)


def test_a_file_changed_after_the_hash_started_is_hashed_again(tmp_path):
    src = tmp_path / "m.gguf"
    shutil.copyfile(TINY, src)
    assert prehash.start(str(src))
    prehash._jobs[next(iter(prehash._jobs))].finished.wait(10)
    time.sleep(0.01)
    with open(src, "r+b") as f:          # same size, other bytes, a newer mtime
        f.seek(100)
        f.write(b"\xff" * 8)
    st = fsutil.stage_file(str(src), str(tmp_path / "tmp"), link_mode="hardlink")
    assert st.digest == _sha(src)          # the new bytes' digest, not the old one's
    fsutil.discard_staged(st)


def test_a_copy_cancels_the_hash_started_ahead(tmp_path):
    src = tmp_path / "m.gguf"
    shutil.copyfile(TINY, src)
    prehash.start(str(src))
    job = next(iter(prehash._jobs.values()))
    st = fsutil.stage_file(str(src), str(tmp_path / "tmp"), link_mode="copy")
    assert st.digest == _sha(src)
    assert job.cancelled and prehash.pending() == 0
    fsutil.discard_staged(st)


def test_start_refuses_what_is_not_a_regular_file(tmp_path):
    assert not prehash.start(str(tmp_path))
    assert not prehash.start(str(tmp_path / "missing.gguf"))
    assert prehash.pending() == 0


@pytest.mark.parametrize("argv, want", [
    (["pack", "a.gguf", "--name", "m:1"], ["a.gguf"]),
    (["-v", "pack", "A.GGUF", "b.gguf", "--models-dir", "x"], ["A.GGUF", "b.gguf"]),
    (["pack", "Modelfile"], []),
    (["push", "a.gguf"], []),
    (["pack", "a.gguf", "--link-mode", "copy"], []),
    (["pack", "a.gguf", "--link-mode=copy"], []),
    (["pack", "a.gguf", "--help"], []),
    (["pack", "--", "-odd.gguf"], []),     # not hashed ahead, only packed as usual
    ([], []),
])
def test_which_arguments_are_hashed_ahead(argv, want):
    assert gguf_args(argv) == want


def test_the_console_script_packs_with_the_digest_hashed_ahead(tmp_path):
    src = tmp_path / "m.gguf"
    shutil.copyfile(TINY, src)
    cp = run_cli("pack", src, "--name", "m:1", "--models-dir", tmp_path / "models", "--json", check=0)
    model = next(x for x in json.loads(cp.stdout)["layers"] if x["kind"] == "model")
    assert model["digest"] == _sha(src)
    blob = tmp_path / "models" / "blobs" / model["digest"].replace(":", "-")
    assert _sha(blob) == model["digest"]

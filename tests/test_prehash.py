"""The console script hashes the GGUFs a `pack` names, and the store blobs an `export` names, before
it loads the program (prehash.py); staging and export take that digest only for the same, unchanged
file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from conftest import TINY, run_cli
from ollama_oci import fsutil, prehash
from ollama_oci.console import export_blobs, gguf_args


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


@pytest.fixture
def big_model(tmp_path):
    """A store holding ``m:1``, whose model blob is 2 MiB (hashed ahead) and config small (not)."""
    from gguf_factory import make_big_gguf

    from ollama_oci import OllamaStore, Recipe, pack, parse_name
    make_big_gguf(str(tmp_path / "big.gguf"), 2 << 20)
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[str(tmp_path / "big.gguf")]), "m:1", [store])
    m = store.get_manifest(parse_name("m:1"))[0]
    blob = store.find_blob(next(d for d in m.layers if d.kind == "model").digest)
    return store.root, blob


def test_which_blobs_an_export_hashes_ahead(big_model, monkeypatch, tmp_path):
    root, blob = big_model
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    assert export_blobs(["export", "m:1", "-o", "x.tar.zst", "--models-dir", root]) == [blob]
    assert export_blobs(["-v", "export", "--output=x.tar", f"--models-dir={root}", "-q", "--json",
                         "--level", "5", "m:1", "registry.ollama.ai/library/m:1"]) == [blob]   # once
    assert export_blobs(["export", "library/m:1", "-ox.tar", "--models-dir", root, "--verbose"]) == [blob]
    monkeypatch.setenv("OLLAMA_MODELS", root)
    assert export_blobs(["export", "m:1", "-o", "x.tar"]) == [blob]
    for argv in (["export", "m:1", "-o", "x.tar", "--oci-layout", root],   # not the Ollama store
                 ["export", "m:1", "-o", "x.tar", "--help"],
                 ["export", "m:1", "-o", "x.tar", "--something-new"],
                 ["export", "m:1", "-o"],
                 ["export", "M:1", "-o", "x.tar"],               # case: left to the program's lookup
                 ["export", "m", "-o", "x.tar"],                 # m:latest is not there
                 ["export", "localhost:5000/m:1", "-o", "x.tar"],
                 ["export", "../m:1", "-o", "x.tar"],
                 ["export", "m@sha256:" + "0" * 64, "-o", "x.tar"],
                 ["pack", "m:1"], []):
        assert export_blobs(argv) == [], argv


def test_a_manifest_cannot_send_the_hash_ahead_outside_the_store(tmp_path, monkeypatch):
    """The manifest is untrusted: a digest that is not sha256 and 64 hex digits, or a blob that is a
    symbolic link (to a big file elsewhere), is not hashed ahead."""
    root = tmp_path / "models"
    outside = tmp_path / "secret"
    outside.write_bytes(b"x" * (2 << 20))
    good = "sha256:" + "a" * 64
    (root / "blobs").mkdir(parents=True)
    os.symlink(outside, root / "blobs" / ("sha256-" + "a" * 64))
    d = root / "manifests" / "registry.ollama.ai" / "library" / "m"
    d.mkdir(parents=True)
    layers = [{"digest": "sha256:../../secret"}, {"digest": "sha256:" + "A" * 64}, {"digest": good},
              {"digest": 5}, "not a layer"]
    (d / "latest").write_text(json.dumps({"config": None, "layers": layers}))
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    assert export_blobs(["export", "m", "-o", "x.tar"]) == []
    (d / "latest").write_text("{not json")
    assert export_blobs(["export", "m", "-o", "x.tar"]) == []


def test_the_console_script_exports_with_the_hash_started_ahead(big_model, tmp_path):
    """The bundle's blobs are the store's (checked by importing it, which verifies each)."""
    from ollama_oci import OllamaStore
    root, blob = big_model
    for out in ("x.tar", "x.tar.zst"):
        run_cli("export", "m:1", "-o", tmp_path / out, "--models-dir", root, "-q", check=0)
        run_cli("import", tmp_path / out, "--models-dir", tmp_path / ("back-" + out), "-q", check=0)
        back = OllamaStore(str(tmp_path / ("back-" + out)))
        assert back.verify()[1] == [] and _sha(back.find_blob(_sha(blob))) == _sha(blob)

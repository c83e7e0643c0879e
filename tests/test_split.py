"""Split GGUF sets packed into one model blob, byte for byte what ``ollama create`` writes (through
``llama-quantize ... COPY``): for shards cut from a llama.cpp-written file, the original file.

The shards are written by the tests in llama.cpp's ``llama-gguf-split`` layout
(``gguf_factory.split_like_llama_cpp``) from the real Gemma 3 270M.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import GEMMA_SHA256, GEMMA_SIZE, REPO, SHARED, run_cli
from gguf_factory import split_like_llama_cpp
from ollama_oci import OllamaStore, Recipe, pack, parse_name
from ollama_oci.errors import InvalidInput, NotFound
from ollama_oci.gguf_header import read_gguf


@pytest.fixture(scope="module")
def shards(gemma_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    return {n: split_like_llama_cpp(gemma_path, str(d / f"gemma-{n}"), n) for n in (3, 7)}


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 7])
def test_any_shard_packs_the_original_file(tmp_path, shards, gemma_path, n):
    for i, shard in enumerate([shards[n][0], shards[n][n // 2], shards[n][-1]]):
        store = OllamaStore(str(tmp_path / f"m{i}"))
        res = pack(Recipe(files=[shard]), "gemma3:split", [store])
        weights = res.manifest.layers[0]
        assert str(weights.digest) == "sha256:" + GEMMA_SHA256 and weights.size == GEMMA_SIZE
        assert [layer.kind for layer in res.manifest.layers].count("model") == 1
        assert store.verify()[1] == []
        assert res.config.file_type == "Q4_K_M" and res.config.model_family == "gemma3"
    # every tensor's bytes, read back from the merged blob, equal the original's
    with read_gguf(gemma_path) as a, read_gguf(store.blob_path(weights.digest)) as b:
        assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
        for ta, tb in list(zip(a.tensors, b.tensors))[::29]:
            sa, sb = a.data_offset + ta.offset, b.data_offset + tb.offset
            assert a._mm[sa:sa + ta.n_bytes] == b._mm[sb:sb + tb.n_bytes]
        assert "split.no" not in b.kv and "split.count" not in b.kv


@pytest.mark.slow
def test_every_shard_given_or_a_modelfile_from_a_shard(tmp_path, shards):
    store = OllamaStore(str(tmp_path / "all"))
    res = pack(Recipe(files=list(reversed(shards[3]))), "gemma3:all", [store])
    assert [str(layer.digest) for layer in res.manifest.layers if layer.kind == "model"] == ["sha256:" + GEMMA_SHA256]
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {shards[3][1]}\nPARAMETER temperature 0.5\n")
    cp = run_cli("pack", "-f", mf, "--name", "gemma3:mf", "--models-dir", tmp_path / "mf", "--json", check=0)
    doc = json.loads(cp.stdout)
    assert [layer["digest"] for layer in doc["layers"] if layer["kind"] == "model"] == ["sha256:" + GEMMA_SHA256]
    cp = run_cli("inspect", shards[7][3], "--json", check=0)
    doc = json.loads(cp.stdout)
    assert doc["split_set"]["merged_size"] == GEMMA_SIZE and len(doc["split_set"]["shards"]) == 7
    assert doc["tensor_count"] == 236 and doc["architecture"] == "gemma3"
    assert "7 shards" in run_cli("inspect", shards[7][0], check=0).stdout


def test_missing_duplicate_and_foreign_shards_are_named(tmp_path, shards):
    d = tmp_path / "set"
    d.mkdir()
    for p in shards[3]:
        shutil.copy(p, d)
    names = sorted(os.listdir(d))
    os.unlink(d / names[1])
    with pytest.raises(NotFound, match=r"shard gemma-3-00002-of-00003.gguf is missing"):
        pack(Recipe(files=[str(d / names[0])]), "x:1", [OllamaStore(str(tmp_path / "m"))])
    # a shard of another cut of the same model in its place
    shutil.copy(shards[7][1], d / names[1])
    with pytest.raises(InvalidInput, match=r"gemma-3-00002-of-00003.gguf: .*(another split set|its name says)"):
        pack(Recipe(files=[str(d / names[0])]), "x:1", [OllamaStore(str(tmp_path / "m"))])
    # the same shard twice, under names that do not follow the rule
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(shards[3][0], loose / "a.gguf")
    shutil.copy(shards[3][1], loose / "b.gguf")
    shutil.copy(shards[3][1], loose / "c.gguf")
    with pytest.raises(InvalidInput, match=r"c.gguf: shard 2 of 3 twice"):
        pack(Recipe(files=[str(loose / "a.gguf"), str(loose / "b.gguf"), str(loose / "c.gguf")]), "x:1",
             [OllamaStore(str(tmp_path / "m"))])
    assert not (tmp_path / "m" / "manifests").exists()
    cp = run_cli("pack", d / names[0], "--name", "x:1", "--models-dir", tmp_path / "cli")
    assert cp.returncode == 3 and "gemma-3-00002-of-00003.gguf" in cp.stderr


def test_a_gguf_py_written_set(tmp_path):
    """gguf-py's own split writer (shared/fixtures): a set that was never one file merges into a
    model that reads back whole."""
    first = os.path.join(SHARED, "derived", "gguf-py-sharded", "tiny-00001-of-00003.gguf")
    if not os.path.exists(first):
        pytest.skip(f"shared GGUF fixtures not found at {SHARED}")
    store = OllamaStore(str(tmp_path / "m"))
    res = pack(Recipe(files=[first]), "tiny:split", [store])
    model = res.manifest.layers[0]
    with read_gguf(store.blob_path(model.digest)) as g:
        total = sum(len(read_gguf(os.path.join(os.path.dirname(first), f"tiny-0000{i}-of-00003.gguf")).tensors)
                    for i in (1, 2, 3))
        assert len(g.tensors) == total and not any(k.startswith("split.") for k in g.kv)
        assert list(g.kv)[-2:] == ["general.quantization_version", "general.file_type"]
        for t in g.tensors:
            assert g.data_offset + t.offset + t.n_bytes <= g.file_size
    assert store.verify()[1] == []


@pytest.mark.slow
def test_sigkill_during_a_merge_leaves_nothing_visible(tmp_path, shards):
    models = tmp_path / "models"
    env = dict(os.environ)
    env.pop("OLLAMA_MODELS", None)
    env["OLLAMA_OCI_PROGRESS_INTERVAL"] = "0.01"
    proc = subprocess.Popen([sys.executable, "-m", "ollama_oci.cli", "pack", shards[7][0], "--name", "g:1",
                             "--models-dir", str(models)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs = models / "blobs"
    deadline = time.time() + 30
    while time.time() < deadline:
        tmp = [p for p in blobs.iterdir() if p.name.startswith(".tmp")] if blobs.exists() else []
        if any(p.stat().st_size > 10_000_000 for p in tmp):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (models / "manifests").exists() or not any((models / "manifests").rglob("*"))
    assert not any(p.name.startswith("sha256-") and p.stat().st_size == GEMMA_SIZE for p in blobs.iterdir())
    run_cli("pack", shards[7][0], "--name", "g:1", "--models-dir", models, check=0)
    store = OllamaStore(str(models))
    m, _ = store.get_manifest(parse_name("g:1"))
    assert str(m.layers[0].digest) == "sha256:" + GEMMA_SHA256 and store.verify()[1] == []
    h = hashlib.sha256(open(store.blob_path(m.layers[0].digest), "rb").read()).hexdigest()
    assert h == GEMMA_SHA256


def test_shard_names_are_recognised_exactly_as_the_pattern_says():
    """names_a_set and shard_siblings decide without compiling SHARD_NAME (inspect does not import
    re); random names, Unicode digits and a final newline included, get the pattern's answer."""
    import random

    from ollama_oci.modelinfo import SHARD_NAME, shard_name_parts
    rnd = random.Random(7)
    parts = ["a", "-", "0", "1", "9", "\u0663", "\uff10", "-of-", ".gguf", "\n", "x", "00001", "00002",
             "-00001-of-00003.gguf", "-00002-of-00002.gguf"]
    matched = 0
    for _ in range(30000):
        name = "".join(rnd.choice(parts) for _ in range(rnd.randint(0, 8)))
        m = SHARD_NAME.match(name)
        assert shard_name_parts(name) == (m.groups() if m else None), repr(name)
        matched += m is not None
    assert matched > 500

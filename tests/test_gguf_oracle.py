"""Every shared GGUF fixture agrees with its oracle.json entry (computed by gguf-py)."""

from __future__ import annotations

import hashlib
import os

import pytest

from conftest import SHARED, shared_path
from ollama_oci import GGUFArray, GGUFError, model_info, read_gguf

import json

_ORACLE = os.path.join(SHARED, "oracle.json")
_FILES = []
if os.path.exists(_ORACLE):
    with open(_ORACLE) as f:
        _FILES = [e for e in json.load(f)["files"] if e["set"] == "shared"]


def _ids(e):
    return e["file"]


@pytest.mark.parametrize("entry", [e for e in _FILES if e["is_gguf"]], ids=_ids)
def test_fixture_matches_oracle(entry):
    path = shared_path(entry["file"])
    with read_gguf(path) as g:
        assert g.version == entry["gguf_version"]
        assert g.byte_order == entry["byte_order"]
        assert list(g.kv) == entry["keys_in_order"]
        assert len(g.kv) == entry["kv_count"]
        assert len(g.tensors) == entry["tensor_count"]
        assert g.alignment == entry["alignment_effective"]
        assert g.header_end == entry["header_end_offset"]
        assert g.file_size == entry["size_bytes"]
        for key, exp in entry["kv"].items():
            kv = g.kv[key]
            assert kv.type_name == exp["type"], key
            if exp["type"] == "ARRAY":
                arr = kv.value
                assert isinstance(arr, GGUFArray)
                assert arr.elem_type_name == exp["elem_type"], key
                assert len(arr) == exp["len"], key
                if "value" in exp:  # nested arrays: the whole structure
                    assert arr.to_list() == exp["value"], key
                else:
                    assert list(arr[:3]) == exp["head"], key
                    assert arr[len(arr) - 1] == exp["last"], key
            elif "value" in exp:
                assert kv.value == exp["value"], key
            else:  # long strings: length and sha256
                data = kv.value.encode("utf-8", "surrogateescape")
                assert len(data) == exp["len"]
                assert hashlib.sha256(data).hexdigest() == exp["sha256"]
        info = model_info(g)
        assert info.architecture == (entry["architecture"] or "unknown")
        if entry.get("context_length") is not None:
            assert info.context_length == entry["context_length"]
        if entry.get("has_chat_template"):
            assert hashlib.sha256(info.chat_template.encode()).hexdigest() == entry["chat_template_sha256"]
        else:
            assert info.chat_template is None
        if "parameter_count_sum_n_elements" in entry:
            assert g.parameter_count == entry["parameter_count_sum_n_elements"]
        if "first_tensors" in entry:
            for t, exp in zip(g.tensors, entry["first_tensors"]):
                assert (t.name, list(t.shape), t.type_name, t.type, t.offset, t.n_bytes) == (
                    exp["name"], exp["shape_ne"], exp["type"], exp["type_code"], exp["offset_rel"],
                    exp["n_bytes"])
        if "data_end" in entry:
            assert g.tensor_data_end == entry["data_end"]
        if entry.get("general.file_type") is not None:
            assert info.file_type_id == entry["general.file_type"]


def test_non_gguf_is_rejected_with_a_clear_message():
    path = shared_path("not-gguf-ggjt-ggml-vocab.bin")
    with pytest.raises(GGUFError) as ei:
        read_gguf(path)
    msg = str(ei.value)
    assert "not a GGUF file" in msg and "GGJT" in msg
    assert ei.value.offset == 0
    assert "\n" not in msg


def test_v1_v2_and_big_endian_equal_their_little_endian_twins():
    be = read_gguf(shared_path("be-ggml-vocab-llama-spm.gguf"))
    le = read_gguf(shared_path("ggml-vocab-llama-spm.gguf"))
    with be, le:
        assert be.byte_order == "big" and le.byte_order == "little"
        for k in le.kv:
            a, b = le.kv[k].value, be.kv[k].value
            if isinstance(a, GGUFArray):
                assert a.to_list() == b.to_list(), k
            else:
                assert a == b, k
    with read_gguf(shared_path("v1-ggml-vocab-llama.gguf")) as v1:
        assert v1.version == 1
        assert v1.header_end == v1.file_size  # parses to exactly its last byte


def test_sharded_set_facts():
    with read_gguf(shared_path("derived/gguf-py-sharded/tiny-00002-of-00003.gguf")) as g:
        info = model_info(g)
    assert info.split is not None
    assert (info.split.index, info.split.count, info.split.tensors_total) == (1, 3, 3)


def test_arrays_are_lazy_and_decode_only_while_open():
    with read_gguf(shared_path("ggml-vocab-deepseek-llm.gguf")) as g:
        toks = g["tokenizer.ggml.tokens"]
        assert toks._items is None  # nothing decoded at open
        assert len(toks) == 102400
        merges = g["tokenizer.ggml.merges"]
        assert merges._items is None
        assert isinstance(merges[0], str) and " " in merges[0]  # decoded on demand
    with pytest.raises(GGUFError, match="closed"):
        toks[5]  # the file is closed and this array was never decoded

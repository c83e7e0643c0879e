"""Property test: what llama.cpp's gguf-py writer writes, our reader reads back exactly."""

from __future__ import annotations

import math
import os
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gguf import GGUFValueType, GGUFWriter

from ollama_oci import read_gguf

_key = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z0-9_]{1,8}){0,2}", fullmatch=True)
_text = st.text(max_size=40)
_scalar = st.one_of(
    st.tuples(st.just(GGUFValueType.UINT8), st.integers(0, 255)),
    st.tuples(st.just(GGUFValueType.INT8), st.integers(-128, 127)),
    st.tuples(st.just(GGUFValueType.UINT16), st.integers(0, 65535)),
    st.tuples(st.just(GGUFValueType.INT16), st.integers(-32768, 32767)),
    st.tuples(st.just(GGUFValueType.UINT32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(GGUFValueType.INT32), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just(GGUFValueType.UINT64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(GGUFValueType.INT64), st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just(GGUFValueType.FLOAT32), st.floats(width=32, allow_nan=False)),
    st.tuples(st.just(GGUFValueType.FLOAT64), st.floats(allow_nan=False)),
    st.tuples(st.just(GGUFValueType.BOOL), st.booleans()),
    st.tuples(st.just(GGUFValueType.STRING), _text),
)
_array = st.one_of(
    # gguf-py's writer refuses empty arrays
    st.tuples(st.just("ARRAY_INT32"), st.lists(st.integers(-2**31, 2**31 - 1), min_size=1, max_size=200)),
    st.tuples(st.just("ARRAY_STR"), st.lists(_text, min_size=1, max_size=200)),
    st.tuples(st.just("ARRAY_F32"), st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=100)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kvs=st.dictionaries(_key, st.one_of(_scalar, _array), min_size=1, max_size=12),
       n_tensors=st.integers(0, 3), big_endian=st.booleans())
def test_written_by_gguf_py_reads_back(tmp_path, kvs, n_tensors, big_endian):
    from gguf import GGUFEndian
    kvs.pop("general.architecture", None)
    kvs.pop("general.alignment", None)
    path = os.path.join(tmp_path, f"rt-{os.getpid()}-{abs(hash(str(kvs)))}.gguf")
    w = GGUFWriter(path, "llama", endianess=GGUFEndian.BIG if big_endian else GGUFEndian.LITTLE)
    for k, (t, v) in kvs.items():
        if t == "ARRAY_INT32":
            w.add_key_value(k, v, GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
        elif t == "ARRAY_STR":
            w.add_key_value(k, v, GGUFValueType.ARRAY, sub_type=GGUFValueType.STRING)
        elif t == "ARRAY_F32":
            w.add_key_value(k, v, GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
        else:
            w.add_key_value(k, v, t)
    tensors = {}
    for i in range(n_tensors):
        a = np.arange(4 * (i + 1), dtype=np.float32).reshape(i + 1, 4)
        tensors[f"t{i}"] = a
        w.add_tensor(f"t{i}", a.copy())  # the writer byte-swaps in place for big-endian files
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with read_gguf(path) as g:
        assert g.byte_order == ("big" if big_endian else "little")
        for k, (t, v) in kvs.items():
            got = g[k]
            if isinstance(t, str):
                got = got.to_list()
                if t == "ARRAY_F32":
                    v = [struct.unpack("f", struct.pack("f", x))[0] for x in v]
                assert got == v, k
            elif t == GGUFValueType.FLOAT32:
                assert got == struct.unpack("f", struct.pack("f", v))[0] or (math.isinf(v) and math.isinf(got))
            else:
                assert got == v, k
        assert [t.name for t in g.tensors] == list(tensors)
        for t in g.tensors:
            assert t.n_elements == tensors[t.name].size
            assert t.n_bytes == tensors[t.name].nbytes
        assert g.parameter_count == sum(a.size for a in tensors.values())
    os.unlink(path)


def test_ggml_tables_come_from_gguf_py_and_are_cached_per_installed_version(tmp_path):
    """The tensor/file/value-type tables are gguf-py's; a fresh process reads them from a cache file
    keyed by gguf-py's constants.py instead of building its enums again, and a changed gguf-py (or a
    damaged cache) makes it read them again."""
    import json as _json
    import subprocess
    import sys as _sys
    from ollama_oci import ggml_tables
    direct = ggml_tables._from_constants()
    assert direct["tensor_types"]["12"][0] == "Q4_K" and direct["file_types"]["15"] == "Q4_K_M"
    code = ("import json\nfrom ollama_oci import ggml_tables as g\n"
            "print(json.dumps([g.tables(), g.constants.cache_info().currsize > 0]))")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))

    def run():
        out = subprocess.run([_sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return _json.loads(out.stdout)
    tables, loaded = run()
    assert tables == direct and loaded                       # first process: read from gguf-py, cached
    cache = tmp_path / "ollama-oci" / "ggml-tables.txt"
    assert ggml_tables._load(cache.read_text(), _key(ggml_tables)) == direct
    tables, loaded = run()
    assert tables == direct and not loaded                   # later ones: the cache, no gguf-py import
    lines = cache.read_text().split("\n")
    size, rest = lines[1].split(" ", 2)[1], lines[1].split(" ", 2)[2]
    lines[1] = f"key {int(size) + 1} {rest}"                 # as if gguf-py were upgraded
    cache.write_text("\n".join(lines))
    assert run() == [direct, True]
    cache.write_text("{not json")
    assert run() == [direct, True]
    text = cache.read_text()
    cache.write_text(text.replace("t 12 Q4_K", "t 12 Q4_K x"))    # a damaged line: read gguf-py again
    assert run() == [direct, True]
    assert cache.read_text() == text


def _key(ggml_tables) -> list:
    st = os.stat(ggml_tables._constants_path())
    return [ggml_tables._constants_path(), st.st_size, st.st_mtime_ns]

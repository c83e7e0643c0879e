"""ggml/GGUF tables, taken from the ``gguf`` package (llama.cpp's gguf-py).

We use gguf-py's own tables (tensor types and block sizes, ``llama_ftype`` file
types, value types) rather than retyping them, so new quantization types arrive
with a ``pip install -U gguf``.  ``import gguf`` however imports numpy and the
whole reader (0.1-0.4 s); its ``constants`` module is plain Python, so we load
that one file on its own (docs/design.md explains why). Even that costs ~20 ms in every fresh
process (its enums are built at import), so the three tables read from it are kept in a small JSON
file in the user's cache directory, keyed by that ``constants.py`` (path, size, mtime): the next
process reads the JSON (well under a millisecond) and a ``pip install -U gguf`` makes it stale, so the
tables are read from gguf-py again. Without a writable cache they are read from gguf-py each time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import lru_cache
from types import ModuleType

from .configfile import cache_dir

__all__ = ["constants", "tensor_type_name", "tensor_block", "ollama_file_type_name", "value_type_name"]


@lru_cache(maxsize=None)
def _constants_path() -> str:
    spec = importlib.util.find_spec("gguf")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'gguf' package is required: pip install gguf")
    for loc in spec.submodule_search_locations:
        path = os.path.join(loc, "constants.py")
        if os.path.exists(path):
            return path
    raise ImportError("gguf.constants not found in the installed 'gguf' package")


@lru_cache(maxsize=None)
def constants() -> ModuleType:
    """gguf-py's ``gguf.constants`` module, loaded without ``gguf/__init__`` (and numpy)."""
    mod = sys.modules.get("gguf.constants")
    if mod is not None:
        return mod
    cspec = importlib.util.spec_from_file_location("_ollama_oci_gguf_constants", _constants_path())
    if cspec is None or cspec.loader is None:
        raise ImportError("gguf.constants cannot be loaded from the installed 'gguf' package")
    mod = importlib.util.module_from_spec(cspec)
    cspec.loader.exec_module(mod)
    return mod


def _cache_file() -> str:
    return cache_dir("ggml-tables.json")


def _from_constants() -> dict:
    c = constants()
    return {
        "tensor_types": {str(int(t)): [t.name, block, size] for t, (block, size) in c.GGML_QUANT_SIZES.items()},
        "file_types": {str(int(ft)): ft.name[len("MOSTLY_"):] for ft in c.LlamaFileType
                       if ft.name.startswith("MOSTLY_")},
        "value_types": {str(int(v)): v.name for v in c.GGUFValueType},
    }


@lru_cache(maxsize=None)
def tables() -> dict:
    """The tensor-type, file-type and value-type tables of the installed gguf-py (cached, see above)."""
    path = _constants_path()
    try:
        st = os.stat(path)
        key = [path, st.st_size, st.st_mtime_ns]
    except OSError:
        key = None
    cache = _cache_file()
    if key is not None:
        try:
            with open(cache, encoding="utf-8") as f:
                doc = json.load(f)
            if isinstance(doc, dict) and doc.get("key") == key and isinstance(doc.get("tables"), dict):
                return doc["tables"]
        except (OSError, ValueError):
            pass
    out = _from_constants()
    if key is not None:
        tmp = f"{cache}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"key": key, "tables": out}, f)
            os.replace(tmp, cache)     # whole or not at all: readers never see half a file
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass     # a cache: the next process reads gguf-py again
    return out


#: block sizes gguf-py gets wrong: its Q8_1 is the 2023 block with float scales (40 bytes); ggml's
#: block_q8_1 has been two halves and 32 quants since (36 bytes: ggml-common.h's static_assert), and
#: Ollama's decoder sizes it so too (fs/ggml TypeSize)
_BLOCK_FIXES = {9: 36}


@lru_cache(maxsize=None)
def _tensor_types() -> dict[int, tuple[str, int, int]]:
    out = {int(k): (v[0], int(v[1]), int(v[2])) for k, v in tables()["tensor_types"].items()}
    for code, size in _BLOCK_FIXES.items():
        if code in out:
            out[code] = (out[code][0], out[code][1], size)
    return out


def tensor_type_name(code: int) -> str:
    t = _tensor_types().get(code)
    if t is not None:
        return t[0]
    if code == 4:
        # ollama's fs/ggml/type.go names tensor type 4 MXFP4 (blobs it wrote before ggml
        # assigned MXFP4 the code 39); ggml itself has no type 4 any more.
        return "MXFP4(ollama)"
    return f"type{code}"


def tensor_block(code: int) -> tuple[int, int] | None:
    """(elements per block, bytes per block) of a ggml tensor type, or None if unknown."""
    t = _tensor_types().get(code)
    return (t[1], t[2]) if t is not None else None


@lru_cache(maxsize=None)
def _file_types() -> dict[int, str]:
    return {int(k): v for k, v in tables()["file_types"].items()}


def ollama_file_type_name(value: int | None) -> str:
    """``general.file_type`` as ollama (v0.30+, fs/ggml/type.go) names it in the config.

    0 (all F32) and a missing key both give ``unknown`` (ollama: ``if t > 0``); so
    does 4 (``Q4_1_F16``/MXFP4), which ollama v0.30+ prints as ``unknown``.
    The names are llama.cpp's ``llama_ftype`` names without ``MOSTLY_``, which is
    exactly ollama's table (docs/ollama-format.md section 4.1).
    """
    if value is None or value <= 0:
        return "unknown"
    return _file_types().get(value, "unknown")


def value_type_name(code: int) -> str:
    return tables()["value_types"].get(str(code), f"type{code}")

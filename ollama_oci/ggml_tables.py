"""ggml/GGUF tables, taken from the ``gguf`` package (llama.cpp's gguf-py).

We use gguf-py's own tables (tensor types and block sizes, ``llama_ftype`` file
types, value types) rather than retyping them, so new quantization types arrive
with a ``pip install -U gguf``.  ``import gguf`` however imports numpy and the
whole reader (0.1-0.4 s); its ``constants`` module is plain Python, so we load
that one file on its own (docs/design.md explains why). Even that costs ~20 ms in every fresh
process (its enums are built at import), so the three tables read from it are kept in a small text
file in the user's cache directory, keyed by that ``constants.py`` (path, size, mtime): the next
process reads that file (well under a millisecond, without importing ``json``) and a ``pip install -U
gguf`` makes it stale, so the tables are read from gguf-py again. Without a writable cache they are
read from gguf-py each time.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

# Not imported here: json, importlib.util, configfile (re, typing). This module is on the path of
# `ollama-oci inspect`, a process of ~40 ms; the cache below is a few lines of text and a hit needs
# neither (docs/benchmarks.md).
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

__all__ = ["constants", "tensor_type_name", "tensor_block", "ollama_file_type_name", "value_type_name"]

#: the first line of the cache file; a file without it is not read
_CACHE_MAGIC = "ollama-oci ggml-tables 1"


@lru_cache(maxsize=None)
def _constants_path() -> str:
    """gguf-py's ``constants.py``: found as the import system finds the regular package ``gguf``
    (the first ``sys.path`` entry holding ``gguf/__init__.py``), and by ``importlib`` itself when
    that scan finds none (an import hook, a zip)."""
    for entry in sys.path:
        pkg = os.path.join(entry or ".", "gguf")
        if os.path.isfile(os.path.join(pkg, "__init__.py")):
            path = os.path.join(pkg, "constants.py")
            if os.path.isfile(path):
                return path
            break
    import importlib.util
    spec = importlib.util.find_spec("gguf")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'gguf' package is required: pip install gguf")
    for loc in spec.submodule_search_locations:
        path = os.path.join(loc, "constants.py")
        if os.path.exists(path):
            return path
    raise ImportError("gguf.constants not found in the installed 'gguf' package")


@lru_cache(maxsize=None)
def constants() -> "ModuleType":
    """gguf-py's ``gguf.constants`` module, loaded without ``gguf/__init__`` (and numpy)."""
    mod = sys.modules.get("gguf.constants")
    if mod is not None:
        return mod
    import importlib.util
    cspec = importlib.util.spec_from_file_location("_ollama_oci_gguf_constants", _constants_path())
    if cspec is None or cspec.loader is None:
        raise ImportError("gguf.constants cannot be loaded from the installed 'gguf' package")
    mod = importlib.util.module_from_spec(cspec)
    cspec.loader.exec_module(mod)
    return mod


def _cache_file() -> str:
    from .configfile import cache_dir
    return cache_dir("ggml-tables.txt")


def _from_constants() -> dict:
    c = constants()
    return {
        "tensor_types": {str(int(t)): [t.name, block, size] for t, (block, size) in c.GGML_QUANT_SIZES.items()},
        "file_types": {str(int(ft)): ft.name[len("MOSTLY_"):] for ft in c.LlamaFileType
                       if ft.name.startswith("MOSTLY_")},
        "value_types": {str(int(v)): v.name for v in c.GGUFValueType},
    }


def _dump(key: list, tables: dict) -> str:
    """The cache file: a magic line, the key (size, mtime, path of constants.py), one line per entry."""
    lines = [_CACHE_MAGIC, f"key {key[1]} {key[2]} {key[0]}"]
    lines += [f"t {code} {name} {block} {size}" for code, (name, block, size) in tables["tensor_types"].items()]
    lines += [f"f {code} {name}" for code, name in tables["file_types"].items()]
    lines += [f"v {code} {name}" for code, name in tables["value_types"].items()]
    return "\n".join(lines) + "\n"


def _load(text: str, key: list) -> dict | None:
    """The tables in a cache file written for ``key``; None for another key or a damaged file."""
    lines = text.split("\n")
    if len(lines) < 3 or lines[0] != _CACHE_MAGIC or lines[1] != f"key {key[1]} {key[2]} {key[0]}" or lines[-1]:
        return None
    out: dict = {"tensor_types": {}, "file_types": {}, "value_types": {}}
    try:
        for line in lines[2:-1]:
            f = line.split(" ")
            if f[0] == "t" and len(f) == 5:
                out["tensor_types"][str(int(f[1]))] = [f[2], int(f[3]), int(f[4])]
            elif f[0] in ("f", "v") and len(f) == 3:
                out["file_types" if f[0] == "f" else "value_types"][str(int(f[1]))] = f[2]
            else:
                return None
    except ValueError:
        return None
    return out if all(out.values()) else None


@lru_cache(maxsize=None)
def tables() -> dict:
    """The tensor-type, file-type and value-type tables of the installed gguf-py (cached, see above)."""
    path = _constants_path()
    try:
        st = os.stat(path)
        key = [path, st.st_size, st.st_mtime_ns] if "\n" not in path else None
    except OSError:
        key = None
    cache = _cache_file()
    if key is not None:
        try:
            with open(cache, encoding="utf-8", errors="replace") as f:
                got = _load(f.read(1 << 20), key)
            if got is not None:
                return got
        except OSError:
            pass
    out = _from_constants()
    if key is not None:
        tmp = f"{cache}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(_dump(key, out))
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

"""ggml/GGUF tables, taken from the ``gguf`` package (llama.cpp's gguf-py).

We use gguf-py's own tables (tensor types and block sizes, ``llama_ftype`` file
types, value types) rather than retyping them, so new quantization types arrive
with a ``pip install -U gguf``.  ``import gguf`` however imports numpy and the
whole reader (0.1-0.4 s); its ``constants`` module is plain Python, so we load
that one file on its own (docs/design.md explains why).
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from types import ModuleType

__all__ = ["constants", "tensor_type_name", "tensor_block", "ollama_file_type_name", "value_type_name"]


@lru_cache(maxsize=None)
def constants() -> ModuleType:
    """gguf-py's ``gguf.constants`` module, loaded without ``gguf/__init__`` (and numpy)."""
    mod = sys.modules.get("gguf.constants")
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("gguf")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'gguf' package is required: pip install gguf")
    for loc in spec.submodule_search_locations:
        path = f"{loc}/constants.py"
        cspec = importlib.util.spec_from_file_location("_ollama_oci_gguf_constants", path)
        if cspec is not None and cspec.loader is not None:
            mod = importlib.util.module_from_spec(cspec)
            cspec.loader.exec_module(mod)
            return mod
    raise ImportError("gguf.constants not found in the installed 'gguf' package")


@lru_cache(maxsize=None)
def _tensor_types() -> dict[int, tuple[str, int, int]]:
    c = constants()
    out: dict[int, tuple[str, int, int]] = {}
    for t, (block, size) in c.GGML_QUANT_SIZES.items():
        out[int(t)] = (t.name, block, size)
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
    c = constants()
    out = {}
    for ft in c.LlamaFileType:
        name = ft.name
        if name.startswith("MOSTLY_"):
            out[int(ft)] = name[len("MOSTLY_"):]
    return out


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
    try:
        return constants().GGUFValueType(code).name
    except ValueError:
        return f"type{code}"

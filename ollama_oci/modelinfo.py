"""Facts about a GGUF file, computed the way ollama computes them.

Sources: ollama ``fs/ggml/ggml.go``, ``fs/ggml/gguf.go``, ``format/format.go``,
``server/create.go`` (summarised in ../shared/docs/ollama-format.md sections 4
and 5.1).
"""

from __future__ import annotations

import os
from collections import namedtuple

from . import ggml_tables
from .errors import GGUFError
from .gguf_header import ARRAY, UINT32

# No re, dataclasses or typing at import: this module is on the path of `ollama-oci inspect`, a
# process of ~40 ms (docs/benchmarks.md). SHARD_NAME is compiled when first asked for.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from .gguf_header import GGUFFile

__all__ = ["load_problems", "ModelInfo", "human_number", "model_info", "layer_kind", "SplitInfo", "split_info",
           "SHARD_NAME", "shard_name_parts"]

#: llama.cpp's shard file name pattern (1-based index), as ollama groups them (the regular expression
#: ``SHARD_NAME``; :func:`shard_name_parts` decides the same without compiling it)
_SHARD_PATTERN = r"^(.*)-(\d{5})-of-(\d{5})\.gguf$"


def __getattr__(name: str):
    if name == "SHARD_NAME":
        import re
        globals()["SHARD_NAME"] = pat = re.compile(_SHARD_PATTERN)
        return pat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shard_name_parts(base: str) -> tuple[str, str, str] | None:
    """``SHARD_NAME.match(base).groups()`` (prefix, index, count as written), or None: the same
    decision, with no regular expression (``$`` also matches before one final newline, ``.`` never
    matches a newline, ``\\d`` is any Unicode decimal digit)."""
    if base.endswith("\n"):
        base = base[:-1]
    if len(base) < 20 or "\n" in base or not base.endswith(".gguf") or base[-20] != "-" or base[-14:-10] != "-of-":
        return None
    index, count = base[-19:-14], base[-10:-5]
    if not (index.isdecimal() and count.isdecimal()):
        return None
    return base[:-20], index, count


#: the renderer/parser ``ollama create`` (v0.30+) writes into the config for these architectures
ARCH_RENDERER = {"gemma4": "gemma4", "laguna": "laguna", "nemotron_h": "nemotron-3-nano",
                 "nemotron_h_moe": "nemotron-3-nano", "nemotron_h_omni": "nemotron-3-nano"}


def human_number(n: int) -> str:
    """ollama's ``format.HumanNumber``: decimal units, B/M/K, Go ``%.Nf`` rounding."""
    if n >= 1_000_000_000:
        x = n / 1e9
        return f"{x:.0f}B" if x == int(x) else f"{x:.1f}B"
    if n >= 1_000_000:
        x = n / 1e6
        return f"{x:.0f}M" if x == int(x) else f"{x:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}K"
    return str(n)


def layer_kind(g: GGUFFile) -> str:
    """Which ollama layer a GGUF becomes: ``model``, ``adapter`` or ``projector``.

    ollama v0.30.4+ (``isProjectorGGUF``): an adapter is ``general.type ==
    "adapter"``; a projector is ``general.type`` ``projector``/``mmproj``, or has
    ``<arch>.vision.block_count > 0`` with no (or zero) ``<arch>.block_count``, or
    is arch ``clip`` without block_count but with a vision or audio encoder.
    """
    gtype = g.get_str("general.type")
    if gtype == "adapter":
        return "adapter"
    if gtype in ("projector", "mmproj"):
        return "projector"
    arch = g.architecture or ""
    bc = g.get_int(f"{arch}.block_count")
    vbc = g.get_int(f"{arch}.vision.block_count")
    if not bc and vbc and vbc > 0:
        return "projector"
    if arch == "clip" and bc is None and (g.get("clip.has_vision_encoder") is True or
                                          g.get("clip.has_audio_encoder") is True):
        return "projector"
    return "model"


class SplitInfo(namedtuple("SplitInfo", "index count tensors_total")):
    """One shard of a split model: ``index`` (``split.no``, 0-based), ``count``, ``tensors_total``
    (None if the shard does not say)."""

    __slots__ = ()


def split_info(g: GGUFFile) -> SplitInfo | None:
    arch = g.architecture or ""
    def first_int(*keys):
        for k in keys:
            v = g.get_int(k)
            if v is not None:
                return v
        return None
    no = first_int("split.no", f"{arch}.split.no")
    count = first_int("split.count", f"{arch}.split.count")
    if no is None and count is None:
        return None
    total = first_int("split.tensors.count", f"{arch}.split.tensors.count")
    return SplitInfo(no if no is not None else 0, count if count is not None else 1, total)


_MODEL_INFO_FIELDS = ("architecture parameter_count model_type file_type file_type_id context_length "
                      "embedding_length chat_template kind quantization_version name size_label license split "
                      "tensor_count tensor_types load_problems")


class ModelInfo(namedtuple("ModelInfo", _MODEL_INFO_FIELDS, defaults=((),))):
    """The facts ollama derives from a GGUF header.

    ``architecture`` (general.architecture, "unknown" if absent); ``parameter_count`` (the sum of
    tensor element counts); ``model_type`` (``human_number(parameter_count)``); ``file_type``
    (ollama's name for general.file_type) and ``file_type_id``; ``context_length``,
    ``embedding_length``, ``chat_template``; ``kind`` (model, adapter or projector);
    ``quantization_version``, ``name``, ``size_label``, ``license``; ``split`` (a
    :class:`SplitInfo` or None); ``tensor_count``; ``tensor_types`` (type name -> count);
    ``load_problems`` (what Ollama's decoder refuses in this file, :func:`load_problems`).
    """

    __slots__ = ()

    def to_json(self) -> dict:
        d = dict(zip(self._fields, self))
        d["load_problems"] = list(self.load_problems)
        d["split"] = None if self.split is None else {
            "index": self.split.index, "count": self.split.count, "tensors_total": self.split.tensors_total}
        return d


#: the tensor types Ollama's decoder can size (``TensorType.TypeSize`` in fs/ggml, Ollama commit
#: fb30760): any other (TQ1_0 and TQ2_0, which gguf-py knows; 4, 5 and the repacked 31-33 and 36-38;
#: a newer ggml type) fails its load with 'tensor "NAME" size overflow'. (Rows that are not whole
#: blocks, and sizes past the file's end, which fail it too, are refused by the header reader.)
OLLAMA_TENSOR_TYPES = frozenset([0, 1, 2, 3, *range(6, 31), 39, 40, 41])


def load_problems(g: GGUFFile) -> tuple[str, ...]:
    """What in this header Ollama's own GGUF decoder (fs/ggml) refuses, though llama.cpp's tools or
    gguf-py wrote it: a big-endian file, GGUF v1, an array of arrays, a tensor it cannot size
    (checked against Ollama's code: `invalid array type: 9`, `GGUF string length ... exceeds
    maximum`, `tensor "NAME" size overflow`)."""
    out = []
    if g.byte_order != "little":
        out.append("it is big-endian; Ollama reads only little-endian GGUF (convert it on a little-endian "
                   "machine with llama.cpp's gguf tools)")
    if g.version == 1:
        out.append("it is GGUF v1; Ollama reads v2 and v3 (re-save it with llama.cpp's gguf tools)")
    nested = [kv.key for kv in g.kv.values() if kv.type == ARRAY and getattr(kv.value, "elem_type", None) == ARRAY]
    if nested:
        out.append(f"key {nested[0]!r} is an array of arrays, which Ollama's decoder refuses "
                   f"('invalid array type: 9')" + (f" ({len(nested) - 1} more such keys)" if len(nested) > 1 else ""))
    bad = [t for t in g.tensors if t.type not in OLLAMA_TENSOR_TYPES]
    if bad:
        out.append(f"tensor {bad[0].name!r} has type {bad[0].type_name}, which Ollama's decoder cannot size "
                   f"('tensor {bad[0].name!r} size overflow')"
                   + (f" ({len(bad) - 1} more such tensors)" if len(bad) > 1 else ""))
    return tuple(out)


def model_info(g: GGUFFile) -> ModelInfo:
    arch = g.architecture or "unknown"
    pc = g.parameter_count
    ft_kv = g.kv.get("general.file_type")
    # ollama reads general.file_type with a typed UINT32 lookup: other types are ignored
    ft_id = int(ft_kv.value) if ft_kv is not None and ft_kv.type == UINT32 else None
    types: dict[str, int] = {}
    for t in g.tensors:
        types[t.type_name] = types.get(t.type_name, 0) + 1
    return ModelInfo(
        architecture=arch,
        parameter_count=pc,
        model_type=human_number(pc),
        file_type=ggml_tables.ollama_file_type_name(ft_id),
        file_type_id=ft_id,
        context_length=g.get_int(f"{arch}.context_length"),
        embedding_length=g.get_int(f"{arch}.embedding_length"),
        chat_template=g.get_str("tokenizer.chat_template"),
        kind=layer_kind(g),
        quantization_version=g.get_int("general.quantization_version"),
        name=g.get_str("general.name"),
        size_label=g.get_str("general.size_label"),
        license=g.get_str("general.license"),
        split=split_info(g),
        tensor_count=len(g.tensors),
        tensor_types=dict(sorted(types.items())),
        load_problems=load_problems(g),
    )


def names_a_set(path: str) -> bool:
    """Whether ``path`` is named as a shard of a set of two or more (``NAME-00002-of-00003.gguf``):
    decided without opening the file."""
    parts = shard_name_parts(os.path.basename(path))
    return parts is not None and int(parts[2]) > 1


def shard_siblings(path: str) -> list[str] | None:
    """For ``x-00002-of-00003.gguf``, the paths of all shards in order (None if not a shard name)."""
    d, base = os.path.split(path)
    parts = shard_name_parts(base)
    if parts is None:
        return None
    prefix, count = parts[0], int(parts[2])
    if count < 1:
        raise GGUFError(f"bad shard name {base!r}: a set cannot have {count} files", None, path)
    return [os.path.join(d, f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]

"""What ``ollama-oci inspect FILE`` shows of a GGUF file: its header, the facts Ollama derives from it,
and which template each Ollama version would use for a model packed from it.

    from ollama_oci.gguf_report import report_json, report_lines
    print("\\n".join(report_lines("model.gguf")))
    doc = report_json("model.gguf")          # the "ollama-oci.inspect/v1" document (docs/cli.md)

No click, json, re, dataclasses or typing at import (nor in :func:`report_lines`): the console
script answers ``inspect FILE`` with this module before it loads the rest of the program
(:mod:`ollama_oci.console`), so the whole process stays near the time of reading the header
(docs/benchmarks.md). The ``inspect`` command of the CLI prints the same lines.
"""

from __future__ import annotations

from .errors import OllamaOCIError, printable
from .gguf_header import GGUFArray, read_gguf
from .modelinfo import ARCH_RENDERER, model_info, names_a_set, split_info

__all__ = ["report_lines", "report_json", "template_paths", "json_text"]


def _open(path: str):
    """The header to show: the file's, or for one shard of a split set the header the whole set
    makes (``split_set`` the set, or ``split_problem`` why it could not be put together)."""
    split_set, split_problem = None, None
    g = read_gguf(path)
    shard = split_info(g)
    if names_a_set(path) or (shard is not None and shard.count > 1):
        from .gguf_split import open_split_set   # (not imported for a single file: inspect starts faster)
        try:   # one shard stands for its set: show the model the set makes
            split_set = open_split_set([path])
            g.close()
            g = split_set.merged_header()
        except OllamaOCIError as e:
            split_problem = str(e)
    return g, split_set, split_problem


def template_paths(info) -> dict:
    """Which template each Ollama version would use for a model packed from this GGUF, with pack's
    default (``auto``: a Go template derived from the chat template, which carries no tools or
    thinking) and with ``--template-mode gguf`` (no template layer)."""
    from .template_choice import chat_template_capabilities, template_selection
    if info.kind != "model":
        return {}
    derived = "{{ range .Messages }}{{ .Content }}{{ end }}" if info.chat_template else None  # stands for one
    arch = info.architecture
    common = {"chat_template": info.chat_template, "renderer": ARCH_RENDERER.get(arch, ""),
              "parser": ARCH_RENDERER.get(arch, ""), "model_family": arch}
    return {"chat_template_capabilities": chat_template_capabilities(info.chat_template or ""),
            "auto": template_selection(go_template=derived, **common),
            "gguf": template_selection(go_template=None, **common)}


def report_lines(path: str, *, tensors: bool = False) -> list[str]:
    """The lines ``ollama-oci inspect FILE`` prints (each made safe for a terminal)."""
    g, split_set, split_problem = _open(path)
    with g:
        info = model_info(g)
        selection = template_paths(info)
        rows = [
            ("file", f"{path} ({g.file_size:,} bytes)"),
            ("format", f"GGUF v{g.version}, {g.byte_order}-endian, alignment {g.alignment}"),
            ("architecture", info.architecture),
            ("kind", info.kind),
            ("parameters", f"{info.parameter_count:,} ({info.model_type})"),
            ("file type", f"{info.file_type}" + (f" ({info.file_type_id})" if info.file_type_id is not None else "")),
            ("context length", str(info.context_length) if info.context_length is not None else "-"),
            ("tensors", f"{info.tensor_count}" + (
                " (" + ", ".join(f"{k} {v}" for k, v in info.tensor_types.items()) + ")" if info.tensor_types else "")),
            ("chat template", (f"yes ({len(info.chat_template)} chars" + "".join(
                f", {c}" for c in selection["chat_template_capabilities"]) + ")") if info.chat_template else "no"),
        ]
        for mode in ("auto", "gguf"):
            if selection.get(mode):
                rows.append((f"template ({mode})", "; ".join(f"Ollama {s['ollama']}: {s['source']}"
                                                             for s in selection[mode])))
        if split_set is not None:
            rows.insert(1, ("split set", f"{len(split_set.paths)} shards, merged into one {split_set.size:,}-byte "
                                         f"model blob by pack (as ollama create merges them)"))
        elif info.split:
            rows.append(("split", f"shard {info.split.index + 1} of {info.split.count}" +
                         (f": {split_problem}" if split_problem else "")))
        for problem in info.load_problems:
            rows.append(("ollama", f"cannot load this file: {problem}"))
        out = [f"{k:<15} {printable(v, 4000)}" for k, v in rows]
        out.append(f"\nmetadata ({len(g.kv)} keys):")
        out += [f"  {printable(k, 200)} = {printable(_kv_text(kv), 4000)}" for k, kv in g.kv.items()]
        if tensors:
            out.append(f"\ntensors ({len(g.tensors)}):")
            for t in g.tensors:
                shape = "x".join(map(str, t.shape)) or "scalar"
                out.append(f"  {printable(t.name, 200):<40} {t.type_name:<8} {shape:<20} offset {t.offset:>12} "
                           f"bytes {t.n_bytes if t.n_bytes is not None else '?'}")
    return out


def report_json(path: str, *, tensors: bool = False, full_arrays: bool = False) -> dict:
    """The ``ollama-oci.inspect/v1`` document of ``inspect FILE --json`` (docs/cli.md)."""
    g, split_set, split_problem = _open(path)
    with g:
        info = model_info(g)
        doc = {
            "schema": "ollama-oci.inspect/v1",
            "path": path,
            "split_set": None if split_set is None else {
                "shards": split_set.paths, "merged_size": split_set.size,
                "note": "the model the whole set makes, merged as ollama create merges it"},
            "split_problem": split_problem,
            "size": g.file_size,
            "gguf_version": g.version,
            "byte_order": g.byte_order,
            "alignment": g.alignment,
            "header_end": g.header_end,
            "data_offset": g.data_offset,
            **info.to_json(),
            "template_selection": template_paths(info),
            "metadata": {k: _kv_json(kv, full_arrays) for k, kv in g.kv.items()},
        }
        if tensors:
            doc["tensors"] = [{"name": t.name, "type": t.type_name, "shape": list(t.shape),
                               "offset": t.offset, "n_elements": t.n_elements, "n_bytes": t.n_bytes}
                              for t in g.tensors]
    return doc


def _kv_json(kv, full_arrays: bool) -> dict:
    v = kv.value
    if isinstance(v, GGUFArray):
        d: dict = {"type": "ARRAY", "elem_type": v.elem_type_name, "len": len(v)}
        if full_arrays or len(v) <= 64:
            d["value"] = _plain(v.to_list())
        else:
            d["head"] = _plain([x.to_list() if isinstance(x, GGUFArray) else x for x in v[:8]])
        return d
    return {"type": kv.type_name, "value": _plain(v)}


def _plain(v):
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _kv_text(kv, width: int = 100) -> str:
    v = kv.value
    if isinstance(v, GGUFArray):
        head = [x.to_list() if isinstance(x, GGUFArray) else x for x in v[:5]]
        more = ", ..." if len(v) > 5 else ""
        s = f"[{v.elem_type_name} x {len(v)}] {json_text(_plain(head))[:-1]}{more}]"
    elif isinstance(v, str):
        s = json_text(_plain(v))
    else:
        s = str(v).lower() if isinstance(v, bool) else str(v)
    return s if len(s) <= width else s[: width - 3] + "..."


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def json_text(v) -> str:
    """``json.dumps(v, ensure_ascii=False)`` for the values a GGUF holds (str, int, float, bool, lists
    of them), without importing ``json`` (which brings ``re``)."""
    if isinstance(v, str):
        if v.isprintable() and '"' not in v and "\\" not in v:
            return f'"{v}"'
        return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in v) + '"'
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return float.__repr__(v)
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(json_text(x) for x in v) + "]"
    raise TypeError(f"{type(v).__name__} is not a GGUF value")

"""Ollama model names: ``[scheme://][host/][namespace/]model[:tag]``.

A faithful port of ollama's ``types/model/name.go`` (grammar unchanged from
v0.3 to v0.33): parse from the right, fill defaults
(``registry.ollama.ai``/``library``/``latest``), and validate each part byte by
byte before any path is built from it.  Because every part must start with
``[A-Za-z0-9_]`` and may contain only ``[A-Za-z0-9_.-]`` (``:`` in the host),
a valid name can never contain ``/``, ``..`` as a whole part, NUL or non-ASCII,
so no file path built from one leaves the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidName

__all__ = ["ModelName", "parse_name", "DEFAULT_HOST", "DEFAULT_NAMESPACE", "DEFAULT_TAG"]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"
_MISSING = "!MISSING!"

_MAXLEN = {"host": 350, "namespace": 80, "model": 80, "tag": 80}


def _cut_last(s: str, sep: str) -> tuple[str, str, bool]:
    i = s.rfind(sep)
    if i >= 0:
        return s[:i], s[i + len(sep):], True
    return s, "", False


def _cut_promised(s: str, sep: str) -> tuple[str, str, bool]:
    before, after, ok = _cut_last(s, sep)
    if not ok:
        return before, after, False
    return before or _MISSING, after or _MISSING, True


def _alnum_(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") or c == "_"


def part_problem(kind: str, s: str) -> str | None:
    """Why ``s`` is not a valid ``kind`` part, or None if it is."""
    if s == _MISSING or s == "":
        return f"the {kind} is empty"
    if len(s.encode("utf-8", "surrogatepass")) > _MAXLEN[kind]:
        return f"the {kind} is longer than {_MAXLEN[kind]} characters"
    for i, c in enumerate(s):
        if ord(c) > 127:
            return f"the {kind} contains a non-ASCII character"
        if i == 0:
            if not _alnum_(c):
                return f"the {kind} must start with a letter, digit or '_', not {c!r}"
            continue
        if c in "_-":
            continue
        if c == ".":
            if kind == "namespace":
                return "the namespace may not contain '.'"
            continue
        if c == ":":
            if kind != "host":
                return f"the {kind} may not contain ':'"
            continue
        if not _alnum_(c):
            return f"the {kind} may not contain {c!r}"
    return None


@dataclass(frozen=True)
class ModelName:
    """A fully qualified ollama model name."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def display(self) -> str:
        """ollama's ``DisplayShortest``: what ``ollama list`` prints."""
        if self.host.lower() == DEFAULT_HOST:
            if self.namespace.lower() == DEFAULT_NAMESPACE:   # strings.EqualFold, as for the host
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def repository(self) -> str:
        """``namespace/model``, the repository on the registry."""
        return f"{self.namespace}/{self.model}"

    def with_tag(self, tag: str) -> "ModelName":
        return parse_name(f"{self.host}/{self.namespace}/{self.model}:{tag}")


def parse_name_bare(s: str) -> dict:
    """ollama's ``ParseNameBare``: split without defaults or validation."""
    n = {"scheme": "", "host": "", "namespace": "", "model": "", "tag": ""}
    if s.rfind(":") > s.rfind("/"):
        s, n["tag"], _ = _cut_promised(s, ":")
    s, n["model"], promised = _cut_promised(s, "/")
    if not promised:
        n["model"] = s
        return n
    s, n["namespace"], promised = _cut_promised(s, "/")
    if not promised:
        n["namespace"] = s
        return n
    scheme, sep, host = s.partition("://")
    if not sep:
        host, scheme = scheme, ""
    n["scheme"], n["host"] = scheme, host
    return n


def parse_name(s: str) -> ModelName:
    """Parse and validate an ollama model name, filling ollama's defaults.

    ``phi3`` -> ``registry.ollama.ai/library/phi3:latest``;
    ``hf.co/user/repo:Q4_K_M`` keeps its host.  Raises :class:`InvalidName`.
    """
    if not isinstance(s, str):
        raise InvalidName(f"invalid model name {s!r}: expected a string")
    shown = s if len(s) <= 120 else s[:117] + "..."
    if "\x00" in s:
        raise InvalidName(f"invalid model name {shown!r}: it contains a NUL byte")
    if "@" in s:
        raise InvalidName(f"invalid model name {shown!r}: ollama names cannot carry a digest ('@'); "
                          "give a tag instead")
    n = parse_name_bare(s)
    host = n["host"] or DEFAULT_HOST
    ns = n["namespace"] or DEFAULT_NAMESPACE
    model = n["model"]
    tag = n["tag"] or DEFAULT_TAG
    for kind, part in (("host", host), ("namespace", ns), ("model", model), ("tag", tag)):
        why = part_problem(kind, part)
        if why:
            raise InvalidName(f"invalid model name {shown!r}: {why}; "
                              "names look like [host/][namespace/]model[:tag], e.g. 'gemma3:270m'")
    return ModelName(host, ns, model, tag, n["scheme"] or DEFAULT_SCHEME)


def name_from_parts(parts: tuple[str, ...] | list[str]) -> ModelName:
    """ollama's ``ParseNameFromFilepath``: exactly four valid parts (host, namespace, model, tag)."""
    if len(parts) != 4:
        raise InvalidName(f"invalid manifest path {'/'.join(parts)!r}: expected host/namespace/model/tag")
    for kind, part in zip(("host", "namespace", "model", "tag"), parts):
        why = part_problem(kind, part)
        if why:
            raise InvalidName(f"invalid manifest path {'/'.join(parts)!r}: {why}")
    return ModelName(*parts)


def default_name_for_file(path: str) -> str:
    """A model name derived from a GGUF file name (``Qwen2.5-7B.Q4_K_M.gguf`` -> ``qwen2.5-7b.q4_k_m``)."""
    import os
    import re
    stem = os.path.basename(path)
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem.lower()).strip("-.")
    stem = stem[:80] or "model"
    if not _alnum_(stem[0]):
        stem = "m" + stem[:79]
    return stem

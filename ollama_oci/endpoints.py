"""Where a model is, written as one string: the ``copy`` command's SRC and DST.

=============================  ============================================================
``ollama:NAME``                the Ollama model store (``--models-dir`` / ``$OLLAMA_MODELS``)
``oci:DIR[:NAME]``             an OCI image layout directory
``FILE.tar[:NAME]``,           a bundle (an OCI layout in a tar, optionally zstd);
``FILE.tar.zst[:NAME]``        ``bundle:FILE[:NAME]`` also works for other file names
anything else                  a registry reference (``docker://`` prefix allowed)
=============================  ============================================================

NAME is an ollama model name; a missing NAME on the destination means "the source's name".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from .errors import InvalidInput
from .names import ModelName, parse_name
from .reference import Reference, parse_reference

__all__ = ["Endpoint", "parse_endpoint"]

_BUNDLE = re.compile(r"^(?P<path>.+?(?:\.tar|\.tar\.zst|\.tzst|\.tar\.zstd))(?::(?P<name>.+))?$", re.I)


@dataclass
class Endpoint:
    kind: str                                   # ollama, oci, bundle, registry
    ref: Union[ModelName, Reference, None]
    path: str = ""                              # the layout directory or bundle file
    text: str = ""

    def store(self, *, models_dir: Optional[str] = None, registry_factory=None) -> Any:
        from .stores import OCILayout, OllamaStore, default_models_dir
        if self.kind == "ollama":
            return OllamaStore(models_dir or default_models_dir())
        if self.kind == "oci":
            return OCILayout(self.path)
        if self.kind == "registry":
            return registry_factory(self.ref.registry)
        return None

    def name_or(self, other: "Endpoint") -> ModelName:
        """This endpoint's model name, or one derived from the other side's."""
        if isinstance(self.ref, ModelName):
            return self.ref
        if isinstance(other.ref, ModelName):
            return other.ref
        if isinstance(other.ref, Reference):
            return other.ref.to_model_name()
        raise InvalidInput(f"{self.text}: give a model name (e.g. {self.text}:mymodel:tag)")


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("ollama:"):
        rest = text[len("ollama:"):]
        return Endpoint("ollama", parse_name(rest) if rest else None, text=text)
    if text.startswith("oci:"):
        rest = text[len("oci:"):]
        path, sep, name = rest.partition(":")
        if not path:
            raise InvalidInput(f"{text}: expected oci:DIR[:NAME]")
        return Endpoint("oci", parse_name(name) if sep and name else None, path, text)
    if text.startswith("bundle:"):
        path, sep, name = text[len("bundle:"):].partition(":")
        return Endpoint("bundle", parse_name(name) if sep and name else None, path, text)
    m = _BUNDLE.match(text)
    if m and not _looks_like_registry(text):
        name = m.group("name")
        return Endpoint("bundle", parse_name(name) if name else None, m.group("path"), text)
    return Endpoint("registry", parse_reference(text), text=text)


def _looks_like_registry(text: str) -> bool:
    # "host:5000/repo:v1.tar" would be a tag ending in .tar: treat a leading host as a registry;
    # a path written as a path ("./x.tar", "../x.tar", "/x.tar", "~/x.tar") is a file
    if text.startswith(("./", "../", "/", "~")):
        return False
    first = text.split("/", 1)[0]
    return "/" in text and ("." in first or ":" in first or first == "localhost") and not first.endswith(".tar")

"""Registry references: ``registry[:port]/repository[:tag][@sha256:…]``.

Docker/OCI rules with one ollama twist: a reference whose first component is
not a registry host (no ``.`` or ``:``, not ``localhost``) is an ollama name on
``registry.ollama.ai`` (``phi3`` -> ``registry.ollama.ai/library/phi3:latest``),
because that is what users of an ollama tool mean.  Docker Hub must be named
(``docker.io/org/repo``).  ``hf.co/user/repo:Q4_K_M`` is an ordinary reference
to Hugging Face's ollama endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .digest import Digest, parse_digest
from .errors import InvalidName
from .names import DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, ModelName, parse_name

__all__ = ["Reference", "parse_reference", "OLLAMA_REGISTRY_HOSTS"]

#: hosts that speak ollama's registry dialect (Ed25519 key auth, 307 to object storage)
OLLAMA_REGISTRY_HOSTS = frozenset({"registry.ollama.ai", "ollama.com", "registry.ollama.com"})

# distribution/reference grammar; upper case is accepted in paths because hf.co and ollama use it
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*"
_REPO = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
_MAX_REPO = 255


@dataclass(frozen=True)
class Reference:
    """A parsed registry reference."""

    registry: str                 # host[:port], e.g. "ghcr.io", "localhost:5000"
    repository: str               # e.g. "library/phi3", "org/team/model"
    tag: Optional[str] = None
    digest: Optional[Digest] = None
    #: whether the text named the registry (False: an Ollama short name, registry.ollama.ai implied)
    explicit_registry: bool = field(default=True, compare=False)

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return str(self.digest) if self.digest else (self.tag or DEFAULT_TAG)

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def is_ollama(self) -> bool:
        return self.registry.lower() in OLLAMA_REGISTRY_HOSTS

    @property
    def hostname(self) -> str:
        h = self.registry
        if h.startswith("["):
            return h[1:h.index("]")]
        return h.rsplit(":", 1)[0] if ":" in h else h

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.registry, self.repository, tag, None, self.explicit_registry)

    def to_model_name(self) -> ModelName:
        """The ollama model name this reference is stored under locally."""
        parts = self.repository.split("/")
        if len(parts) == 1:
            ns, model = DEFAULT_NAMESPACE, parts[0]
        elif len(parts) == 2:
            ns, model = parts
        else:
            raise InvalidName(f"{self} has {len(parts)} path components but ollama names have at most "
                              "namespace/model; give a local name with --name")
        return parse_name(f"{self.registry}/{ns}/{model}:{self.tag or DEFAULT_TAG}")

    @classmethod
    def from_model_name(cls, name: ModelName) -> "Reference":
        return cls(name.host, f"{name.namespace}/{name.model}", name.tag)


def _looks_like_host(s: str) -> bool:
    return "." in s or ":" in s or s == "localhost" or s.startswith("[")


def parse_reference(s: str) -> Reference:
    """Parse a registry reference (see the module docstring). Raises :class:`InvalidName`."""
    if not isinstance(s, str) or not s:
        raise InvalidName("empty reference: expected registry/repository[:tag][@sha256:…]")
    shown = s if len(s) <= 200 else s[:197] + "..."
    if any(ord(c) < 33 or ord(c) > 126 for c in s):
        raise InvalidName(f"invalid reference {shown!r}: only printable ASCII without spaces is allowed")
    rest = s
    for prefix in ("docker://", "oci://", "https://", "http://"):
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
            break
    digest = None
    if "@" in rest:
        rest, _, d = rest.partition("@")
        try:
            digest = parse_digest(d)
        except Exception:
            raise InvalidName(f"invalid reference {shown!r}: {d!r} is not a sha256 digest") from None
        if d.startswith("sha256-"):
            raise InvalidName(f"invalid reference {shown!r}: write the digest as sha256:<hex>")
    first, sep, remainder = rest.partition("/")
    explicit = True
    if sep and _looks_like_host(first):
        registry, path = first, remainder
        if not _HOST.match(registry):
            raise InvalidName(f"invalid reference {shown!r}: {registry!r} is not a valid registry host")
    else:
        # no registry host: an ollama name (registry.ollama.ai, namespace library)
        registry, path = DEFAULT_HOST, rest
        explicit = False
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG.match(tag):
            raise InvalidName(f"invalid reference {shown!r}: tag {tag!r} must be 1-128 of [A-Za-z0-9_.-] "
                              "starting with a letter, digit or '_'")
    if not path:
        raise InvalidName(f"invalid reference {shown!r}: no repository")
    if registry.lower() in OLLAMA_REGISTRY_HOSTS and "/" not in path:
        path = f"{DEFAULT_NAMESPACE}/{path}"
    if registry in ("docker.io", "index.docker.io") and "/" not in path:
        path = f"library/{path}"
    if len(path) > _MAX_REPO or not _REPO.match(path):
        raise InvalidName(f"invalid reference {shown!r}: repository {path!r} must be '/'-separated "
                          "components of letters and digits joined by '.', '_', '__' or '-'")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest, explicit)


def parse_destination(s: str) -> Reference:
    """A reference something will be written to. It must name its registry: a short Ollama name
    would send the model to the public registry.ollama.ai, and a bare ``HOST:PORT`` (the repository
    forgotten) would be read as a model name there. Both are refused, naming the fix."""
    rest = s
    for prefix in ("docker://", "oci://", "https://", "http://"):
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
            break
    if "/" not in rest:
        host = rest[1:rest.index("]")] if rest.startswith("[") and "]" in rest else rest.rsplit(":", 1)[0]
        if host == "localhost" or "." in host or rest.startswith("["):
            raise InvalidName(f"{s!r} names a registry but no repository: add /NAMESPACE/MODEL[:TAG] "
                              f"(e.g. {rest}/team/model:1)")
    ref = parse_reference(s)
    if ref.repository != ref.repository.lower():
        raise InvalidName(f"{s!r}: registries take repository names in lower case only (the OCI distribution "
                          f"grammar); push to {ref.registry}/{ref.repository.lower()}:{ref.tag or DEFAULT_TAG}")
    if not ref.explicit_registry:
        raise InvalidName(f"{s!r} does not name a registry, so it would go to the public {DEFAULT_HOST}: write "
                          f"the destination in full, HOST[:PORT]/NAMESPACE/MODEL[:TAG] (for Ollama's registry "
                          f"itself: {DEFAULT_HOST}/{ref.repository}:{ref.tag or DEFAULT_TAG})")
    return ref

"""How each registry wants blobs uploaded, and where a long upload keeps its place.

**Policies.** Registries differ in what uploads they take (../shared/docs/landscape.md, "registry
quirks"); guessing from a 413 after sending gigabytes is too late. A policy is chosen by host from
the table below; ``$OLLAMA_OCI_REGISTRIES`` (else ``~/.config/ollama-oci/registries.toml``) adds or
overrides entries::

    [[registry]]
    host = "harbor.internal"       # exact host[:port], or "*.example.com"
    like = "ghcr.io"               # start from a built-in entry (optional)
    max_body = "10GB"              # nginx in front: larger single requests fail
    chunk_size = "256MB"

Fields: ``chunked`` (always upload in PATCH chunks), ``monolithic_only`` (never chunked: one PUT
per blob), ``chunk_size``, ``max_chunk`` (PATCH bodies above are refused), ``max_body`` (a single
request above is refused: chunk instead), ``max_layer`` (the largest blob the registry stores).

**Resumable uploads.** A blob of ``RESUMABLE_ABOVE`` bytes or more goes up in chunks (unless the
registry takes only monolithic uploads), and after each chunk the session URL and offset are
written to ``$OLLAMA_OCI_STATE_DIR`` (else ``~/.cache/ollama-oci/uploads``), one small file per
registry, repository and digest. A push that was killed or lost its connection asks the registry
where the session stands (``GET`` on it, the ``Range`` header) and goes on from there; a session the
registry has forgotten starts over.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Optional

from ..configfile import cache_dir, parse_size, read_toml
from ..errors import InvalidInput
from ..fsutil import atomic_write, unlink_quiet

__all__ = ["UploadPolicy", "policy_for", "UploadState", "RESUMABLE_ABOVE", "RESUMABLE_CHUNK"]

#: blobs this large or larger are uploaded in chunks whose progress survives a crash
RESUMABLE_ABOVE = 256 << 20
#: the chunk of a resumable upload (where no registry rule says otherwise)
RESUMABLE_CHUNK = 64 << 20
#: a saved session older than this is not trusted (registries purge idle uploads after a day or so)
STATE_MAX_AGE = 24 * 3600

GB = 1000 ** 3
MIB = 1 << 20


@dataclass(frozen=True)
class UploadPolicy:
    name: str = "default"
    chunked: bool = False
    monolithic_only: bool = False
    chunk_size: Optional[int] = None
    max_chunk: Optional[int] = None
    max_body: Optional[int] = None
    max_layer: Optional[int] = None
    source: str = ""

    def plan(self, size: int, forced_chunk: Optional[int] = None) -> Optional[int]:
        """The chunk size to upload a blob of ``size`` bytes with, or None for one monolithic PUT."""
        if self.monolithic_only and forced_chunk is None:
            return None
        chunked = (forced_chunk is not None or self.chunked or size >= RESUMABLE_ABOVE
                   or (self.max_body is not None and size > self.max_body))
        if not chunked:
            return None
        chunk = forced_chunk or self.chunk_size or RESUMABLE_CHUNK
        for cap in (self.max_chunk, self.max_body):
            if cap is not None:
                chunk = min(chunk, cap)
        return max(chunk, 1)

    def check_layer(self, size: int, what: str) -> None:
        if self.max_layer is not None and size > self.max_layer:
            raise InvalidInput(
                f"{what} is {size:,} bytes; {self.name} stores layers of at most {self.max_layer:,} bytes"
                f"{f' ({self.source})' if self.source else ''}: push it to a registry without that limit, or "
                f"pack a smaller quantization")


#: built-in rules, first match wins (host patterns as fnmatch)
BUILTIN: list[tuple[tuple[str, ...], UploadPolicy]] = [
    (("ghcr.io",), UploadPolicy("GHCR", chunked=True, chunk_size=4 * MIB, max_chunk=4 * MIB, max_layer=10 * GB,
                                source="PATCH bodies over 4 MiB get 416; 10 GB per layer")),
    (("*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn", "public.ecr.aws"),
     UploadPolicy("Amazon ECR", monolithic_only=True, source="answers 201 after the first chunk")),
    (("gcr.io", "*.gcr.io", "*-docker.pkg.dev", "*.pkg.dev"),
     UploadPolicy("Google Artifact Registry", monolithic_only=True, source="no chunked uploads")),
    (("quay.io",), UploadPolicy("Quay", max_body=20 * GB, source="a single blob PUT over 20 GB is refused")),
]


def _overrides() -> list[tuple[tuple[str, ...], UploadPolicy]]:
    path = os.environ.get("OLLAMA_OCI_REGISTRIES") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"), "ollama-oci",
        "registries.toml")
    if not os.path.exists(path):
        return []
    doc = read_toml(path, "registries file")
    out = []
    fields = {f.name for f in dataclasses.fields(UploadPolicy)} - {"name", "source"}
    for i, entry in enumerate(doc.get("registry", [])):
        where = f"{path}: registry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str):
            raise InvalidInput(f"{where} needs host = \"registry.example.com\"")
        unknown = set(entry) - fields - {"host", "like"}
        if unknown:
            raise InvalidInput(f"{where}: unknown keys {sorted(unknown)}; known: host, like, {', '.join(sorted(fields))}")
        base = UploadPolicy(entry["host"], source=f"set in {path}")
        if "like" in entry:
            base = dataclasses.replace(_builtin(str(entry["like"])), name=f"{entry['host']} (like {entry['like']})",
                                       source=f"set in {path}")
        kw = {}
        for k in fields & set(entry):
            v = entry[k]
            if k in ("chunked", "monolithic_only"):
                if not isinstance(v, bool):
                    raise InvalidInput(f"{where}: {k} must be true or false")
                kw[k] = v
            else:
                kw[k] = parse_size(v, f"{where}: {k}")
        out.append(((entry["host"].lower(),), dataclasses.replace(base, **kw)))
    return out


def _builtin(host: str) -> UploadPolicy:
    for patterns, pol in BUILTIN:
        if any(fnmatch.fnmatchcase(host.lower(), p) for p in patterns):
            return pol
    return UploadPolicy()


def policy_for(registry: str) -> UploadPolicy:
    """The upload rules for ``registry`` (host[:port]): configured ones first, then the built-in table."""
    host = registry.lower()
    for patterns, pol in _overrides():
        if any(fnmatch.fnmatchcase(host, p) for p in patterns):
            return pol
    return _builtin(host.split(":")[0] if host.count(":") == 1 else host)


class UploadState:
    """Where a chunked upload of one blob stands, kept on disk between runs."""

    def __init__(self, registry: str, repository: str, digest: str):
        root = os.environ.get("OLLAMA_OCI_STATE_DIR") or cache_dir("uploads")
        key = hashlib.sha256(f"{registry}\n{repository}\n{digest}".encode()).hexdigest()[:32]
        self.path = os.path.join(root, key + ".json")
        self.registry, self.repository, self.digest = registry, repository, str(digest)

    def load(self) -> Optional[tuple[str, int]]:
        """(session URL, offset) of an earlier run, if it is recent and for this very blob."""
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read(64 << 10))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("digest") != self.digest or doc.get("registry") != self.registry \
                or doc.get("repository") != self.repository or not isinstance(doc.get("location"), str) \
                or not isinstance(doc.get("offset"), int) or time.time() - float(doc.get("saved", 0)) > STATE_MAX_AGE:
            return None
        return doc["location"], doc["offset"]

    def save(self, location: str, offset: int) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        doc = {"registry": self.registry, "repository": self.repository, "digest": self.digest,
               "location": location, "offset": offset, "saved": time.time()}
        atomic_write(self.path, json.dumps(doc).encode(), mode=0o600, durable=False)

    def clear(self) -> None:
        unlink_quiet(self.path)

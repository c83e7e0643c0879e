"""The artifact model: media types, descriptors, ollama's config and manifest.

Each value has canonical bytes produced by :mod:`ollama_oci.gojson` exactly as
ollama's Go code writes them (docs/ollama-format.md sections 3 and 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from . import gojson
from .digest import Digest, digest_bytes, parse_digest
from .errors import InvalidInput

__all__ = [
    "MT", "Descriptor", "Config", "Manifest", "parse_manifest", "MAX_MANIFEST_BYTES", "ollama_manifest_id",
]


class MT:
    """Media types."""

    MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    CONFIG = "application/vnd.docker.container.image.v1+json"
    MODEL = "application/vnd.ollama.image.model"
    ADAPTER = "application/vnd.ollama.image.adapter"
    PROJECTOR = "application/vnd.ollama.image.projector"
    DRAFT = "application/vnd.ollama.image.draft"
    TEMPLATE = "application/vnd.ollama.image.template"
    PROMPT = "application/vnd.ollama.image.prompt"   # legacy name of TEMPLATE
    SYSTEM = "application/vnd.ollama.image.system"
    PARAMS = "application/vnd.ollama.image.params"
    MESSAGES = "application/vnd.ollama.image.messages"
    LICENSE = "application/vnd.ollama.image.license"

    #: short names used by the CLI and ``show``
    SHORT = {MODEL: "model", ADAPTER: "adapter", PROJECTOR: "projector", DRAFT: "draft",
             TEMPLATE: "template", PROMPT: "template", SYSTEM: "system", PARAMS: "params",
             MESSAGES: "messages", LICENSE: "license", CONFIG: "config"}
    GGUF_LAYERS = frozenset({MODEL, ADAPTER, PROJECTOR, DRAFT})
    TEXT_LAYERS = frozenset({TEMPLATE, PROMPT, SYSTEM, LICENSE})
    JSON_LAYERS = frozenset({PARAMS, MESSAGES})


#: manifests read from anywhere are refused above this size (go-containerregistry uses 100 MiB;
#: a real ollama manifest is under 2 KiB)
MAX_MANIFEST_BYTES = 4 << 20
#: the largest config blob we will read
MAX_CONFIG_BYTES = 4 << 20


@dataclass(frozen=True)
class Descriptor:
    """A layer or config reference: media type, digest, size (+ ollama's optional ``from``)."""

    media_type: str
    digest: Digest
    size: int
    from_: Optional[str] = None
    name: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "digest", parse_digest(self.digest))
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise InvalidInput(f"invalid size {self.size!r} for {self.digest}: expected a non-negative integer")

    def to_go(self) -> dict:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.from_:
            d["from"] = self.from_
        if self.name:
            d["name"] = self.name
        return d

    @property
    def kind(self) -> str:
        return MT.SHORT.get(self.media_type, self.media_type)


@dataclass(frozen=True)
class Config:
    """ollama's ``ConfigV2``. Field order is the JSON key order."""

    model_format: str = "gguf"
    model_family: str = ""
    model_families: Optional[tuple[str, ...]] = None   # None encodes as null (a nil slice)
    model_type: str = ""
    file_type: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    remote_host: str = ""
    remote_model: str = ""
    capabilities: tuple[str, ...] = ()
    context_length: int = 0
    embedding_length: int = 0
    base_name: str = ""
    architecture: str = "amd64"    # a constant in ollama, not the host's architecture
    os: str = "linux"
    #: diff_ids for the legacy (ollama <= 0.32.6) encoding with ``rootfs``; None = current encoding
    rootfs_diff_ids: Optional[tuple[str, ...]] = None

    def to_go(self) -> dict:
        d: dict[str, Any] = {
            "model_format": self.model_format,
            "model_family": self.model_family,
            "model_families": None if self.model_families is None else list(self.model_families),
            "model_type": self.model_type,
            "file_type": self.file_type,
        }
        for k in ("renderer", "parser", "requires", "remote_host", "remote_model"):
            v = getattr(self, k)
            if v:
                d[k] = v
        if self.capabilities:
            d["capabilities"] = list(self.capabilities)
        for k in ("context_length", "embedding_length"):
            v = getattr(self, k)
            if v:
                d[k] = v
        if self.base_name:
            d["base_name"] = self.base_name
        d["architecture"] = self.architecture
        d["os"] = self.os
        if self.rootfs_diff_ids is not None:
            d["rootfs"] = {"type": "layers", "diff_ids": list(self.rootfs_diff_ids)}
        return d

    def to_bytes(self) -> bytes:
        """``json.NewEncoder().Encode(config)``: compact, struct order, trailing newline."""
        return gojson.dumps(self.to_go(), newline=True)

    @classmethod
    def from_json(cls, data: bytes) -> "Config":
        obj = _json_object(data, MAX_CONFIG_BYTES, "config blob")

        def s(k):
            v = obj.get(k)
            return v if isinstance(v, str) else ""

        def i(k):
            v = obj.get(k)
            return v if isinstance(v, int) and not isinstance(v, bool) else 0

        fams = obj.get("model_families")
        rootfs = obj.get("rootfs")
        diff_ids = None
        if isinstance(rootfs, dict) and isinstance(rootfs.get("diff_ids"), list):
            diff_ids = tuple(x for x in rootfs["diff_ids"] if isinstance(x, str))
        caps = obj.get("capabilities")
        return cls(
            model_format=s("model_format"), model_family=s("model_family"),
            model_families=tuple(x for x in fams if isinstance(x, str)) if isinstance(fams, list) else None,
            model_type=s("model_type"), file_type=s("file_type"), renderer=s("renderer"),
            parser=s("parser"), requires=s("requires"), remote_host=s("remote_host"),
            remote_model=s("remote_model"),
            capabilities=tuple(x for x in caps if isinstance(x, str)) if isinstance(caps, list) else (),
            context_length=i("context_length"), embedding_length=i("embedding_length"),
            base_name=s("base_name"), architecture=s("architecture"), os=s("os"),
            rootfs_diff_ids=diff_ids,
        )


@dataclass(frozen=True)
class Manifest:
    """An ollama manifest: config descriptor plus layers, in order."""

    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    media_type: str = MT.MANIFEST
    schema_version: int = 2

    def to_go(self) -> dict:
        return {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_go(),
            "layers": [l.to_go() for l in self.layers] if self.layers else None,
        }

    def to_bytes(self, *, newline: bool = True) -> bytes:
        """The manifest bytes.

        ``newline=True``: what ``ollama create`` writes to the local store
        (``Encoder.Encode``).  ``newline=False``: what ``ollama push`` sends
        (``json.Marshal``), the form registries and OCI layouts hold.
        """
        return gojson.dumps(self.to_go(), newline=newline)

    def digest(self, *, newline: bool = True) -> Digest:
        return digest_bytes(self.to_bytes(newline=newline))

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob the manifest references: layers, then the config (ollama's pull order)."""
        return (*self.layers, self.config) if self.config.digest else tuple(self.layers)

    @property
    def size(self) -> int:
        """Sum of blob sizes (what ``ollama list`` shows)."""
        return sum(d.size for d in self.blobs)

    def layers_of(self, media_type: str) -> list[Descriptor]:
        return [l for l in self.layers if l.media_type == media_type]


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidInput(f"manifest {where} is not a JSON object")
    mt = obj.get("mediaType")
    size = obj.get("size")
    if not isinstance(mt, str):
        raise InvalidInput(f"manifest {where} has no mediaType")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"manifest {where} has an invalid size {size!r}")
    frm = obj.get("from")
    name = obj.get("name")
    return Descriptor(mt, parse_digest(obj.get("digest", "")), size,
                      frm if isinstance(frm, str) and frm else None,
                      name if isinstance(name, str) and name else None)


def _json_object(data: bytes, limit: int, what: str) -> dict:
    """Untrusted JSON: size-capped, and a JSON object, or InvalidInput naming ``what``."""
    if len(data) > limit:
        raise InvalidInput(f"{what} is {len(data)} bytes, over the {limit} byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply to be a manifest or config") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return obj


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate manifest bytes (Docker v2 or OCI image manifest)."""
    obj = _json_object(data, MAX_MANIFEST_BYTES, "manifest")
    sv = obj.get("schemaVersion")
    if sv != 2 or isinstance(sv, bool):
        raise InvalidInput(f"unsupported manifest schemaVersion {sv!r}; expected 2")
    mt = obj.get("mediaType", MT.MANIFEST)
    if mt in (MT.OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json",
              "application/vnd.ollama.manifest.list.v2+json"):
        raise InvalidInput(f"{mt} is an index of manifests, not a model manifest")
    layers = obj.get("layers")
    if layers is None:
        layers = []
    if not isinstance(layers, list):
        raise InvalidInput("manifest layers is not a list")
    return Manifest(
        config=_descriptor(obj.get("config"), "config"),
        layers=tuple(_descriptor(l, f"layer {i}") for i, l in enumerate(layers)),
        media_type=mt if isinstance(mt, str) else MT.MANIFEST,
        schema_version=2,
    )


def go_decoder_consumed(data: bytes) -> int:
    """How many bytes of a file holding ``data`` Go's ``json.Decoder`` reads to decode its first value.

    The decoder reads into a buffer that starts at 512 bytes and grows to ``2*cap + 512`` (512, 1536,
    3584, 7680, ...), each read filling it; it stops as soon as the value's closing brace is in.
    So a value that ends exactly on one of those sizes leaves the rest (the newline ``ollama create``
    writes) unread."""
    import json as _json
    size = len(data)
    try:
        text = data.decode("utf-8")
        start = len(text) - len(text.lstrip(" \t\r\n"))
        _, end_char = _json.JSONDecoder().raw_decode(text, start)
        end = len(text[:end_char].encode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return size
    total = cap = 0
    while total < end and total < size:
        if cap - total < 512:
            cap = 2 * cap + 512
        total = min(cap, size)
    return total


def ollama_manifest_id(data: bytes) -> Digest:
    """The ID ``ollama list`` shows for a manifest file: the sha256 of the bytes its JSON decoder read
    (server/manifest.go hashes through a TeeReader), which is the whole file except when the JSON ends
    exactly where a read of the decoder's growing buffer ends (512, 1536, 3584, ... bytes)."""
    return digest_bytes(data[:go_decoder_consumed(data)])

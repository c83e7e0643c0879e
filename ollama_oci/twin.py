"""Ollama models out to the other OCI model formats: a ModelPack or Docker-model twin, weights shared.

A twin is a second manifest and config around the same weight blobs (../shared/docs/model-formats.md
§3): the GGUF is ``application/vnd.cncf.model.weight.v1.raw`` in a CNCF ModelPack artifact and
``application/vnd.docker.ai.gguf.v3`` in a Docker Model Runner artifact, under the digest Ollama's
``model`` layer has. Publishing a twin next to the Ollama model therefore uploads no weight bytes: in
the same repository the blob is there already, in another repository of the same registry it is
mounted.

What a twin carries and what it cannot (§3.3, §3.4):

* the model GGUF, a projector (``mmproj-…gguf``, after the model, as DMR looks for it) and every
  license file, byte for byte, each with ``org.cncf.model.filepath`` and the file metadata
  annotations DMR writes;
* the config is derived from the GGUF header, never from Ollama's strings: ModelPack ``paramSize`` to
  one decimal as the spec's grammar asks, DMR's ``parameters`` to two, ``diffIds``/``diff_ids`` one per
  layer in layer order (raw layers: diffId = digest), dates in RFC 3339 with ``Z``, no empty keys;
* Ollama's Go template is *not* put where Jinja is expected (runtimes use the GGUF's own Jinja); params
  (but ``num_ctx``, which becomes DMR's ``context_size``), system prompt, messages and adapters have no
  slot: :attr:`Twin.not_carried` lists them.

One manifest per tag (neither DMR nor llmman resolves an image index; Ollama asks for Docker schema 2
only), so a twin gets its own tag or repository: :func:`twin_reference` applies the convention.

    from ollama_oci.twin import make_twin, publish_twin
    twin = make_twin(OllamaStore(), parse_name("gemma3:270m"), "modelpack")
    publish_twin(twin, src_store, src_ref, registry_repo, ref)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .digest import digest_bytes
from .engine import CopyOptions, CopyReport, move_blobs
from .errors import InvalidInput, Unsupported
from .modelinfo import model_info
from .spec import MT, Descriptor, parse_manifest
from .stores.contract import bind
from .stores.memory import MemoryStore

__all__ = ["FORMATS", "Twin", "make_twin", "make_twins", "publish_twin", "copy_as", "twin_reference", "TWIN_PATTERN"]

MODELPACK = "modelpack"
DOCKER = "docker"
FORMATS = (MODELPACK, DOCKER)

MP_MANIFEST = "application/vnd.cncf.model.manifest.v1+json"      # artifactType
MP_CONFIG = "application/vnd.cncf.model.config.v1+json"
MP_WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
MP_DOC = "application/vnd.cncf.model.doc.v1.raw"
DMR_CONFIG = "application/vnd.docker.ai.model.config.v0.1+json"
DMR_GGUF = "application/vnd.docker.ai.gguf.v3"
DMR_MMPROJ = "application/vnd.docker.ai.mmproj"
DMR_LICENSE = "application/vnd.docker.ai.license"

FILEPATH = "org.cncf.model.filepath"
FILE_METADATA = "org.cncf.model.file.metadata+json"
UNTESTED = "org.cncf.model.file.mediatype.untested"
TITLE = "org.opencontainers.image.title"

#: where a twin is published by default: the Ollama model's repository, its tag plus the format
TWIN_PATTERN = "{repository}:{tag}-{format}"


@dataclass
class Twin:
    """A ModelPack or Docker-model artifact for an Ollama model: manifest and config bytes, and the
    layers (the Ollama model's blobs under the other format's media types)."""

    format: str
    manifest: bytes
    config: bytes
    layers: list = field(default_factory=list)          # Descriptors in the twin's media types
    not_carried: list = field(default_factory=list)     # (Ollama layer kind, digest, why)

    @property
    def manifest_digest(self):
        return digest_bytes(self.manifest)

    def to_json(self) -> dict:
        return {"format": self.format, "manifest_digest": str(self.manifest_digest),
                "layers": [{"mediaType": d.media_type, "digest": str(d.digest), "size": d.size} for d in self.layers],
                "not_carried": [{"kind": k, "digest": d, "why": w} for k, d, w in self.not_carried]}


def _created(created: Optional[_dt.datetime]) -> str:
    """RFC 3339 in UTC with ``Z`` (a naive ``isoformat()`` has no offset and fails ``date-time``);
    ``SOURCE_DATE_EPOCH`` makes builds reproducible."""
    if created is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if epoch.isdigit():
            created = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        else:
            created = _dt.datetime.now(_dt.timezone.utc)
    if created.tzinfo is None:
        raise InvalidInput("the creation time of a twin needs a time zone (RFC 3339 dates carry an offset)")
    return created.astimezone(_dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _units(n: int, decimals: int) -> str:
    """``268098176`` -> ``268.1M`` (1 decimal, ModelPack's paramSize grammar) or ``268.10M`` (2, DMR's)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            text = f"{n / scale:.{decimals}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".") if decimals == 1 else re.sub(r"\.0+$", "", text)
            return text + unit
    return str(n)


def _binary_size(n: int) -> str:
    """DMR's ``size`` (gguf-parser's binary units): ``246587904`` -> ``235.16MiB``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f}".rstrip("0").rstrip(".") + unit
    return f"{n}B"


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s or "model"


def _file_annotations(path: str, size: int, created: str) -> dict:
    meta = json.dumps({"name": path, "mode": 0o644, "uid": 0, "gid": 0, "size": size, "mtime": created,
                       "typeflag": 0}, separators=(",", ":"))
    return {FILEPATH: path, FILE_METADATA: meta, UNTESTED: "false", TITLE: path}


def _layer_json(mt: str, d: Descriptor, ann: dict) -> dict:
    return {"mediaType": mt, "digest": str(d.digest), "size": d.size, "annotations": ann}


def make_twin(store: Any, ref: Any, fmt: str, *, name: Optional[str] = None,
              created: Optional[_dt.datetime] = None) -> Twin:
    """Build the ``fmt`` (``modelpack`` or ``docker``) twin of the Ollama model ``ref`` in ``store``.

    Reads the manifest, the params layer (small) and the model GGUF's header (a range read of its
    first megabytes); moves nothing. ``name`` is the model's name in the twin (``descriptor.name`` and
    file names; default: the repository's last part).
    """
    return make_twins(store, ref, [fmt], name=name, created=created)[0]


def make_twins(store: Any, ref: Any, formats: Sequence[str], *, name: Optional[str] = None,
               created: Optional[_dt.datetime] = None) -> list[Twin]:
    """:func:`make_twin` for several formats, the model's manifest, params and GGUF header read once."""
    from .bridge import _header, read_small
    for fmt in formats:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown twin format {fmt!r}; use one of {', '.join(FORMATS)}")
    store, ref = bind(store, ref)
    data, _ = store.fetch_manifest(ref)
    m = parse_manifest(data)
    base = _slug(name or _repo_tail(ref))
    when = _created(created)
    models = [d for d in m.layers if d.media_type == MT.MODEL]
    if len(models) != 1:
        raise Unsupported(f"{store.describe_ref(ref)} has {len(models)} model layers; a twin needs exactly one")
    g = _header(store, models[0])
    info = model_info(g)
    params = None
    for d in m.layers:
        if d.media_type == MT.PARAMS:
            try:
                params = json.loads(read_small(store, d))
            except ValueError:
                raise InvalidInput(f"{store.describe_ref(ref)}: its params layer {d.digest} is not JSON") from None
    return [_twin(fmt, m, models[0], info, max(models[0].size - g.data_offset, 0), params, base, when)
            for fmt in formats]


def _twin(fmt: str, m: Any, model: Descriptor, info: Any, tensor_bytes: int, params: Any, base: str,
          when: str) -> Twin:
    """One twin of the model ``m`` (its facts already read, see :func:`make_twins`)."""
    layers: list[tuple[str, Descriptor, dict]] = []
    not_carried: list[tuple[str, str, str]] = []
    context_size = None
    model_file = f"{base}.gguf"
    layers.append((MP_WEIGHT if fmt == MODELPACK else DMR_GGUF, model,
                   _file_annotations(model_file, model.size, when)))
    projectors = [d for d in m.layers if d.media_type == MT.PROJECTOR]
    for i, d in enumerate(projectors):   # after the model: DMR and llmman take the first GGUF as the model
        path = f"mmproj-{base}{'' if i == 0 else f'-{i + 1}'}.gguf"  # DMR finds it by "mmproj" in the name
        layers.append((MP_WEIGHT if fmt == MODELPACK else DMR_MMPROJ, d, _file_annotations(path, d.size, when)))
    licenses = [d for d in m.layers if d.media_type == MT.LICENSE]
    for i, d in enumerate(licenses):
        path = "LICENSE" if i == 0 else f"LICENSE-{i + 1}"
        layers.append((MP_DOC if fmt == MODELPACK else DMR_LICENSE, d, _file_annotations(path, d.size, when)))
    for d in m.layers:
        if d.media_type in (MT.MODEL, MT.PROJECTOR, MT.LICENSE):
            continue
        kind = d.kind
        if d.media_type == MT.PARAMS:
            num_ctx = params.get("num_ctx") if isinstance(params, dict) else None
            if fmt == DOCKER and isinstance(num_ctx, (int, float)) and 0 < num_ctx < 2 ** 31:
                context_size = int(num_ctx)
                rest = sorted(k for k in params if k != "num_ctx")
                if rest:
                    not_carried.append((kind, str(d.digest), f"only num_ctx has a home (context_size); "
                                                            f"not carried: {', '.join(rest)}"))
                continue
            not_carried.append((kind, str(d.digest), f"{fmt} has no slot for Ollama's parameters"))
        elif d.media_type in (MT.TEMPLATE, MT.PROMPT):
            not_carried.append((kind, str(d.digest), "a Go template is not Jinja; runtimes use the GGUF's own "
                                                    "chat template"))
        else:
            not_carried.append((kind, str(d.digest), f"{fmt} has no slot for Ollama's {kind} layer"))
    descs = [Descriptor(mt, d.digest, d.size) for mt, d, _ in layers]
    diff_ids = [str(d.digest) for d in descs]           # raw layers: diffId = digest, one per layer, in order
    arch = info.architecture if info.architecture and info.architecture != "unknown" else ""
    if fmt == MODELPACK:
        descriptor = {"name": base}
        if arch:
            descriptor["family"] = arch
        descriptor["createdAt"] = when
        cfg: dict = {"format": "gguf"}
        if arch:
            cfg["architecture"] = arch
        if info.parameter_count >= 1000:     # the spec's grammar needs a unit: <count><Q|T|B|M|K>
            cfg["paramSize"] = _units(info.parameter_count, 1)
        if info.file_type and info.file_type != "unknown":
            cfg["quantization"] = info.file_type
        if projectors:
            cfg["capabilities"] = {"inputTypes": ["text", "image"], "outputTypes": ["text"]}
        config = {"descriptor": descriptor, "config": cfg, "modelfs": {"type": "layers", "diffIds": diff_ids}}
        config_mt = MP_CONFIG
    else:
        cfg = {"format": "gguf"}
        if info.file_type and info.file_type != "unknown":
            cfg["quantization"] = ("ALL_F32" if info.file_type_id == 0 else f"MOSTLY_{info.file_type}")
        if info.parameter_count:
            cfg["parameters"] = _units(info.parameter_count, 2)
        if arch:
            cfg["architecture"] = arch
        cfg["size"] = _binary_size(tensor_bytes)
        if context_size is not None:
            cfg["context_size"] = context_size
        config = {"config": cfg, "descriptor": {"created": when},
                  "rootfs": {"type": "rootfs", "diff_ids": diff_ids}}
        config_mt = DMR_CONFIG
    config_bytes = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
    manifest: dict = {"schemaVersion": 2, "mediaType": MT.OCI_MANIFEST}
    if fmt == MODELPACK:
        manifest["artifactType"] = MP_MANIFEST
    manifest["config"] = {"mediaType": config_mt, "digest": str(digest_bytes(config_bytes)), "size": len(config_bytes)}
    manifest["layers"] = [_layer_json(mt, d, ann) for mt, d, ann in layers]
    return Twin(fmt, json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode(), config_bytes, descs,
                not_carried)


def _repo_tail(ref: Any) -> str:
    repo = getattr(ref, "repository", None)
    if isinstance(repo, str):
        return repo.rsplit("/", 1)[-1]
    return getattr(ref, "model", None) or str(ref)


def publish_twin(twin: Twin, src: Any, src_ref: Any, dst: Any, dst_ref: Any,
                 options: Optional[CopyOptions] = None) -> CopyReport:
    """Put ``twin`` into ``dst`` at ``dst_ref``: the layers come from ``src`` (the Ollama model's store
    or repository: a blob ``dst`` has is left alone, one in another repository of the same registry is
    mounted), then the config, then the manifest."""
    opts = options or CopyOptions()
    src, src_ref = bind(src, src_ref)
    dst, dst_ref = bind(dst, dst_ref)
    mem = MemoryStore(name=f"{twin.format} twin")
    cdesc = mem.add_blob(twin.config, MP_CONFIG if twin.format == MODELPACK else DMR_CONFIG)
    report = CopyReport(src.describe_ref(src_ref), dst.describe_ref(dst_ref), twin.manifest_digest, MT.OCI_MANIFEST)
    check = getattr(dst, "check_blobs", None)
    if check is not None:
        check(twin.layers + [cdesc])
    report.blobs = move_blobs(src, dst, twin.layers, opts) + move_blobs(mem, dst, [cdesc], opts)
    dst.tag(dst_ref, twin.manifest, MT.OCI_MANIFEST)
    return report


def copy_as(src: Any, src_ref: Any, dst: Any, dst_ref: Any, fmt: str, options: Optional[CopyOptions] = None, *,
            name: Optional[str] = None, created: Optional[_dt.datetime] = None) -> tuple[Twin, CopyReport]:
    """Write the ``fmt`` twin of the Ollama model ``src_ref`` to ``dst`` (:func:`make_twin`, then
    :func:`publish_twin` with ``src`` as the blobs' source)."""
    twin = make_twin(src, src_ref, fmt, name=name, created=created)
    return twin, publish_twin(twin, src, src_ref, dst, dst_ref, options)


def twin_reference(ref_text: str, fmt: str, pattern: str = TWIN_PATTERN) -> str:
    """Where the ``fmt`` twin of the model at ``ref_text`` (``host/repo:tag``) goes, by ``pattern`` with
    ``{repository}`` (host included), ``{tag}`` and ``{format}``: ``{repository}:{tag}-{format}`` (the
    default: a tag beside the Ollama model's) or, say, ``{repository}-{format}:{tag}`` (a parallel
    repository)."""
    from .reference import parse_reference
    r = parse_reference(ref_text)
    if r.digest is not None and not r.tag:
        raise InvalidInput(f"{ref_text}: a twin needs a tag to name it by, not only a digest")
    try:
        out = pattern.format(repository=f"{r.registry}/{r.repository}", tag=r.tag or "latest", format=fmt)
    except (KeyError, IndexError, ValueError) as e:
        raise InvalidInput(f"twin name pattern {pattern!r}: {e}; use {{repository}}, {{tag}} and {{format}}") from None
    if parse_reference(out) == r:
        raise InvalidInput(f"twin name pattern {pattern!r} gives the Ollama model's own reference; one manifest "
                           f"per tag (include {{format}})")
    return out

"""Other OCI model formats into Ollama's: CNCF ModelPack and Docker model artifacts, weights shared.

A raw GGUF is the same bytes, under the same digest, in all three formats (../shared/docs/
model-formats.md §3.1), so turning a ModelPack or Docker-model artifact into an Ollama model is a new
config blob and manifest around the same weight blob: copied only if the destination lacks it, and
mounted inside one registry. What Ollama's config says comes from the GGUF header (read with a range
request of its first megabytes), never from the other format's strings (§3.4, pitfall: they vary by
tool); the Jinja chat template (a layer of its own, else the GGUF's) becomes an Ollama Go template and
stop words through :mod:`.chat_template`; licenses become license layers, an ``mmproj`` a projector.

    from ollama_oci.bridge import to_ollama
    to_ollama(registry_store, ref, OllamaStore(), parse_name("gemma3:270m"))
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Optional

from .build import build_config, build_manifest, params_layer, template_tokens, text_layer
from .describe import DOCKER_MODEL, MODELPACK, artifact_format
from .digest import Digest, check, digest_bytes
from .engine import CopyOptions, CopyReport, copy, copy_manifest, move_blobs
from .errors import GGUFError, InvalidInput, Unsupported
from .gguf_header import parse_gguf
from .modelinfo import model_info
from .spec import MT, Descriptor
from .stores.contract import bind
from .stores.memory import MemoryStore

__all__ = ["to_ollama", "pull_any", "read_small", "Conversion", "MODELPACK", "DOCKER"]

DOCKER = DOCKER_MODEL
#: how much of a weight blob is read for its GGUF header: first, and at most (a 262k-token vocabulary
#: is ~6.5 MB); the read grows fourfold until the header parses
HEADER_START = 8 << 20
MAX_HEADER = 64 << 20
#: small layers (templates, licenses) are read whole, up to this
MAX_TEXT = 1 << 20
#: the largest file taken out of a tar weight layer
MAX_UNWRAPPED = 1 << 42

_MP = "application/vnd.cncf.model."
_MP_FILEPATH = "org.cncf.model.filepath"
#: ModelPack weight layers that wrap the file in a tar (llmman build writes these)
_TAR_FORMS = (f"{_MP}weight.v1.tar", f"{_MP}weight.v1.tar+gzip", f"{_MP}weight.v1.tar+zstd")


@dataclass
class Conversion:
    """What an artifact of another format becomes: the Ollama layers, and what was left out."""

    source_format: str
    weights: list = field(default_factory=list)      # (Descriptor, role) for model/projector layers
    licenses: list = field(default_factory=list)     # Descriptors of license files
    template: Optional[Descriptor] = None            # a Jinja chat template layer
    skipped: list = field(default_factory=list)      # (media type, path or digest, why)
    wrapped: dict = field(default_factory=dict)      # digest -> media type of weights inside a tar layer


def _filepath(layer: dict) -> str:
    ann = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    p = ann.get(_MP_FILEPATH, "")
    if not isinstance(p, str):
        return ""
    if p.startswith("/") or ".." in p.split("/") or "\\" in p or len(p) > 4096:
        raise InvalidInput(f"layer {layer.get('digest')} has a file path that leaves the model ({p!r}); refusing "
                           f"the artifact")
    return p


def classify(manifest: dict) -> Conversion:
    """Sort another format's layers into Ollama's kinds (model-formats.md §3.3)."""
    fmt, _ = artifact_format(manifest)
    if fmt not in (MODELPACK, DOCKER):
        raise Unsupported(f"not a ModelPack or Docker model artifact ({fmt})")
    conv = Conversion(fmt)
    seen_paths = set()
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, dict):
            raise InvalidInput("a layer of the manifest is not an object")
        desc = Descriptor(str(layer.get("mediaType", "")), layer.get("digest", ""), layer.get("size", -1))
        mt, path = desc.media_type, _filepath(layer)
        if path:
            if path in seen_paths:
                raise InvalidInput(f"two layers claim the file path {path!r}; refusing the artifact")
            seen_paths.add(path)
        name = posixpath.basename(path).lower()
        if mt in (f"{_MP}weight.v1.raw", "application/vnd.docker.ai.gguf.v3", "application/vnd.docker.ai.mmproj"):
            if mt == f"{_MP}weight.v1.raw" and name and not name.endswith(".gguf"):
                conv.skipped.append((mt, path, "not a GGUF file"))
                continue
            role = "projector" if mt.endswith(".mmproj") or "mmproj" in name else "model"
            conv.weights.append((desc, role))
        elif mt.startswith(f"{_MP}weight.v1.tar") or mt.startswith(f"{_MP}weight."):
            if mt == f"{_MP}weight.config.v1.raw" and name.endswith(".jinja"):
                conv.template = desc
            elif mt in _TAR_FORMS:
                if name and not name.endswith((".gguf", ".tar", ".tar.gz", ".tgz", ".tar.zst")):
                    conv.skipped.append((mt, path, "not a GGUF file"))
                    continue
                role = "projector" if "mmproj" in name else "model"
                conv.weights.append((desc, role))
                conv.wrapped[str(desc.digest)] = mt
            else:
                conv.skipped.append((mt, path, "model configuration file, not used by Ollama"))
        elif mt == "application/vnd.docker.ai.chat.template.jinja":
            conv.template = desc
        elif mt == "application/vnd.docker.ai.license" or (mt == f"{_MP}doc.v1.raw" and name.startswith(("license",
                                                                                                            "copying"))):
            conv.licenses.append(desc)
        else:
            conv.skipped.append((mt, path or str(desc.digest), "no Ollama layer holds it"))
    models = [d for d, role in conv.weights if role == "model"]
    if not models:
        raise Unsupported(f"this {fmt} artifact has no raw GGUF weight layer for Ollama to run")
    if len(models) > 1 and any(str(d.digest) in conv.wrapped for d in models):
        raise Unsupported(f"this {fmt} artifact has {len(models)} tar-wrapped weight layers; a split set must be "
                          f"raw GGUF shards")
    return conv


def _read_up_to(f, n: int) -> bytes:
    """``n`` bytes of a stream (fewer only at its end): a registry stream hands out what has arrived."""
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_small(store: Any, desc: Descriptor, limit: int = MAX_TEXT) -> bytes:
    """A small blob (a config, a text layer) whole and verified; InvalidInput above ``limit`` bytes."""
    if desc.size > limit:
        raise InvalidInput(f"blob {desc.digest} is {desc.size} bytes; more than the {limit} a config or text "
                           f"layer may have; refusing it")
    with store.fetch(desc) as f:
        data = _read_up_to(f, desc.size + 1)
    check(desc.digest, digest_bytes(data), what=f"layer {desc.digest}")
    return data


class _Hashing:
    """A stream that hashes what is read through it, and counts it."""

    def __init__(self, f):
        import hashlib
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.h.update(b)
        self.n += len(b)
        return b

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def unwrap_tar_weight(src: Any, desc: Descriptor, media_type: str, dst: Any, *, progress=None) -> Descriptor:
    """The GGUF inside a tar weight layer (``.tar``, ``+gzip``, ``+zstd``), streamed into ``dst`` as a
    blob of its own (``push_stream``: hashed as it goes; one chunk in memory at most). The tar layer's
    own digest is checked too, before anything refers to the new blob. Returns its descriptor."""
    from .stores.bundle import TarFormatError, iter_tar
    push_stream = getattr(dst, "push_stream", None)
    if push_stream is None:
        raise Unsupported(f"{dst.describe()} cannot take a blob whose digest is known only at its end; unwrap "
                          f"the tar weight into a registry, an OCI layout or the Ollama store")
    damaged: tuple = (TarFormatError, EOFError)
    with src.fetch(desc) as raw:
        outer = _Hashing(raw)
        stream: Any = outer
        if media_type.endswith("+gzip"):
            import gzip
            import zlib
            stream = gzip.GzipFile(fileobj=outer, mode="rb")
            damaged += (gzip.BadGzipFile, zlib.error)
        elif media_type.endswith("+zstd"):
            import zstandard
            stream = zstandard.ZstdDecompressor().stream_reader(outer, read_across_frames=True)
            damaged += (zstandard.ZstdError,)
        got = None
        try:
            for name, member in iter_tar(stream):
                if not posixpath.basename(name).lower().endswith(".gguf"):
                    continue            # a README or licence beside the weight
                if got is not None:
                    raise Unsupported(f"the tar weight {desc.digest} holds more than one GGUF ({name!r}); push one "
                                      f"GGUF per layer")
                if member.size > MAX_UNWRAPPED:
                    raise InvalidInput(f"the tar weight {desc.digest} claims a {member.size}-byte file; refusing it")

                def chunks(m=member):
                    while True:
                        b = m.read(1 << 20)
                        if not b:
                            return
                        yield b
                digest, size = push_stream(chunks(), progress=progress)
                got = Descriptor(MT.MODEL, digest, size)
            outer.drain()
        except damaged as e:
            raise InvalidInput(f"the tar weight {desc.digest} is damaged or not a tar ({e}); nothing refers to "
                               f"what was unpacked") from None
    check(desc.digest, Digest("sha256:" + outer.h.hexdigest()), expected_size=desc.size, actual_size=outer.n,
          what=f"tar weight layer {desc.digest}")
    if got is None:
        raise Unsupported(f"the tar weight {desc.digest} holds no .gguf file")
    return got


def merge_split_weights(src: Any, shards: list[Descriptor], dst: Any, *, progress=None) -> tuple[Any, Descriptor]:
    """Several GGUF weight layers of one model (a split set, shards in any order: their headers say
    which is which) merged into one model blob, as ``ollama create`` merges them (:mod:`.gguf_split`).

    The shards are fetched into a temporary directory (inside ``dst``'s temp area when ``dst`` is a
    local store, so the merged blob is then linked, not copied), each verified; the merge is one
    hashed pass. Returns (a temporary OCI layout holding the merged blob, its descriptor): the caller
    moves it into ``dst`` and removes the layout's directory. Needs room for the shards and the merge.
    """
    import shutil
    import tempfile

    from .digest import hash_stream
    from .fsutil import ensure_room
    from .gguf_split import open_split_set, stage_merged
    from .stores.oci_layout import OCILayout
    tmp_root = None
    if getattr(dst, "tmp_dir", None) is not None:
        dst.prepare()
        tmp_root = dst.tmp_dir()
    work = tempfile.mkdtemp(prefix="ollama-oci-split-", dir=tmp_root)
    try:
        total = sum(d.size for d in shards)
        ensure_room(work, 2 * total, "the split set and its merge")
        paths = []
        for i, d in enumerate(shards):
            p = f"{work}/shard-{i}.gguf"
            with src.fetch(d) as f, open(p, "xb") as out:
                got, n = hash_stream(f, sink=out, limit=d.size + 1)
            check(d.digest, got, expected_size=d.size, actual_size=n, what=f"shard layer {d.digest}")
            paths.append(p)
        ss = open_split_set(paths)
        layout = OCILayout(f"{work}/layout")
        layout.prepare()
        staged = stage_merged(ss, layout.tmp_dir(), progress=progress)
        digest, size = layout.commit(staged)
        for p in paths:
            os.unlink(p)
        return layout, Descriptor(MT.MODEL, digest, size)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _header(store: Any, desc: Descriptor):
    """The GGUF header of a weight blob, read with growing range requests (the whole stream's start
    where a registry ignores ranges)."""
    from .stores.contract import RangeNotSupported
    n = min(HEADER_START, desc.size)
    while True:
        try:
            f = store.fetch(desc, 0, n)
        except RangeNotSupported:
            f = store.fetch(desc)
        with f:
            data = _read_up_to(f, n)
        try:
            return parse_gguf(data, file_size=desc.size)
        except GGUFError:
            if n >= min(MAX_HEADER, desc.size):
                raise
            n = min(n * 4, MAX_HEADER, desc.size)


def plan(src: Any, manifest: dict, *, warn=None, conv: Optional[Conversion] = None,
         unwrapped: Optional[dict] = None, params: Optional[dict] = None) -> tuple[list[Descriptor], list, Any,
                                                                                   Conversion]:
    """(layers of the Ollama manifest, small blobs to write, config, conversion) for an artifact.
    ``unwrapped`` maps a tar weight layer's digest to (store, descriptor) of the GGUF taken out of it."""
    from .chat_template import TemplateDerivationError, derive_template
    conv = conv if conv is not None else classify(manifest)
    unwrapped = unwrapped or {}
    infos, layers = [], []
    template_src, vocab, eos, bos = None, None, "", ""
    for desc, role in conv.weights:
        if str(desc.digest) in conv.wrapped:
            if str(desc.digest) not in unwrapped:
                raise Unsupported(f"layer {desc.digest} wraps its weight in a tar; unwrap it first (to_ollama does)")
            hstore, desc = unwrapped[str(desc.digest)]
        else:
            hstore = src
        g = _header(hstore, desc)
        info = model_info(g)
        if role == "model":
            infos.append(info)
            template_src = info.chat_template
            vocab, eos, bos = template_tokens(g)
        layers.append(Descriptor(MT.MODEL if role == "model" else MT.PROJECTOR, desc.digest, desc.size))
    small = []
    if conv.template is not None:
        template_src = read_small(src, conv.template, MAX_TEXT).decode("utf-8", "replace")
    derived: dict = {}
    if template_src:
        try:
            d = derive_template(template_src, vocab=vocab, eos_token=eos, bos_token=bos)
            small.append(text_layer(MT.TEMPLATE, d.template))
            if d.stop:
                derived["stop"] = list(d.stop)
        except TemplateDerivationError as e:
            if warn is not None:
                warn(f"no template layer: {e}")
    for lic in conv.licenses:
        data = read_small(src, lic, MAX_TEXT)
        small.append(text_layer(MT.LICENSE, data.decode("utf-8", "surrogateescape")))
    derived.update(params or {})        # the user's --param wins over derived stop words
    if derived:
        small.append(params_layer(derived))
    layers += [b.descriptor for b in small]
    config = build_config(infos, layers)
    return layers, small, config, conv


def to_ollama(src: Any, src_ref: Any, dst: Any, dst_ref: Any, options: Optional[CopyOptions] = None, *,
              warn=None, params: Optional[dict] = None) -> CopyReport:
    """Copy a ModelPack or Docker model artifact into ``dst`` as an Ollama model: the weight blobs move
    (or are mounted) as they are; template, license, params and config blobs are written; the manifest
    (Docker schema 2, what ``ollama pull`` asks for) goes last."""
    src, src_ref = bind(src, src_ref)
    data, _ = src.fetch_manifest(src_ref)
    return _convert(src, src_ref, _manifest_doc(data, src.describe_ref(src_ref)), dst, dst_ref, options, warn,
                    params)


def _manifest_doc(data: bytes, where: str) -> dict:
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{where}: the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise InvalidInput(f"{where}: the manifest is not a JSON object")
    return manifest


def _convert(src: Any, src_ref: Any, manifest: dict, dst: Any, dst_ref: Any, options: Optional[CopyOptions],
             warn, params: Optional[dict] = None) -> CopyReport:
    """:func:`to_ollama` of a manifest already read from ``src`` (``src`` bound to its repository)."""
    opts = options or CopyOptions()
    dst, dst_ref = bind(dst, dst_ref)
    where = src.describe_ref(src_ref)
    cfg = manifest.get("config")
    if not isinstance(cfg, dict):
        raise InvalidInput(f"{where}: the manifest has no config")
    cdesc = Descriptor(str(cfg.get("mediaType", "")), cfg.get("digest", ""), cfg.get("size", -1))
    try:     # the other format's config is checked (JSON, bounded), though Ollama's comes from the GGUF
        if not isinstance(json.loads(read_small(src, cdesc, MAX_TEXT)), dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise InvalidInput(f"{where}: its config is not a JSON object ({e}); refusing it") from None
    conv = classify(manifest)
    check_blobs = getattr(dst, "check_blobs", None)
    unwrapped: dict = {}      # a weight layer's digest -> (store holding its GGUF, the GGUF's descriptor)
    merged_from = None
    try:
        shards = [d for d, role in conv.weights if role == "model"]
        if len(shards) > 1:    # a split set: merged into one model blob, as ollama create does
            if check_blobs is not None:
                check_blobs([Descriptor(MT.MODEL, shards[0].digest, sum(d.size for d in shards))])
            merged_from, merged = merge_split_weights(src, shards, dst)
            for d in shards:
                unwrapped[str(d.digest)] = (merged_from, merged)
                conv.wrapped[str(d.digest)] = "split"
            conv.weights = [(shards[0], "model")] + [(d, r) for d, r in conv.weights if r != "model"]
        for desc, _role in conv.weights:   # a tar-wrapped weight becomes a blob of its own, in dst, first
            if str(desc.digest) in conv.wrapped and str(desc.digest) not in unwrapped:
                if check_blobs is not None:
                    check_blobs([desc])
                unwrapped[str(desc.digest)] = (dst, unwrap_tar_weight(src, desc, conv.wrapped[str(desc.digest)],
                                                                      dst))
        layers, small, config, conv = plan(src, manifest, warn=warn, conv=conv, unwrapped=unwrapped, params=params)
        for mt, what, why in conv.skipped:
            if warn is not None:
                warn(f"left out {what} ({mt}): {why}")
        m, cblob = build_manifest(layers, config)
        mem = MemoryStore(name="converted")
        for b in small + [cblob]:
            mem.add_blob(b.data, b.descriptor.media_type)
        report = CopyReport(where, dst.describe_ref(dst_ref), digest_bytes(m.to_bytes(newline=False)), MT.MANIFEST)
        if check_blobs is not None:
            check_blobs(m.blobs)
        weights = [Descriptor(MT.MODEL if role == "model" else MT.PROJECTOR, d.digest, d.size)
                   for d, role in conv.weights if str(d.digest) not in unwrapped]   # unwrapped ones: in dst already
        report.blobs = move_blobs(src, dst, weights, opts)
        if merged_from is not None:        # the merge, from its temporary layout (a link, for a local dst)
            report.blobs += move_blobs(merged_from, dst, [layers[0]], opts)
        report.blobs += move_blobs(mem, dst, [b.descriptor for b in small] + [cblob.descriptor], opts)
    finally:
        if merged_from is not None:
            import shutil
            shutil.rmtree(os.path.dirname(merged_from.root), ignore_errors=True)
    put = getattr(dst, "put_manifest", None)
    if put is not None:
        report.manifest_digest = put(dst_ref, m)       # a local store writes its own form (and says its ID)
    else:
        dst.tag(dst_ref, m.to_bytes(newline=False), MT.MANIFEST)   # the bytes `ollama push` would send
    return report


def is_foreign(manifest: dict) -> bool:
    """Whether a manifest (decoded) is a ModelPack or Docker model artifact, which :func:`to_ollama`
    converts."""
    return artifact_format(manifest)[0] in (MODELPACK, DOCKER)


def pull_any(src: Any, src_ref: Any, dst: Any, dst_ref: Any, options: Optional[CopyOptions] = None, *,
             warn=None, params: Optional[dict] = None) -> CopyReport:
    """:func:`~ollama_oci.engine.copy` for an Ollama model, :func:`to_ollama` for a ModelPack or Docker
    model artifact: what ``pull`` does with whatever a reference names. The manifest is read once."""
    src, src_ref = bind(src, src_ref)
    if getattr(src, "fetch_stored_manifest", None) is not None:   # an Ollama store holds only Ollama models
        _no_params(params, src.describe_ref(src_ref))
        return copy(src, src_ref, dst, dst_ref, options)
    data, media_type = src.fetch_manifest(src_ref)
    where = src.describe_ref(src_ref)
    manifest = _manifest_doc(data, where)
    if is_foreign(manifest):
        return _convert(src, src_ref, manifest, dst, dst_ref, options, warn, params)
    _no_params(params, where)
    return copy_manifest(src, data, media_type, dst, dst_ref, options, source=where)


def _no_params(params: Optional[dict], where: str) -> None:
    if params:
        raise InvalidInput(f"{where} is an Ollama model: a copy keeps it byte for byte, so --param applies only to "
                           f"ModelPack and Docker artifacts; to change its parameters, pack a Modelfile FROM it")

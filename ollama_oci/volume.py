"""Image-volume delivery: an OCI image whose one layer is an Ollama ``models/`` tree.

The layer is a tar of ``manifests/<host>/<namespace>/<model>/<tag>`` and
``blobs/sha256-<hex>`` for one or more models, at the tar's root, so the image can be
mounted read-only as a Kubernetes image volume at the server's ``OLLAMA_MODELS`` (set
``OLLAMA_NOPRUNE=1``: the server must not try to prune a read-only store), or copied by
an init container.  The tar is generated on the fly, optionally zstd-compressed, and
streamed into the registry as chunked uploads while both digests (the uncompressed
``diff_id`` and the layer digest) are computed: the GGUF is never staged on disk again.
The tar is reproducible: fixed order, mtime 0, uid/gid 0, modes 0755/0644. So a rebuild of the same
models is known before any byte is read (:func:`layer_key`, kept in this machine's cache and in the
image's annotations) and sends no layer when the registry has it. One manifest per platform around the
one layer; several platforms make an image index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

from .stores.bundle import tar_header as _tar_header
from .configfile import cache_dir
from .digest import CHUNK, digest_bytes
from .errors import InvalidInput, VerificationError
from .progress import ProgressCallback, ProgressEvent
from .names import ModelName
from .spec import MT, Descriptor

__all__ = ["build_volume_image", "VolumeReport", "LAYER_TAR", "LAYER_TAR_ZSTD"]

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass
class VolumeReport:
    destination: str
    manifest_digest: str = ""
    layer_digest: str = ""
    diff_id: str = ""
    layer_size: int = 0
    tar_size: int = 0
    models: list[str] = field(default_factory=list)
    layer_action: str = "uploaded"     # or "exists": the same layer was there already, nothing was sent
    platforms: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _dir_header(name: str) -> bytes:
    import tarfile
    ti = tarfile.TarInfo(name.rstrip("/") + "/")
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT)


def _pad(n: int) -> bytes:
    return b"\0" * ((512 - n % 512) % 512)


def _tree(src: Any, names: list[ModelName]) -> tuple[list[tuple[str, bytes]], dict[str, Descriptor]]:
    """(manifest files, blobs) of the models tree."""
    files = []
    blobs: dict[str, Descriptor] = {}
    for n in names:
        m, raw = src.get_manifest(n)
        files.append(("manifests/" + "/".join(n.parts), raw))
        for d in m.blobs:
            blobs.setdefault(str(d.digest), d)
    return files, blobs


def tar_stream(src: Any, names: list[ModelName], tick: Optional[Callable[[int], None]] = None, *,
               tree: Optional[tuple[list[tuple[str, bytes]], dict[str, Descriptor]]] = None) -> Iterator[bytes]:
    """The layer's tar, in pieces; every blob is checked against its digest as it streams."""
    files, blobs = tree if tree is not None else _tree(src, names)
    dirs = sorted({"blobs", "manifests"} | {"/".join(p.split("/")[:i]) for p, _ in files
                                            for i in range(2, len(p.split("/")))})
    for d in dirs:
        yield _dir_header(d)
    for path, data in sorted(files):
        yield _tar_header(path, len(data))
        yield data
        yield _pad(len(data))
    for key in sorted(blobs):
        d = blobs[key]
        yield _tar_header(f"blobs/{d.digest.filename}", d.size)
        h = hashlib.sha256()
        left = d.size
        with src.fetch(d) as f:
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise VerificationError(f"blob {d.digest} ended early in {src.describe()}")
                h.update(chunk)
                left -= len(chunk)
                if tick:
                    tick(len(chunk))
                yield chunk
        if "sha256:" + h.hexdigest() != d.digest:
            raise VerificationError(f"blob {d.digest} in {src.describe()} is damaged; run 'ollama-oci verify'",
                                    expected=d.digest)
        yield _pad(d.size)
    yield b"\0" * 1024


class _Layer:
    """Pipes tar pieces through the diff_id hash and (optionally) zstd."""

    def __init__(self, pieces: Iterable[bytes], zstd: bool, level: int = 3):
        self.pieces = pieces
        self.zstd = zstd
        self.level = level
        self.diff = hashlib.sha256()
        self.tar_size = 0

    def __iter__(self) -> Iterator[bytes]:
        comp = None
        if self.zstd:
            import zstandard
            comp = zstandard.ZstdCompressor(level=self.level, write_checksum=True).compressobj()
        for p in self.pieces:
            if not p:
                continue
            self.diff.update(p)
            self.tar_size += len(p)
            out = comp.compress(p) if comp is not None else p
            if out:
                yield out
        if comp is not None:
            tail = comp.flush()
            if tail:
                yield tail

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff.hexdigest()


#: manifest annotation: what the layer was made from (a hash of the models' manifests and the layer
#: format), so a rebuild of the same models finds the layer it would upload already there
KEY_ANNOTATION = "io.ollama-oci.volume-key"
_PLATFORM = re.compile(r"^([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?$")


def parse_platform(text: str) -> tuple[str, str, Optional[str]]:
    """``os/arch[/variant]`` (``linux/amd64``, ``linux/arm64/v8``)."""
    m = _PLATFORM.match(text.strip())
    if not m:
        raise InvalidInput(f"platform {text!r} is not OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64")
    return m.group(1), m.group(2), m.group(3)


def _config(diff_id: str, names: list[ModelName], platform: tuple = ("linux", "amd64", None)) -> bytes:
    cfg = {"architecture": platform[1], "os": platform[0],
           "config": {"Env": ["OLLAMA_MODELS=/", "OLLAMA_NOPRUNE=1"],
                      "Labels": {"io.ollama-oci.models": ",".join(n.display for n in names)}},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    if platform[2]:
        cfg["variant"] = platform[2]
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()


def _manifest(config: bytes, layer_digest: str, layer_size: int, zstd: bool, names: list[ModelName],
              key: str = "") -> bytes:
    m = {"schemaVersion": 2, "mediaType": MT.OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": str(digest_bytes(config)), "size": len(config)},
         "layers": [{"mediaType": LAYER_TAR_ZSTD if zstd else LAYER_TAR, "digest": layer_digest,
                     "size": layer_size}],
         "annotations": {"io.ollama-oci.models": ",".join(n.display for n in names)}}
    if key:
        m["annotations"][KEY_ANNOTATION] = key
    return json.dumps(m, separators=(",", ":")).encode()


def layer_key(tree, zstd: bool, level: int = 3) -> str:
    """What determines the layer's bytes: the tar is reproducible from the models' manifest files
    (which name every blob by digest), the format version and the compression."""
    files, _ = tree
    doc = {"v": 1, "zstd": zstd, "level": level if zstd else None,
           "files": [[path, str(digest_bytes(raw))] for path, raw in sorted(files)]}
    return str(digest_bytes(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()))


def _cache_path(key: str) -> str:
    return cache_dir("volumes", key.replace(":", "-") + ".json")


def _known_layer(dst: Any, dst_ref: Any, key: str) -> Optional[dict]:
    """The layer a previous build of the same models made, if ``dst`` still has it: from this
    machine's cache, else from the volume image already at ``dst_ref``."""
    from .bridge import read_small
    from .errors import OllamaOCIError
    found = None
    try:
        with open(_cache_path(key)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        pass
    if found is None:
        try:
            raw, _ = dst.fetch_manifest(dst_ref)
            m = json.loads(raw)
            if m.get("mediaType") == MT.OCI_INDEX:
                first = m["manifests"][0]
                raw = read_small(dst, Descriptor(MT.OCI_MANIFEST, first["digest"], first["size"]))
                m = json.loads(raw)
            if (m.get("annotations") or {}).get(KEY_ANNOTATION) == key:
                c = m["config"]
                cfg = json.loads(read_small(dst, Descriptor(OCI_CONFIG, c["digest"], c["size"])))
                layer = m["layers"][0]
                found = {"layer_digest": layer["digest"], "layer_size": layer["size"],
                         "diff_id": cfg["rootfs"]["diff_ids"][0], "tar_size": None}
        except (OllamaOCIError, ValueError, KeyError, IndexError, TypeError):
            return None
    if not isinstance(found, dict):
        return None
    try:
        if dst.exists(Descriptor(LAYER_TAR, found["layer_digest"], int(found["layer_size"]))):
            return found
    except (OllamaOCIError, KeyError, ValueError, TypeError):
        pass
    return None


def _remember(key: str, found: dict) -> None:
    from .fsutil import atomic_write
    p = _cache_path(key)
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        atomic_write(p, json.dumps(found).encode(), durable=False)
    except OSError:
        pass      # a cache: a later build just uploads again


def build_volume_image(src: Any, names: list[ModelName], dst: Any, dst_ref: Any, *, zstd: bool = False,
                       progress: ProgressCallback = None, platforms: Optional[list[str]] = None,
                       reuse: bool = True) -> VolumeReport:
    """Build the image for ``names`` (from a local model store) and write it to any store that takes
    content of a digest known only at its end (``push_stream``: a registry repository, an OCI layout).

    The layer is reproducible, so a rebuild of the same models (found through this machine's cache,
    or the image already at ``dst_ref``) sends no layer bytes when ``dst`` still has that layer
    (``reuse``). ``platforms`` (``os/arch[/variant]``, default ``linux/amd64``): one config and
    manifest per platform around the same layer; several make an image index (a registry only), as
    container runtimes pick an image by the node's platform.
    """
    from .stores.contract import BlobSource, bind
    from .stores.memory import MemoryStore
    if not names:
        raise InvalidInput("name at least one model for the image")
    plats = [parse_platform(p) for p in (platforms or ["linux/amd64"])]
    if len(set(plats)) != len(plats):
        raise InvalidInput("a platform is named twice")
    report = VolumeReport(str(dst_ref), models=[n.display for n in names],
                          platforms=["/".join(x for x in p if x) for p in plats])
    dst, dst_ref = bind(dst, dst_ref)
    push_stream = getattr(dst, "push_stream", None)
    if push_stream is None:
        raise InvalidInput(f"{dst.describe()} cannot take an image built on the fly; use a registry or an OCI layout")
    if len(plats) > 1 and getattr(dst, "put_manifest", None) is not None:
        raise InvalidInput("an image for several platforms is an image index, which goes to a registry; write one "
                           "platform into an OCI layout")
    tree = _tree(src, names)  # each manifest read once
    key = layer_key(tree, zstd)
    known = _known_layer(dst, dst_ref, key) if reuse else None
    if known is not None:
        digest, size, diff_id = known["layer_digest"], int(known["layer_size"]), known["diff_id"]
        report.layer_action, report.tar_size = "exists", known.get("tar_size") or 0
        if progress is not None:
            progress(ProgressEvent("transfer", "layer", 0, 0))
    else:
        total = sum(d.size for d in tree[1].values())
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(ProgressEvent("transfer", "layer", done[0], total))
        layer = _Layer(tar_stream(src, names, tick, tree=tree), zstd)
        digest, size = push_stream(layer)
        diff_id = layer.diff_id
        report.tar_size = layer.tar_size
        _remember(key, {"layer_digest": str(digest), "layer_size": size, "diff_id": diff_id,
                        "tar_size": layer.tar_size})
    entries = []
    for plat in plats:
        config = _config(diff_id, names, plat)
        manifest = _manifest(config, str(digest), size, zstd, names, key)
        cstore, cdesc = MemoryStore.of(config, OCI_CONFIG)
        dst.push(cdesc, BlobSource(cstore, cdesc))
        entries.append((plat, manifest))
    if len(entries) == 1:
        mdigest = dst.tag(dst_ref, entries[0][1], MT.OCI_MANIFEST)
    else:
        index = {"schemaVersion": 2, "mediaType": MT.OCI_INDEX, "manifests": []}
        for plat, manifest in entries:
            mdig = digest_bytes(manifest)
            dst.tag(dataclasses.replace(dst_ref, tag=None, digest=mdig), manifest, MT.OCI_MANIFEST)  # by digest
            p = {"architecture": plat[1], "os": plat[0]}
            if plat[2]:
                p["variant"] = plat[2]
            index["manifests"].append({"mediaType": MT.OCI_MANIFEST, "digest": str(mdig), "size": len(manifest),
                                       "platform": p})
        mdigest = dst.tag(dst_ref, json.dumps(index, separators=(",", ":")).encode(), MT.OCI_INDEX)
    report.manifest_digest, report.layer_digest, report.diff_id = str(mdigest), str(digest), diff_id
    report.layer_size = size
    return report

"""Image-volume delivery: an OCI image whose one layer is an Ollama ``models/`` tree.

The layer is a tar of ``manifests/<host>/<namespace>/<model>/<tag>`` and
``blobs/sha256-<hex>`` for one or more models, at the tar's root, so the image can be
mounted read-only as a Kubernetes image volume at the server's ``OLLAMA_MODELS`` (set
``OLLAMA_NOPRUNE=1``: the server must not try to prune a read-only store), or copied by
an init container.  The tar is generated on the fly, optionally zstd-compressed, and
streamed into the registry as chunked uploads while both digests (the uncompressed
``diff_id`` and the layer digest) are computed: the GGUF is never staged on disk again.
The tar is reproducible: fixed order, mtime 0, uid/gid 0, modes 0755/0644.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

from .stores.bundle import tar_header as _tar_header
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


def _config(diff_id: str, names: list[ModelName]) -> bytes:
    cfg = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["OLLAMA_MODELS=/", "OLLAMA_NOPRUNE=1"],
                      "Labels": {"io.ollama-oci.models": ",".join(n.display for n in names)}},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()


def _manifest(config: bytes, layer_digest: str, layer_size: int, zstd: bool, names: list[ModelName]) -> bytes:
    m = {"schemaVersion": 2, "mediaType": MT.OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": str(digest_bytes(config)), "size": len(config)},
         "layers": [{"mediaType": LAYER_TAR_ZSTD if zstd else LAYER_TAR, "digest": layer_digest,
                     "size": layer_size}],
         "annotations": {"io.ollama-oci.models": ",".join(n.display for n in names)}}
    return json.dumps(m, separators=(",", ":")).encode()


def build_volume_image(src: Any, names: list[ModelName], dst: Any, dst_ref: Any, *, zstd: bool = False,
                       progress: ProgressCallback = None) -> VolumeReport:
    """Build the image for ``names`` (from a local model store) and write it to any store that takes
    content of a digest known only at its end (``push_stream``: a registry repository, an OCI layout)."""
    from .stores.contract import BlobSource, bind
    from .stores.memory import MemoryStore
    if not names:
        raise InvalidInput("name at least one model for the image")
    report = VolumeReport(str(dst_ref), models=[n.display for n in names])
    dst, dst_ref = bind(dst, dst_ref)
    push_stream = getattr(dst, "push_stream", None)
    if push_stream is None:
        raise InvalidInput(f"{dst.describe()} cannot take an image built on the fly; use a registry or an OCI layout")
    tree = _tree(src, names)  # each manifest read once
    total = sum(d.size for d in tree[1].values())
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(ProgressEvent("transfer", "layer", done[0], total))
    layer = _Layer(tar_stream(src, names, tick, tree=tree), zstd)
    digest, size = push_stream(layer)
    config = _config(layer.diff_id, names)
    manifest = _manifest(config, str(digest), size, zstd, names)
    cstore, cdesc = MemoryStore.of(config, OCI_CONFIG)
    dst.push(cdesc, BlobSource(cstore, cdesc))
    mdigest = dst.tag(dst_ref, manifest, MT.OCI_MANIFEST)
    report.manifest_digest, report.layer_digest, report.diff_id = str(mdigest), str(digest), layer.diff_id
    report.layer_size, report.tar_size = size, layer.tar_size
    return report

"""One copy engine: move an artifact between any two stores, verified and incremental.

``copy(src, src_ref, dst, dst_ref)`` reads the source manifest, moves every blob
the destination lacks (in parallel), verifying each before it becomes visible,
and writes the manifest last.  Push, pull and (next) mirror and export are this
function with different stores:

=================  ===========================  ====================================
source             destination                  how a blob moves
=================  ===========================  ====================================
local store        local store                  link/reflink, or a copy checked in the same pass
local store        registry                     streamed PUT (chunked PATCH if needed)
registry           local store                  resumable parallel ranged GET, hashed, renamed
registry           same registry                cross-repository mount
registry           other registry               streamed GET piped into a streamed PUT
=================  ===========================  ====================================

Manifest bytes: from an ollama model store we send what ``ollama push`` sends
(Go's ``json.Marshal`` of the manifest: compact, no trailing newline); from
anywhere else the bytes are copied as they are, so digests are preserved.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .digest import Digest, digest_bytes
from .errors import InvalidInput
from .fsutil import fsync_dir, unlink_quiet
from .names import ModelName
from .reference import Reference
from .spec import Descriptor, Manifest, parse_manifest
from .stores.base import LocalStore
from .stores.ollama import OllamaStore
from .stores.registry import RegistryStore

log = logging.getLogger("ollama_oci")

__all__ = ["copy", "CopyReport", "BlobResult"]

Ref = Union[ModelName, Reference]
Progress = Optional[Callable[[str, int, int], None]]


@dataclass
class BlobResult:
    digest: Digest
    size: int
    media_type: str
    action: str          # exists, mounted, uploaded, downloaded, linked, copied
    transferred: int = 0  # bytes that crossed the network or were written

    def to_json(self) -> dict:
        return {"digest": str(self.digest), "size": self.size, "mediaType": self.media_type,
                "action": self.action, "transferred": self.transferred}


@dataclass
class CopyReport:
    source: str
    destination: str
    manifest_digest: Digest
    media_type: str
    blobs: list[BlobResult] = field(default_factory=list)
    unchanged: bool = False   #: the destination already had this exact manifest

    @property
    def bytes_transferred(self) -> int:
        return sum(b.transferred for b in self.blobs)

    def to_json(self) -> dict:
        return {"source": self.source, "destination": self.destination,
                "manifest_digest": str(self.manifest_digest), "mediaType": self.media_type,
                "bytes_transferred": self.bytes_transferred, "unchanged": self.unchanged,
                "blobs": [b.to_json() for b in self.blobs]}


def _describe(store: Any, ref: Ref) -> str:
    if isinstance(store, RegistryStore):
        return str(ref)
    return f"{store.describe()}:{ref.display if isinstance(ref, ModelName) else ref}"


def read_source_manifest(src: Any, ref: Ref) -> tuple[bytes, str, Manifest]:
    """(bytes to send, media type, parsed manifest) of an artifact in any store."""
    if isinstance(src, RegistryStore):
        if not isinstance(ref, Reference):
            raise InvalidInput("a registry source needs a registry reference")
        raw, mt = src.get_manifest_raw(ref)
        return raw, mt, parse_manifest(raw)
    if not isinstance(ref, ModelName):
        raise InvalidInput("a local source needs a model name")
    manifest, raw = src.get_manifest(ref)
    if isinstance(src, OllamaStore):
        # what `ollama push` sends: json.Marshal of the parsed manifest (no trailing newline)
        return manifest.to_bytes(newline=False), manifest.media_type, manifest
    return raw, manifest.media_type, manifest


def as_oci_manifest(manifest: Manifest) -> tuple[bytes, str]:
    """The same artifact under an OCI image manifest media type (Go encoding, no newline).

    For tools that refuse Docker schema 2 manifests with non-image layers (skopeo cannot read
    those at all).  Not for servers that run ``ollama pull``: ollama's client accepts only
    Docker schema 2, and Docker distribution refuses it an OCI manifest.
    """
    from .spec import MT
    m = Manifest(manifest.config, manifest.layers, MT.OCI_MANIFEST, 2)
    return m.to_bytes(newline=False), MT.OCI_MANIFEST


def copy(src: Any, src_ref: Ref, dst: Any, dst_ref: Ref, *, concurrency: int = 4, progress: Progress = None,
         manifest_format: str = "keep") -> CopyReport:
    """Copy one artifact from ``src`` to ``dst``; only missing blobs move, each verified.

    ``manifest_format="oci"`` rewrites the manifest's media type to the OCI image
    manifest (the blobs are unchanged; the manifest digest changes).
    """
    if manifest_format not in ("keep", "oci"):
        raise InvalidInput(f"manifest format {manifest_format!r} is not 'keep' or 'oci'")
    data, media_type, manifest = read_source_manifest(src, src_ref)
    if manifest_format == "oci":
        data, media_type = as_oci_manifest(manifest)
    report = CopyReport(_describe(src, src_ref), _describe(dst, dst_ref), digest_bytes(data), media_type)
    if _already_there(dst, dst_ref, data, report.manifest_digest):
        # the same manifest is already in place, so are its blobs: one check instead of a HEAD per blob
        report.blobs = [BlobResult(d.digest, d.size, d.media_type, "exists") for d in dict.fromkeys(manifest.blobs)]
        report.unchanged = True
        return report
    lock = threading.Lock()

    def one(desc: Descriptor) -> BlobResult:
        cb = None
        if progress is not None:
            done = [0]
            label = desc.digest.short

            def cb(n: int) -> None:
                with lock:
                    done[0] += n
                    progress(label, done[0], desc.size)
        return _move_blob(src, src_ref, dst, dst_ref, desc, cb)

    blobs = list(dict.fromkeys(manifest.blobs))  # a blob listed twice moves once
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(blobs) or 1))) as ex:
        futures = [ex.submit(one, d) for d in blobs]
        errors = []
        for f in futures:
            try:
                report.blobs.append(f.result())
            except BaseException as e:  # finish the others, then raise the first failure
                errors.append(e)
        if errors:
            raise errors[0]

    # the manifest last: everything it names is now in place and verified
    if isinstance(dst, RegistryStore):
        if not isinstance(dst_ref, Reference):
            raise InvalidInput("a registry destination needs a registry reference")
        dst.put_manifest_raw(dst_ref, data, media_type)
    else:
        if not isinstance(dst_ref, ModelName):
            raise InvalidInput("a local destination needs a model name")
        dst.put_manifest(dst_ref, data)
    return report


def _already_there(dst, dst_ref, data: bytes, digest: Digest) -> bool:
    try:
        if isinstance(dst, RegistryStore):
            return dst.resolve(dst_ref, for_push=True) == digest
        raw, _ = dst.read_manifest_bytes(dst_ref)
        if raw != data:
            return False
        m = parse_manifest(raw)
        return all(dst.has_blob(d.digest, d.size) for d in m.blobs)
    except Exception:  # not there, or unreadable: copy as usual
        return False


def _move_blob(src, src_ref, dst, dst_ref, desc: Descriptor, cb) -> BlobResult:
    d, size, mt = desc.digest, desc.size, desc.media_type
    if isinstance(dst, RegistryStore):
        repo = dst_ref.repository
        if isinstance(src, RegistryStore):
            mount_from = src_ref.repository if src.registry == dst.registry else None

            def opener():  # push_blob checks presence (HEAD) itself and answers "exists"
                resp = src.open_blob(src_ref.repository, d)
                return _ResponseFile(resp)
            action = dst.push_blob(repo, desc, opener, progress=cb, mount_from=mount_from)
        else:
            path = src.find_blob(d)
            if path is None:
                from .errors import NotFound
                raise NotFound(f"blob {d} of {src_ref.display} is missing from {src.describe()}; "
                               "run 'ollama-oci verify'")
            action = dst.push_blob(repo, desc, lambda: open(path, "rb"), progress=cb)
        return BlobResult(d, size, mt, action, size if action == "uploaded" else 0)

    # local destination
    if dst.has_blob(d, size):
        return BlobResult(d, size, mt, "exists")
    if isinstance(src, RegistryStore):
        _download(src, src_ref.repository, dst, desc, cb)
        return BlobResult(d, size, mt, "downloaded", size)
    path = src.find_blob(d)
    if path is None:
        from .errors import NotFound
        raise NotFound(f"blob {d} is missing from {src.describe()}; run 'ollama-oci verify'")
    last = [0]

    def staged(done: int, total: int) -> None:
        if cb is not None:
            cb(done - last[0])
        last[0] = done
    st = dst.stage_file(path, progress=staged, known=(d, size))
    dst.commit(st)
    return BlobResult(d, size, mt, "copied" if st.method == "copy" else "linked", size if st.method == "copy" else 0)


def _download(src: RegistryStore, repository: str, dst: LocalStore, desc: Descriptor, cb) -> None:
    """Fetch a blob into a local store: resumable partial file, verified, renamed into place."""
    dst.prepare()
    tmp = dst.tmp_dir()
    os.makedirs(tmp, exist_ok=True)
    data_path = os.path.join(tmp, f".partial-{desc.digest.hex}")
    state_path = data_path + ".json"
    lock_path = data_path + ".lock"
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # another pull of the same blob finishes first
        if dst.has_blob(desc.digest, desc.size):
            return
        src.fetch_blob(repository, desc, data_path, state_path, progress=cb)
        os.chmod(data_path, 0o644)
        os.replace(data_path, dst.blob_path(desc.digest))
        fsync_dir(os.path.dirname(dst.blob_path(desc.digest)))
        # the lock goes only after success: whoever waits on it now finds the blob in place
        unlink_quiet(state_path)
        unlink_quiet(lock_path)
    finally:
        os.close(lock_fd)


class _ResponseFile:
    """A streaming HTTP response seen as a read-only file (for registry-to-registry streaming)."""

    def __init__(self, resp):
        self.resp = resp

    def read(self, n: int = -1) -> bytes:
        return self.resp.read(n)

    def seek(self, pos: int) -> None:
        if pos:
            raise InvalidInput("cannot seek in a streamed blob")

    def close(self) -> None:
        self.resp.close()

    def __enter__(self) -> "_ResponseFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

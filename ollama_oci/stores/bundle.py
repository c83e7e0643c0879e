"""A bundle file as a store to copy into: an OCI image layout in a tar, zstd-compressed or not.

``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>`` (skopeo reads it as ``oci-archive:``).
:class:`BundleWriter` implements the write half of the store contract, so an export is one
``copy`` per model into it. When the models are announced first (:meth:`BundleWriter.announce`,
as ``export_bundle`` does), ``index.json`` and the manifests lead the archive, so an import
knows every model before the first blob and reads the file once, in one pass. Members are
written in order, one at a time (``sequential``), every blob hashed as it goes in; the file
appears under its name only when complete (temp file, fsync, rename). Same models, same bytes:
members carry no dates or owners.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
from typing import Any, BinaryIO, Optional

from ..digest import CHUNK, Digest, digest_bytes
from ..errors import InvalidInput, NotFound, StoreError, Unsupported, VerificationError
from ..fsutil import fsync_dir, tmp_name, unlink_quiet
from ..names import ModelName, parse_name
from ..spec import MT, Descriptor, parse_manifest
from .contract import BlobSource, ProgressFn

__all__ = ["BundleWriter", "is_bundle_path", "REF_ANNOTATION", "LAYOUT_FILE"]

REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
ZSTD_SUFFIXES = (".tar.zst", ".tzst", ".tar.zstd")


def is_bundle_path(path: str) -> bool:
    p = path.lower()
    return p.endswith(".tar") or p.endswith(ZSTD_SUFFIXES)


def compressed(path: str) -> bool:
    return path.lower().endswith(ZSTD_SUFFIXES)


def tar_header(name: str, size: int, mode: int = 0o644) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = 0          # reproducible bundles: same models, same bytes
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = tarfile.REGTYPE
    return ti.tobuf(format=tarfile.PAX_FORMAT)   # PAX: members over 8 GiB are fine


def _index(entries: list[tuple[ModelName, bytes, str]]) -> bytes:
    index = {"schemaVersion": 2, "mediaType": MT.OCI_INDEX, "manifests": [
        {"mediaType": mt, "digest": str(digest_bytes(data)), "size": len(data),
         "annotations": {REF_ANNOTATION: name.display}} for name, data, mt in entries]}
    return json.dumps(index, indent=2).encode() + b"\n"


class BundleWriter:
    """A bundle being written. Use as a context manager: the file appears on a clean exit only."""

    #: members are written one after the other: a copy moves one blob at a time into it
    sequential = True
    #: ``exists`` is a set lookup
    checks_blobs_cheaply = True

    def __init__(self, path: str, *, level: int = 3):
        self.path = path
        self.level = level
        self.size = 0                 # bytes of tar written (before compression)
        self.blob_bytes = 0
        self._written: dict[str, int] = {}
        self._announced: dict[ModelName, tuple[bytes, str]] = {}
        self._tagged: dict[ModelName, tuple[bytes, str]] = {}
        self._order: list[ModelName] = []
        self._lock = threading.Lock()
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._dir = d
        self._tmp = tmp_name(d)
        self._raw = open(self._tmp, "xb")
        self._out: Any = self._raw
        if compressed(path):
            import zstandard
            cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
            self._out = cctx.stream_writer(self._raw, closefd=False)
        self._add_bytes("oci-layout", LAYOUT_FILE)
        self._closed = False

    # -- tar ----------------------------------------------------------------------------------
    def _w(self, b) -> None:
        self._out.write(b)
        self.size += len(b)

    def _pad(self, n: int) -> None:
        if n % 512:
            self._w(b"\0" * (512 - n % 512))

    def _add_bytes(self, name: str, data: bytes) -> None:
        self._w(tar_header(name, len(data)))
        self._w(data)
        self._pad(len(data))

    def _add_blob_bytes(self, data: bytes) -> None:
        d = digest_bytes(data)
        if str(d) not in self._written:
            self._add_bytes(f"blobs/sha256/{d.hex}", data)
            self._written[str(d)] = len(data)

    # -- announcing the models first ----------------------------------------------------------------
    def announce(self, entries: list[tuple[ModelName, bytes, str]]) -> None:
        """Write ``index.json`` and the manifests before any blob (call once, first): an import then
        reads the bundle in one pass. Each model must later be tagged with the same bytes."""
        with self._lock:
            if self._announced or len(self._written) > 0:
                raise InvalidInput("announce the models once, before any blob")
            for name, data, mt in entries:
                parse_manifest(data)
                self._announced[name] = (data, mt)
            self._add_bytes("index.json", _index(entries))
            for _name, data, _mt in entries:
                self._add_blob_bytes(data)

    # -- the store contract (the write half) ---------------------------------------------------------
    def describe(self) -> str:
        return f"bundle:{self.path}"

    def describe_ref(self, ref: Any) -> str:
        return f"{self.path}:{self._name(ref).display}"

    @staticmethod
    def _name(ref: Any) -> ModelName:
        return ref if isinstance(ref, ModelName) else parse_name(str(ref))

    def resolve(self, ref: Any) -> Descriptor:
        got = self._tagged.get(self._name(ref))
        if got is None:
            raise NotFound(f"{self._name(ref).display} is not (yet) in {self.path}")
        return Descriptor(got[1], digest_bytes(got[0]), len(got[0]))

    def fetch_manifest(self, ref: Any) -> tuple[bytes, str]:
        got = self._tagged.get(self._name(ref))
        if got is None:
            raise NotFound(f"{self._name(ref).display} is not (yet) in {self.path}")
        return got

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        raise Unsupported(f"{self.path} is being written; read it with 'ollama-oci import'")

    def exists(self, desc: Descriptor) -> bool:
        return self._written.get(str(desc.digest)) == desc.size

    def push(self, desc: Descriptor, source: BlobSource, *, progress: ProgressFn = None) -> str:
        with self._lock:
            if self.exists(desc):
                return "exists"
            self._w(tar_header(f"blobs/sha256/{desc.digest.hex}", desc.size))
            h = hashlib.sha256()
            left = desc.size
            with source.open() as f:
                while left:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        raise VerificationError(f"blob {desc.digest} ended after {desc.size - left} of {desc.size} "
                                                f"bytes in {source.store.describe()}")
                    h.update(chunk)
                    self._w(chunk)
                    left -= len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if "sha256:" + h.hexdigest() != desc.digest:
                raise VerificationError(f"blob {desc.digest} is damaged in {source.store.describe()} (it hashes to "
                                        f"sha256:{h.hexdigest()}); run 'ollama-oci verify'", expected=desc.digest)
            self._pad(desc.size)
            self._written[str(desc.digest)] = desc.size
            self.blob_bytes += desc.size
            return "copied"

    def tag(self, ref: Any, data: bytes, media_type: str) -> Digest:
        name = self._name(ref)
        m = parse_manifest(data)
        with self._lock:
            for d in m.blobs:
                if not self.exists(d):
                    raise StoreError(f"refusing to tag {name.display} in {self.path}: blob {d.digest} is missing")
            if self._announced:
                if self._announced.get(name) != (data, media_type):
                    raise InvalidInput(f"{name.display} was not announced with these manifest bytes")
            else:
                self._add_blob_bytes(data)
            if name not in self._tagged:
                self._order.append(name)
            self._tagged[name] = (data, media_type)
        return digest_bytes(data)

    def list_refs(self) -> list[ModelName]:
        return list(self._order)

    def delete(self, ref: Any) -> None:
        raise Unsupported("a bundle being written cannot delete a model")

    # -- finishing ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Finish the archive and give it its name (every announced model must be tagged)."""
        with self._lock:
            missing = [n.display for n in self._announced if n not in self._tagged]
            if missing:
                raise StoreError(f"{self.path}: {', '.join(missing)} announced but never copied")
            if not self._announced:
                self._add_bytes("index.json", _index([(n, *self._tagged[n]) for n in self._order]))
            self._w(b"\0" * 1024)
            if self._out is not self._raw:
                self._out.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self._tmp, self.path)
            fsync_dir(self._dir)
            self._closed = True

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                if self._out is not self._raw:
                    self._out.close()
            except Exception:
                pass
            self._raw.close()
            unlink_quiet(self._tmp)

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

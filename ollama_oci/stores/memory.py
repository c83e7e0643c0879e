"""A store in memory: the contract with nothing behind it.

For tests of code written against the contract, and as the source of small blobs a command
makes itself (a config, a manifest): ``MemoryStore.of(data)`` holds one blob, and
``BlobSource(store, desc)`` hands it to any destination's ``push``. Blobs are held whole, so it
refuses anything larger than ``limit`` bytes (64 MiB unless told).
"""

from __future__ import annotations

import io
import threading
from typing import Optional

from ..digest import Digest, digest_bytes, parse_digest
from ..errors import InvalidInput, NotFound, StoreError, VerificationError
from ..spec import Descriptor, parse_manifest
from .contract import BlobSource, ProgressFn

__all__ = ["MemoryStore"]


class MemoryStore:
    """Blobs and manifests in dictionaries; references are plain strings."""

    def __init__(self, *, limit: int = 64 << 20, name: str = "memory"):
        self.limit = limit
        self.name = name
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, data: bytes, media_type: str = "application/octet-stream") -> tuple["MemoryStore", Descriptor]:
        """A store holding one blob, and its descriptor."""
        s = cls(limit=max(len(data), 1))
        d = Descriptor(media_type, digest_bytes(data), len(data))
        s.blobs[str(d.digest)] = bytes(data)
        return s, d

    def add_blob(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        d = Descriptor(media_type, digest_bytes(data), len(data))
        with self._lock:
            self.blobs[str(d.digest)] = bytes(data)
        return d

    # -- the store contract --------------------------------------------------------------------
    def describe(self) -> str:
        return self.name

    def describe_ref(self, ref: str) -> str:
        return f"{self.name}:{ref}"

    def resolve(self, ref: str) -> Descriptor:
        data, mt = self.fetch_manifest(ref)
        return Descriptor(mt, digest_bytes(data), len(data))

    def fetch_manifest(self, ref: str) -> tuple[bytes, str]:
        with self._lock:
            got = self.manifests.get(str(ref))
        if got is None:
            raise NotFound(f"{ref} not found in {self.name}")
        return got

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> io.BytesIO:
        with self._lock:
            data = self.blobs.get(str(desc.digest))
        if data is None:
            raise NotFound(f"blob {desc.digest} not found in {self.name}")
        end = len(data) if length is None else min(len(data), offset + length)
        return io.BytesIO(data[offset:end])

    def exists(self, desc: Descriptor) -> bool:
        with self._lock:
            data = self.blobs.get(str(desc.digest))
        return data is not None and len(data) == desc.size

    def push(self, desc: Descriptor, source: BlobSource, *, progress: ProgressFn = None) -> str:
        if self.exists(desc):
            return "exists"
        if desc.size > self.limit:
            raise StoreError(f"{self.name} holds blobs up to {self.limit} bytes; {desc.digest} has {desc.size}")
        buf = bytearray()
        with source.open() as f:
            while len(buf) <= desc.size:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if progress is not None:
                    progress(len(chunk))
        got = digest_bytes(bytes(buf))
        if got != desc.digest or len(buf) != desc.size:
            raise VerificationError(f"blob {desc.digest} from {source.store.describe()} hashes to {got}",
                                    expected=desc.digest, actual=got)
        with self._lock:
            self.blobs[str(desc.digest)] = bytes(buf)
        return "copied"

    def tag(self, ref: str, data: bytes, media_type: str) -> Digest:
        m = parse_manifest(data)
        for d in m.blobs:
            if not self.exists(d):
                raise StoreError(f"refusing to tag {ref}: blob {d.digest} is missing")
        with self._lock:
            self.manifests[str(ref)] = (bytes(data), media_type)
        return digest_bytes(data)

    def list_refs(self) -> list[str]:
        with self._lock:
            return sorted(self.manifests)

    def delete(self, ref: str) -> None:
        with self._lock:
            if self.manifests.pop(str(ref), None) is None:
                raise NotFound(f"{ref} not found in {self.name}")

    # -- capability: content whose digest is known only at the end ------------------------------
    def push_stream(self, chunks, *, progress: ProgressFn = None) -> tuple[Digest, int]:
        buf = bytearray()
        for c in chunks:
            buf += c
            if len(buf) > self.limit:
                raise StoreError(f"{self.name} holds blobs up to {self.limit} bytes")
            if progress is not None:
                progress(len(c))
        d = self.add_blob(bytes(buf))
        return d.digest, d.size

    def read_blob(self, digest: str, limit: int) -> bytes:
        data = self.fetch(Descriptor("", parse_digest(digest), 0)).read()
        if len(data) > limit:
            raise InvalidInput(f"blob {digest} is larger than {limit} bytes")
        return data

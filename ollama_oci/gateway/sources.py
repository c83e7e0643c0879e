"""Where the gateway's models come from: the stores behind each name prefix.

Each source answers, for a repository path (``library/phi3``) as clients name it: a manifest by tag
or digest, the tags, whether a blob belongs to the repository and how big it is, and the blob
itself (a local file, served with sendfile, or a stream from an upstream registry). Writable
sources also take blobs and manifests pushed through the gateway. All methods block; the server
runs them in its thread pool.

Local stores (an OCI layout, an Ollama models directory, a bundle unpacked once into the data
directory) hold full names (``host/namespace/model:tag``). A request names ``namespace/model:tag``
only; the host part is ignored, and when two hosts hold the same name, ``registry.ollama.ai``
wins, then the first in sorted order.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional

from ..digest import Digest, digest_bytes, parse_digest
from ..errors import InvalidInput, NotFound, RegistryError, Unsupported
from ..names import DEFAULT_HOST, ModelName, name_from_parts, part_problem
from ..spec import Descriptor, parse_manifest
from ..stores.contract import BlobSource
from .config import SourceSpec

__all__ = ["Blob", "open_source", "LocalSource", "RegistrySource", "FileBlobs"]

#: how long a repository's set of blob digests is trusted before its manifests are read again
BLOB_SET_TTL = 2.0


@dataclass
class Blob:
    """A blob a source holds for a repository: its size, and the file that holds it (local sources)."""

    digest: Digest
    size: int
    path: Optional[str] = None


def split_repository(repository: str) -> tuple[str, str]:
    """``namespace/model`` (Ollama names have exactly two parts), or NotFound."""
    parts = repository.split("/")
    if len(parts) != 2 or any(part_problem(k, p) for k, p in zip(("namespace", "model"), parts)):
        raise NotFound(f"repository {repository!r} is not a namespace/model name")
    return parts[0], parts[1]


class FileBlobs:
    """A store-shaped view of spooled files, for handing them to a store's ``push`` (BlobSource)."""

    def __init__(self, paths: dict):
        self.paths = paths   # digest string -> file path

    def describe(self) -> str:
        return "gateway upload"

    def local_path(self, desc: Descriptor) -> Optional[str]:
        return self.paths.get(str(desc.digest))

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        f = open(self.paths[str(desc.digest)], "rb")
        f.seek(offset)
        return f


class LocalSource:
    """An OCI layout, an Ollama models directory, or an unpacked bundle."""

    def __init__(self, spec: SourceSpec, store: Any):
        self.spec = spec
        self.store = store
        self._sets: dict[str, tuple[float, set]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.spec.describe()

    @property
    def writable(self) -> bool:
        return self.spec.writable

    def _names(self, repository: str) -> list[ModelName]:
        ns, model = split_repository(repository)
        found = [n for n in self.store.names() if n.namespace.lower() == ns.lower() and n.model.lower() == model.lower()]
        return sorted(found, key=lambda n: (n.host.lower() != DEFAULT_HOST, str(n)))

    def tags(self, repository: str) -> list[str]:
        names = self._names(repository)
        if not names:
            raise NotFound(f"{repository} not found in {self.describe()}")
        return sorted({n.tag for n in names})

    def _manifests(self, repository: str):
        for n in self._names(repository):
            try:
                data, _ = self.store.read_manifest_bytes(n)
            except (NotFound, OSError):
                continue
            yield n, data

    def manifest(self, repository: str, reference: str) -> bytes:
        if reference.startswith("sha256:"):
            want = parse_digest(reference)
            for _, data in self._manifests(repository):
                if digest_bytes(data) == want:
                    return data
            raise NotFound(f"{repository}@{reference} not found in {self.describe()}")
        for n in self._names(repository):
            if n.tag.lower() == reference.lower():
                data, _ = self.store.read_manifest_bytes(n)
                return data
        raise NotFound(f"{repository}:{reference} not found in {self.describe()}")

    def _blob_set(self, repository: str) -> set:
        now = time.monotonic()
        with self._lock:
            hit = self._sets.get(repository)
            if hit is not None and now - hit[0] < BLOB_SET_TTL:
                return hit[1]
        found = set()
        for _, data in self._manifests(repository):
            try:
                m = parse_manifest(data)
            except InvalidInput:
                continue
            found.update(str(d.digest) for d in m.blobs)
        with self._lock:
            self._sets[repository] = (now, found)
        return found

    def blob(self, repository: str, digest: Digest) -> Optional[Blob]:
        """The blob if a manifest of this repository names it (a digest alone opens nothing else)."""
        if str(digest) not in self._blob_set(repository):
            return None
        path = self.store.find_blob(digest)
        if path is None:
            return None
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        return Blob(digest, st.st_size, path)

    # -- writes ------------------------------------------------------------------------------------
    def has_blob(self, repository: str, digest: Digest) -> Optional[int]:
        path = self.store.find_blob(digest)
        if path is None:
            return None
        try:
            return os.stat(path).st_size
        except OSError:
            return None

    def push_blob(self, repository: str, desc: Descriptor, path: str) -> None:
        self.store.prepare()
        self.store.push(desc, BlobSource(FileBlobs({str(desc.digest): path}), desc, link_mode="auto"))

    def put_manifest(self, repository: str, reference: str, host: str, data: bytes, media_type: str) -> Digest:
        if reference.startswith("sha256:"):
            raise Unsupported("push a manifest under a tag; this source keeps models by name")
        ns, model = split_repository(repository)
        name = name_from_parts((host, ns, model, reference))
        m = parse_manifest(data)
        for d in m.blobs:
            if self.store.find_blob(d.digest) is None:
                raise NotFound(f"blob {d.digest} of the manifest was not pushed")
        self.store.prepare()
        self.store.tag(name, data, media_type)
        with self._lock:
            self._sets.pop(repository, None)
        return digest_bytes(data)


class RegistrySource:
    """An upstream registry, reached with the gateway's own credentials."""

    def __init__(self, spec: SourceSpec, registries: Any):
        self.spec = spec
        self.store = registries.get(spec.location)

    def describe(self) -> str:
        return self.spec.describe()

    @property
    def writable(self) -> bool:
        return self.spec.writable

    def upstream(self, repository: str) -> str:
        return f"{self.spec.path}/{repository}" if self.spec.path else repository

    def repo(self, repository: str):
        return self.store.repository(self.upstream(repository))

    def tags(self, repository: str) -> list[str]:
        return self.store.list_tags(self.upstream(repository))

    def manifest(self, repository: str, reference: str) -> bytes:
        return self.repo(repository).fetch_manifest(reference)[0]

    def blob(self, repository: str, digest: Digest) -> Optional[Blob]:
        size = self.store.blob_size(self.upstream(repository), digest)
        return Blob(digest, size) if size is not None and size >= 0 else None

    def open(self, repository: str, blob: Blob, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        return self.repo(repository).fetch(Descriptor("application/octet-stream", blob.digest, blob.size), offset, length)

    def has_blob(self, repository: str, digest: Digest) -> Optional[int]:
        return self.store.blob_size(self.upstream(repository), digest, for_push=True)

    def push_blob(self, repository: str, desc: Descriptor, path: str) -> None:
        self.repo(repository).push(desc, BlobSource(FileBlobs({str(desc.digest): path}), desc))

    def put_manifest(self, repository: str, reference: str, host: str, data: bytes, media_type: str) -> Digest:
        return self.repo(repository).tag(reference, data, media_type)

    # -- uploads passed through to the upstream's own session (the gateway holds no copy) ------------
    def start_upload(self, repository: str, mount: Optional[tuple] = None) -> Optional[str]:
        """An upstream upload session, or None when ``mount`` (digest, upstream repository) mounted it."""
        loc, mounted = self.store.start_upload(self.upstream(repository), mount)
        return None if mounted else loc

    def patch_upload(self, repository: str, loc: str, start: int, n: int, stream) -> str:
        """Send ``n`` bytes read from ``stream`` at ``start``; returns the next session URL."""
        from ..transport.session import FileBody
        used = []

        def body():
            if used:   # a stream cannot be replayed: a retry would send a short body
                raise RegistryError("the upstream registry asked for a chunk again; push the blob again")
            used.append(True)
            return FileBody(lambda: stream, 0, n)
        status, nxt = self.store.patch_upload(self.upstream(repository), loc, start, n, body)
        if status == 416:
            raise RegistryError(f"{self.describe()} refused the chunk at {start} (416)")
        return nxt

    def commit_upload(self, repository: str, loc: str, desc: Descriptor) -> None:
        self.store.commit_upload(self.upstream(repository), loc, desc)

    def cancel_upload(self, repository: str, loc: str) -> None:
        if loc:
            self.store.cancel_upload(self.upstream(repository), loc)


def open_source(spec: SourceSpec, *, registries: Any, data_dir: str) -> Any:
    from ..stores.oci_layout import OCILayout
    from ..stores.ollama import OllamaStore
    if spec.kind == "registry":
        return RegistrySource(spec, registries)
    if spec.kind == "oci":
        if not os.path.isdir(spec.location) and not spec.writable:
            raise NotFound(f"source oci:{spec.location}: no such directory")
        return LocalSource(spec, OCILayout(spec.location))
    if spec.kind == "ollama":
        if not os.path.isdir(spec.location):
            raise NotFound(f"source ollama:{spec.location}: no such models directory (set OLLAMA_MODELS or write ollama:DIR)")
        return LocalSource(spec, OllamaStore(spec.location))
    if spec.kind == "bundle":
        return LocalSource(spec, unpack_bundle(spec.location, data_dir))
    raise InvalidInput(f"unknown source kind {spec.kind}")


def unpack_bundle(path: str, data_dir: str):
    """A bundle imported (verified) into an OCI layout under the data directory, once per bundle file:
    the range requests of a pull need random access, which a compressed tar does not give."""
    from ..bundle import import_bundle
    from ..fsutil import atomic_write
    from ..stores.oci_layout import OCILayout
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"source {path}: no such bundle file") from None
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    root = os.path.join(data_dir, "bundles", key)
    stamp = os.path.join(root, ".imported-from")
    want = json.dumps({"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    layout = OCILayout(root)
    try:
        with open(stamp) as f:
            if f.read() == want:
                return layout
    except OSError:
        pass
    os.makedirs(root, exist_ok=True)
    import_bundle(path, layout)
    atomic_write(stamp, want.encode())
    return layout

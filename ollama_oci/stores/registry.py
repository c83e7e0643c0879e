"""A remote OCI registry: the distribution API, streamed and verified.

:class:`RegistryStore` is one registry (its client, auth and upload bookkeeping);
:class:`Repository` is one repository of it and implements the store contract
(:mod:`.contract`), as oras-go's ``Repository`` does. ``RegistryStore.bind(ref)`` gives the
repository a reference names, so a copy can take either.

Uploads never hold a blob in memory: a monolithic ``PUT`` streams the file in 1 MiB blocks,
and registries that cap request bodies (413) get a chunked ``PATCH`` upload instead, or always
when ``chunk_size`` is set.  Downloads are byte-range streams (:meth:`Repository.fetch`); the
resumable, verified partial file they go into belongs to the destination (:mod:`.partial`).
A redirect to another host (object storage) is followed without our ``Authorization`` header,
as ollama's client does, and later ranges of the same blob go there directly.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from typing import BinaryIO, Callable, Optional, Union

from ..digest import Digest, check, digest_bytes, parse_digest
from ..errors import InvalidInput, NotFound, RegistryError, VerificationError
from ..reference import Reference
from .contract import BlobSource, RangeNotSupported
from .upload_policy import RESUMABLE_ABOVE, UploadState, policy_for
from ..spec import MAX_MANIFEST_BYTES, MT, Descriptor
from ..transport.http import RegistryClient, TransportOptions, error_from
from ..transport.session import FileBody, NetworkError

log = logging.getLogger("ollama_oci")

__all__ = ["RegistryStore", "Repository", "Registries", "MANIFEST_ACCEPT"]

MANIFEST_ACCEPT = ", ".join([MT.MANIFEST, MT.OCI_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json",
                             MT.OCI_INDEX, "application/json;q=0.5", "text/plain;q=0.1"])

#: chunk size used when a registry refuses a monolithic upload as too large (413)
FALLBACK_CHUNK = 4 << 20

ProgressFn = Optional[Callable[[int], None]]


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


class RegistryStore:
    """One registry, addressed by :class:`~ollama_oci.reference.Reference`."""

    kind = "registry"

    def __init__(self, registry: str, options: Optional[TransportOptions] = None, *,
                 client: Optional[RegistryClient] = None, chunk_size: Optional[int] = None):
        self.registry = registry
        self.client = client or RegistryClient(registry, options)
        self.chunk_size = chunk_size
        self.policy = policy_for(registry)    # how this registry takes uploads (stores/upload_policy.py)
        # uploads under way, per (repository, digest): a second copy of the same blob (two tags
        # sharing weights in one mirror run) waits for the first instead of sending it again
        self._uploading: dict[tuple[str, Digest], threading.Event] = {}
        self._uploading_lock = threading.Lock()

    def describe(self) -> str:
        return f"registry:{self.registry}"

    def repository(self, name: str) -> "Repository":
        """One repository of this registry, as a store."""
        return Repository(self, name)

    def bind(self, ref: Reference) -> tuple["Repository", Reference]:
        """The repository a reference names, and the reference (the store contract's ``bind``)."""
        if not isinstance(ref, Reference):
            raise InvalidInput(f"a registry takes a registry reference (host/repository:tag), not {ref!r}")
        if ref.registry != self.registry:
            raise InvalidInput(f"{ref} is on {ref.registry}, but this store is {self.registry}: use a store for "
                               f"{ref.registry} (Registries makes one per host)")
        return Repository(self, ref.repository), ref

    # -- manifests -------------------------------------------------------------------------
    def get_manifest_raw(self, ref: Reference) -> tuple[bytes, str]:
        """The manifest bytes exactly as served, and their media type; verified when pinned by digest."""
        resp = self.client.request("GET", f"/v2/{ref.repository}/manifests/{ref.reference}",
                                   scope=_pull(ref.repository), headers={"Accept": MANIFEST_ACCEPT})
        if resp.status_code == 404:
            resp.close()
            raise NotFound(f"{ref} not found on {self.registry}")
        if resp.status_code != 200:
            raise error_from(resp, f"GET manifest {ref}")
        try:
            data = resp.read(MAX_MANIFEST_BYTES + 1)
        except NetworkError as e:
            raise RegistryError(f"GET manifest {ref}: {e}", temporary=True) from None
        finally:
            resp.close()
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidInput(f"manifest of {ref} is larger than {MAX_MANIFEST_BYTES} bytes; refusing it")
        if ref.digest is not None:
            check(ref.digest, digest_bytes(data), what=f"manifest {ref}")
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            mt = json.loads(data).get("mediaType")
        except (ValueError, AttributeError, RecursionError):
            mt = None
        return data, (mt if isinstance(mt, str) and mt else ctype or MT.MANIFEST)

    def put_manifest_raw(self, ref: Reference, data: bytes, media_type: str) -> Digest:
        d = digest_bytes(data)
        resp = self.client.request("PUT", f"/v2/{ref.repository}/manifests/{ref.reference}",
                                   scope=_push(ref.repository), headers={"Content-Type": media_type}, body=data)
        if resp.status_code not in (200, 201, 202):
            raise error_from(resp, f"PUT manifest {ref}")
        got = resp.headers.get("Docker-Content-Digest")
        resp.close()
        if got and got != d:
            raise VerificationError(f"{self.registry} stored the manifest of {ref} as {got}, expected {d}",
                                    expected=d, actual=got)
        return d

    def manifest_digest(self, ref: Reference, *, for_push: bool = False) -> Optional[Digest]:
        """The digest a tag points at (HEAD; None if the tag does not exist)."""
        scope = _push(ref.repository) if for_push else _pull(ref.repository)
        resp = self.client.request("HEAD", f"/v2/{ref.repository}/manifests/{ref.reference}",
                                   scope=scope, headers={"Accept": MANIFEST_ACCEPT})
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            return None
        d = resp.headers.get("Docker-Content-Digest")
        try:
            return parse_digest(d) if d else None
        except InvalidInput:
            return None

    def list_tags(self, repository: str) -> list[str]:
        resp = self.client.request("GET", f"/v2/{repository}/tags/list", scope=_pull(repository))
        if resp.status_code == 404:
            raise NotFound(f"{self.registry}/{repository} not found")
        if resp.status_code != 200:
            raise error_from(resp, f"list tags of {repository}")
        try:
            body = resp.json(limit=MAX_MANIFEST_BYTES)
            tags = (body.get("tags") if isinstance(body, dict) else None) or []
        except (ValueError, NetworkError):
            raise InvalidInput(f"{self.registry} sent a tag list that is not JSON (or is too large)") from None
        finally:
            resp.close()
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    # -- blobs: presence ---------------------------------------------------------------------
    def blob_size(self, repository: str, digest: Digest, *, for_push: bool = False) -> Optional[int]:
        # during a push, ask with the push scope: one token then serves the whole push
        scope = _push(repository) if for_push else _pull(repository)
        resp = self.client.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope)
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            if resp.status_code in (401, 403):
                raise error_from(resp, f"HEAD blob {digest}")
            return None
        try:
            return int(resp.headers.get("Content-Length", "-1"))
        except ValueError:
            return None

    def has_blob(self, repository: str, digest: Digest, size: Optional[int] = None, *,
                 for_push: bool = False) -> bool:
        got = self.blob_size(repository, digest, for_push=for_push)
        return got is not None and (size is None or got < 0 or got == size)

    # -- blobs: upload -----------------------------------------------------------------------
    def start_upload(self, repository: str, mount: Optional[tuple[Digest, str]] = None) -> tuple[str, bool]:
        """Open an upload session (or mount ``(digest, from_repository)``): (session URL, mounted)."""
        path = f"/v2/{repository}/blobs/uploads/"
        scope = _push(repository)
        if mount is not None:
            path += "?" + urllib.parse.urlencode({"from": mount[1], "mount": str(mount[0])})
            scope += f" {_pull(mount[1])}"
        resp = self.client.request("POST", path, scope=scope, headers={"Content-Length": "0"}, body=b"")
        if resp.status_code == 201 and mount is not None:
            resp.close()
            return "", True
        if resp.status_code != 202:
            raise error_from(resp, f"start upload to {repository}")
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
        resp.close()
        if not loc:
            raise RegistryError(f"{self.registry} started an upload without a Location header")
        return urllib.parse.urljoin(self.client.base + "/", loc), False

    def _commit_timeout(self) -> tuple[float, float]:
        o = self.client.opts
        return o.connect_timeout, max(o.read_timeout, o.commit_timeout)

    @staticmethod
    def _with_query(url: str, **params) -> str:
        u = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qsl(u.query, keep_blank_values=True) + list(params.items())
        return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ""))

    def push_blob(self, repository: str, desc: Descriptor, opener: Callable[..., BinaryIO], *,
                  progress: ProgressFn = None, mount_from: Optional[str] = None) -> str:
        """Upload a blob (skipped if present). Returns ``exists``, ``mounted`` or ``uploaded``.

        ``opener(offset=0)`` gives a fresh stream of the blob from ``offset`` for each try (a
        chunked upload resumes at an offset).

        Concurrent calls for the same blob and repository upload it once: the others wait, then
        find it there. Besides the bytes, this spares Docker distribution a race of its own: two
        commits of one blob rewrite its repository link file in place, and a manifest checked
        meanwhile is refused (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN).
        """
        key = (repository, desc.digest)
        while True:
            with self._uploading_lock:
                mine = self._uploading.get(key)
                if mine is None:
                    mine = self._uploading[key] = threading.Event()
                    break
            mine.wait()  # the other upload ended; whether it succeeded, the HEAD below tells
        try:
            return self._push_blob(repository, desc, opener, progress, mount_from)
        finally:
            with self._uploading_lock:
                del self._uploading[key]
            mine.set()

    def _push_blob(self, repository: str, desc: Descriptor, opener: Callable[..., BinaryIO],
                   progress: ProgressFn, mount_from: Optional[str]) -> str:
        self.policy.check_layer(desc.size, f"blob {desc.digest}")
        if self.has_blob(repository, desc.digest, desc.size, for_push=True):
            return "exists"
        chunk = self.policy.plan(desc.size, self.chunk_size)
        state = UploadState(self.registry, repository, desc.digest) if chunk is not None else None
        loc, offset = None, 0
        if mount_from and mount_from != repository:
            loc, mounted = self.start_upload(repository, (desc.digest, mount_from))
            if mounted:
                log.info("mounted %s from %s", desc.digest, mount_from)
                return "mounted"
        saved = state.load() if state is not None and loc is None else None
        if saved is not None:
            try:   # an earlier run's session: ask the registry how much it has
                loc, offset = self._upload_status(saved[0], repository)
                log.info("resuming the upload of %s at byte %d of %d", desc.digest, offset, desc.size)
            except RegistryError:
                log.info("the registry forgot the earlier upload session of %s; starting over", desc.digest)
                state.clear()
                loc, offset = None, 0
            if offset > desc.size:
                loc, offset = None, 0
        if loc is None:
            loc, _ = self.start_upload(repository)
        sent = [0]

        def tick(n: int) -> None:
            sent[0] += n
            if progress is not None:
                progress(n)

        def rollback() -> None:
            if progress is not None and sent[0]:
                progress(-sent[0])
            sent[0] = 0

        if chunk is None and self.policy.monolithic_only and desc.size >= RESUMABLE_ABOVE:
            log.warning("%s takes only whole-blob uploads (%s): an interrupted push starts %s over",
                        self.policy.name, self.policy.source, desc.digest.short)
        if chunk is None:
            # The registry checks the digest of what it receives and refuses a mismatch
            # (DIGEST_INVALID), so we do not hash again on the sending thread.
            def body():
                rollback()
                return FileBody(opener, 0, desc.size, tick)
            resp = self.client.request("PUT", self._with_query(loc, digest=str(desc.digest)),
                                       scope=_push(repository),
                                       headers={"Content-Type": "application/octet-stream",
                                                "Content-Length": str(desc.size)}, body=body,
                                       timeout=self._commit_timeout())
            if resp.status_code == 413 and not self.policy.monolithic_only:  # the registry caps bodies: chunk
                resp.close()
                rollback()
                log.info("%s refused a %d-byte upload (413); retrying in %d-byte chunks", self.registry,
                         desc.size, FALLBACK_CHUNK)
                loc, _ = self.start_upload(repository)
                self._chunked(repository, loc, desc, opener, FALLBACK_CHUNK, tick, rollback)
                return "uploaded"
            if resp.status_code != 201:
                raise self._upload_error(resp, desc)
            resp.close()
            return "uploaded"
        if offset and progress is not None:
            progress(offset)   # what the registry already had counts as moved
        self._chunked(repository, loc, desc, opener, chunk, tick, rollback, start=offset,
                      save=state.save if state is not None else None)
        if state is not None:
            state.clear()
        return "uploaded"

    @staticmethod
    def _upload_error(resp, desc: Descriptor):
        err = error_from(resp, f"upload {desc.digest}")
        if "DIGEST_INVALID" in err.codes:
            return VerificationError(f"the registry computed another digest than {desc.digest} for the uploaded "
                                     "bytes: the source blob is damaged (for a local store, run 'ollama-oci "
                                     "verify' and pack or pull the model again)", expected=desc.digest)
        return err

    def push_stream(self, repository: str, chunks, *, chunk_size: int = 8 << 20,
                    progress: ProgressFn = None) -> tuple[Digest, int]:
        """Upload bytes whose digest is not known yet (a tar built on the fly): chunked PATCHes.

        At most one chunk is held in memory (it is kept so a failed PATCH can be retried);
        the digest, computed as the bytes go, is given to the final PUT.
        """
        import hashlib
        h = hashlib.sha256()
        loc, _ = self.start_upload(repository)
        buf = bytearray()
        offset = 0

        def flush(data: bytes) -> None:
            nonlocal loc, offset
            status, loc = self.patch_upload(repository, loc, offset, len(data), bytes(data))
            if status == 416:
                raise RegistryError(f"{self.registry} refused upload chunk at {offset} (416)")
            offset += len(data)
            if progress is not None:
                progress(len(data))

        for piece in chunks:
            h.update(piece)
            buf += piece
            while len(buf) >= chunk_size:
                flush(buf[:chunk_size])
                del buf[:chunk_size]
        if buf:
            flush(buf)
        digest = Digest("sha256:" + h.hexdigest())
        self.commit_upload(repository, loc, Descriptor("application/octet-stream", digest, offset))
        return digest, offset

    def patch_upload(self, repository: str, loc: str, start: int, n: int, body) -> tuple[int, str]:
        """One PATCH of ``n`` bytes at ``start`` to an upload session: (status, next session URL).
        ``body``: bytes, or a callable giving a fresh body for each try (a one-shot stream raises on
        a second call)."""
        resp = self.client.request(
            "PATCH", loc, scope=_push(repository),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(n),
                     "Content-Range": f"{start}-{start + n - 1}"}, body=body)
        if resp.status_code == 416:
            resp.close()
            return 416, loc
        if resp.status_code not in (202, 204):
            raise error_from(resp, f"upload chunk {start}-{start + n - 1}")
        new = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
        resp.close()
        return resp.status_code, urllib.parse.urljoin(loc, new) if new else loc  # relative to the session URL

    def commit_upload(self, repository: str, loc: str, desc: Descriptor) -> None:
        """The final empty PUT of an upload session, naming the digest (the registry verifies it)."""
        resp = self.client.request("PUT", self._with_query(loc, digest=str(desc.digest)), scope=_push(repository),
                                   headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
                                   body=b"", timeout=self._commit_timeout())
        if resp.status_code != 201:
            raise self._upload_error(resp, desc)
        resp.close()

    def cancel_upload(self, repository: str, loc: str) -> None:
        """Abandon an upload session (DELETE; a registry that does not take it expires the session)."""
        resp = self.client.request("DELETE", loc, scope=_push(repository))
        resp.close()

    def _upload_status(self, loc: str, repository: str) -> tuple[str, int]:
        """Where an upload session stands: (location, bytes the registry has)."""
        resp = self.client.request("GET", loc, scope=_push(repository))
        resp.close()
        if resp.status_code not in (200, 204):
            raise error_from(resp, "upload status")
        rng = resp.headers.get("Range", "").strip()
        new = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location") or loc
        m = re.match(r"^(?:bytes=)?0-(-?\d+)$", rng)
        end = max(int(m.group(1)) + 1, 0) if m else 0    # "0-N": bytes 0..N are there ("0--1": none)
        return urllib.parse.urljoin(loc, new), end

    def _chunked(self, repository: str, loc: str, desc: Descriptor, opener, chunk_size: int, tick, rollback, *,
                 start: int = 0, save: Optional[Callable[[str, int], None]] = None) -> None:
        """PATCH ``chunk_size`` pieces from ``start``, then commit; ``save(location, offset)`` is told
        where the session stands after each piece (a later run resumes there)."""
        if chunk_size <= 0:
            raise InvalidInput("chunk size must be positive")
        offset = start
        stalls = 0
        while offset < desc.size:
            n = min(chunk_size, desc.size - offset)
            at = offset
            status, loc = self.patch_upload(repository, loc, at, n,
                                            lambda s=at, k=n: FileBody(lambda: opener(s), 0, k, None))
            if status == 416:
                if stalls >= 3:
                    raise RegistryError(f"{self.registry} keeps refusing chunks of {desc.digest} (416)")
                loc, offset = self._upload_status(loc, repository)  # out of step: ask where the session is
                stalls += 1
                continue
            offset += n
            tick(n)
            if save is not None:
                save(loc, offset)
        self.commit_upload(repository, loc, desc)


class Registries:
    """One :class:`RegistryStore` per registry host, made on first use with the same transport options.

    Credentials given explicitly (a command line's ``-u``/``--password-stdin``) go to one registry
    only, ``credentials_for``: a copy between two registries never shows one registry's password
    to the other. Every other registry finds its credentials where users keep them.
    """

    def __init__(self, options: Optional[TransportOptions] = None, *, chunk_size: Optional[int] = None,
                 credentials=None, credentials_for: Optional[str] = None):
        self.options = options or TransportOptions()
        self.chunk_size = chunk_size
        self.credentials = credentials
        self.credentials_for = credentials_for
        self._made: dict[str, RegistryStore] = {}
        self._lock = threading.Lock()

    def get(self, registry: str) -> RegistryStore:
        with self._lock:
            store = self._made.get(registry)
            if store is None:
                opts = self.options
                if self.credentials is not None and (self.credentials_for is None or
                                                     registry == self.credentials_for):
                    import dataclasses
                    opts = dataclasses.replace(opts, credentials=self.credentials)
                store = self._made[registry] = RegistryStore(registry, opts, chunk_size=self.chunk_size)
            return store

    __call__ = get


class Repository:
    """One repository of a registry: the store contract over the distribution API.

    References are tags, digests, or :class:`~ollama_oci.reference.Reference` objects naming
    this repository.
    """

    def __init__(self, registry: RegistryStore, name: str):
        self.registry = registry
        self.name = name
        self._direct: dict[str, str] = {}   # digest -> object-storage URL a blob redirected to
        self._direct_lock = threading.Lock()

    def _ref(self, ref: Union[Reference, str]) -> Reference:
        if isinstance(ref, Reference):
            if ref.registry != self.registry.registry or ref.repository != self.name:
                raise InvalidInput(f"{ref} is not in {self.describe()}")
            return ref
        if isinstance(ref, str) and ref.startswith("sha256:"):
            return Reference(self.registry.registry, self.name, None, parse_digest(ref))
        if isinstance(ref, str) and ref:
            return Reference(self.registry.registry, self.name, ref)
        raise InvalidInput(f"{ref!r} is not a tag or digest of {self.describe()}")

    def describe(self) -> str:
        return f"{self.registry.registry}/{self.name}"

    def describe_ref(self, ref: Union[Reference, str]) -> str:
        return str(self._ref(ref))

    # -- the store contract -------------------------------------------------------------------
    def resolve(self, ref: Union[Reference, str], *, _scope: str = "") -> Descriptor:
        r = self._ref(ref)
        reg = self.registry
        resp = reg.client.request("HEAD", f"/v2/{self.name}/manifests/{r.reference}",
                                  scope=_scope or _pull(self.name), headers={"Accept": MANIFEST_ACCEPT})
        resp.close()
        if resp.status_code == 404:
            raise NotFound(f"{r} not found")
        if resp.status_code != 200:
            raise error_from(resp, f"HEAD manifest {r}")
        try:
            d = parse_digest(resp.headers.get("Docker-Content-Digest") or "")
            size = int(resp.headers.get("Content-Length") or -1)
            if size < 0:
                raise ValueError("no length")
        except (InvalidInput, ValueError):
            data, mt = reg.get_manifest_raw(r)  # a registry that does not say: ask for the bytes
            return Descriptor(mt, digest_bytes(data), len(data))
        mt = (resp.headers.get("Content-Type") or MT.MANIFEST).split(";")[0].strip()
        return Descriptor(mt, d, size)

    def resolve_for_push(self, ref: Union[Reference, str]) -> Descriptor:
        """Capability: :meth:`resolve` asked with the push scope, so one token serves a whole push."""
        return self.resolve(ref, _scope=_push(self.name))

    def fetch_manifest(self, ref: Union[Reference, str]) -> tuple[bytes, str]:
        return self.registry.get_manifest_raw(self._ref(ref))

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> "BlobStream":
        """A blob as a stream from ``offset`` (``length`` bytes, or to the end). RangeNotSupported
        if a part was asked for and the server sends the whole blob."""
        partial = offset > 0 or (length is not None and offset + length < desc.size)
        headers = {}
        if partial:
            end = desc.size - 1 if length is None else offset + length - 1
            headers["Range"] = f"bytes={offset}-{end}"
        client = self.registry.client
        key = str(desc.digest)
        with self._direct_lock:
            direct = self._direct.get(key)
        resp = None
        if direct is not None:
            # a presigned object-storage URL: no registry auth goes there
            resp = client._with_retries(lambda: client.send("GET", direct, headers=headers), direct)
            if resp.status_code not in (200, 206):  # expired, or refused: ask the registry again
                resp.close()
                resp = None
                with self._direct_lock:
                    self._direct.pop(key, None)
        if resp is None:
            def remember(url: str) -> None:
                with self._direct_lock:
                    self._direct[key] = url
            resp = client.request("GET", f"/v2/{self.name}/blobs/{desc.digest}", scope=_pull(self.name),
                                  headers=headers, on_redirect=remember)
        if resp.status_code == 404:
            resp.close()
            raise NotFound(f"blob {desc.digest} not found in {self.describe()}")
        if resp.status_code == 200 and partial:
            resp.close()
            raise RangeNotSupported(f"{self.registry.registry} ignores byte ranges")
        if resp.status_code not in (200, 206):
            raise error_from(resp, f"GET blob {desc.digest}")
        return BlobStream(resp, desc)

    def exists(self, desc: Descriptor) -> bool:
        return self.registry.has_blob(self.name, desc.digest, desc.size)

    def push(self, desc: Descriptor, source: BlobSource, *, progress: ProgressFn = None) -> str:
        """Upload a blob unless it is there: mounted from a repository of the same registry, streamed
        from a local file, or piped from the source's stream. Returns exists/mounted/uploaded."""
        origin = source.mount_origin
        mount_from = origin[1] if origin is not None and origin[0] == self.registry.registry else None
        path = source.local_path
        if path is not None:
            def opener(offset: int = 0) -> BinaryIO:
                f = open(path, "rb")
                if offset:
                    f.seek(offset)
                return f
        else:
            def opener(offset: int = 0) -> BinaryIO:
                return source.open(offset)
        return self.registry.push_blob(self.name, desc, opener, progress=progress, mount_from=mount_from)

    def tag(self, ref: Union[Reference, str], data: bytes, media_type: str) -> Digest:
        return self.registry.put_manifest_raw(self._ref(ref), data, media_type)

    def list_refs(self) -> list[str]:
        return self.registry.list_tags(self.name)

    def delete(self, ref: Union[Reference, str]) -> None:
        r = self._ref(ref)
        digest = r.digest or self.resolve(r).digest
        resp = self.registry.client.request("DELETE", f"/v2/{self.name}/manifests/{digest}",
                                            scope=f"repository:{self.name}:delete")
        if resp.status_code == 404:
            resp.close()
            raise NotFound(f"{r} not found")
        if resp.status_code not in (200, 202):
            raise error_from(resp, f"DELETE manifest {r}")
        resp.close()

    # -- capabilities -------------------------------------------------------------------------
    def push_stream(self, chunks, *, progress: ProgressFn = None) -> tuple[Digest, int]:
        """Upload content whose digest is known only at its end (a tar built on the fly)."""
        return self.registry.push_stream(self.name, chunks, progress=progress)

    def check_blobs(self, blobs) -> None:
        """Capability: refuse, before anything is sent, a blob larger than the registry stores."""
        for d in blobs:
            self.registry.policy.check_layer(d.size, f"blob {d.digest} ({d.kind})")

    def mount_origin(self) -> tuple[str, str]:
        """A destination in the same registry mounts blobs from here instead of moving them."""
        return self.registry.registry, self.name


class BlobStream:
    """A blob response read as a file; network failures become temporary RegistryErrors."""

    def __init__(self, resp, desc: Descriptor):
        self.resp = resp
        self.desc = desc

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, as soon as some are there (a trickling server cannot hold a reader that
        watches for stalls); ``n < 0`` reads to the end."""
        try:
            return self.resp.read(n) if n is None or n < 0 else self.resp.read_some(n)
        except NetworkError as e:
            raise RegistryError(f"transfer of {self.desc.digest} interrupted: {e}", temporary=True) from None

    def close(self) -> None:
        self.resp.close()

    def __enter__(self) -> "BlobStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

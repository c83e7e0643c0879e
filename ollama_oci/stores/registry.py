"""A remote OCI registry as a store: the distribution API, streamed and verified.

Uploads never hold a blob in memory: a monolithic ``PUT`` streams the file in 1 MiB
blocks, and registries that cap request bodies
(413) get a chunked ``PATCH`` upload instead, or always when ``chunk_size`` is
set.  Downloads go to a partial file in the destination store, in parallel byte
ranges for large blobs, with their progress recorded on disk so an interrupted
pull resumes where it stopped; the blob is hashed and verified before it gets
its final name.  A redirect to another host (object storage) is followed
without our ``Authorization`` header, as ollama's client does.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional

from ..digest import CHUNK, Digest, check, digest_bytes, hash_stream, parse_digest
from ..errors import InvalidInput, NotFound, RegistryError, VerificationError
from ..fsutil import atomic_write, unlink_quiet
from ..reference import Reference
from ..spec import MAX_MANIFEST_BYTES, MT, Descriptor
from ..transport.http import RegistryClient, TransportOptions, error_from
from ..transport.session import FileBody, NetworkError

log = logging.getLogger("ollama_oci")

__all__ = ["RegistryStore", "MANIFEST_ACCEPT"]

MANIFEST_ACCEPT = ", ".join([MT.MANIFEST, MT.OCI_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json",
                             MT.OCI_INDEX, "application/json;q=0.5", "text/plain;q=0.1"])

#: blobs at least this large are fetched in parallel byte ranges
PARALLEL_MIN = 32 << 20
#: size of one download part (the last one is shorter)
PART_SIZE = 64 << 20
#: how often (bytes) a part's progress is made durable on disk
STATE_EVERY = 16 << 20
#: chunk size used when a registry refuses a monolithic upload as too large (413)
FALLBACK_CHUNK = 4 << 20

ProgressFn = Optional[Callable[[int], None]]


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


@dataclass
class _Part:
    start: int
    end: int          # exclusive
    done: int = 0

    @property
    def complete(self) -> bool:
        return self.start + self.done >= self.end


class _NoRanges(Exception):
    """The server answered a byte-range request with the whole blob."""


class RegistryStore:
    """One registry, addressed by :class:`~ollama_oci.reference.Reference`."""

    kind = "registry"

    def __init__(self, registry: str, options: Optional[TransportOptions] = None, *,
                 client: Optional[RegistryClient] = None, chunk_size: Optional[int] = None,
                 concurrency: int = 4):
        self.registry = registry
        self.client = client or RegistryClient(registry, options)
        self.chunk_size = chunk_size
        self.concurrency = max(1, concurrency)
        # uploads under way, per (repository, digest): a second copy of the same blob (two tags
        # sharing weights in one mirror run) waits for the first instead of sending it again
        self._uploading: dict[tuple[str, Digest], threading.Event] = {}
        self._uploading_lock = threading.Lock()

    def describe(self) -> str:
        return f"registry:{self.registry}"

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
        except (ValueError, AttributeError):
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

    def resolve(self, ref: Reference, *, for_push: bool = False) -> Optional[Digest]:
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
    def _start_upload(self, repository: str, mount: Optional[tuple[Digest, str]] = None) -> tuple[str, bool]:
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

    @staticmethod
    def _with_query(url: str, **params) -> str:
        u = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qsl(u.query, keep_blank_values=True) + list(params.items())
        return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ""))

    def push_blob(self, repository: str, desc: Descriptor, opener: Callable[[], BinaryIO], *,
                  progress: ProgressFn = None, mount_from: Optional[str] = None) -> str:
        """Upload a blob (skipped if present). Returns ``exists``, ``mounted`` or ``uploaded``.

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

    def _push_blob(self, repository: str, desc: Descriptor, opener: Callable[[], BinaryIO],
                   progress: ProgressFn, mount_from: Optional[str]) -> str:
        if self.has_blob(repository, desc.digest, desc.size, for_push=True):
            return "exists"
        if mount_from and mount_from != repository:
            loc, mounted = self._start_upload(repository, (desc.digest, mount_from))
            if mounted:
                log.info("mounted %s from %s", desc.digest, mount_from)
                return "mounted"
        else:
            loc, _ = self._start_upload(repository)
        sent = [0]

        def tick(n: int) -> None:
            sent[0] += n
            if progress is not None:
                progress(n)

        def rollback() -> None:
            if progress is not None and sent[0]:
                progress(-sent[0])
            sent[0] = 0

        if self.chunk_size is None:
            # The registry checks the digest of what it receives and refuses a mismatch
            # (DIGEST_INVALID), so we do not hash again on the sending thread.
            def body():
                rollback()
                return FileBody(opener, 0, desc.size, tick)
            resp = self.client.request("PUT", self._with_query(loc, digest=str(desc.digest)),
                                       scope=_push(repository),
                                       headers={"Content-Type": "application/octet-stream",
                                                "Content-Length": str(desc.size)}, body=body)
            if resp.status_code == 413:  # the registry caps request bodies: go chunked
                resp.close()
                rollback()
                log.info("%s refused a %d-byte upload (413); retrying in %d-byte chunks", self.registry,
                         desc.size, FALLBACK_CHUNK)
                loc, _ = self._start_upload(repository)
                self._chunked(repository, loc, desc, opener, FALLBACK_CHUNK, tick, rollback)
                return "uploaded"
            if resp.status_code != 201:
                raise self._upload_error(resp, desc)
            resp.close()
            return "uploaded"
        self._chunked(repository, loc, desc, opener, self.chunk_size, tick, rollback)
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
        loc, _ = self._start_upload(repository)
        buf = bytearray()
        offset = 0

        def flush(data: bytes) -> None:
            nonlocal loc, offset
            status, loc = self._patch_chunk(repository, loc, offset, len(data), bytes(data))
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
        self._commit_upload(repository, loc, Descriptor("application/octet-stream", digest, offset))
        return digest, offset

    def _patch_chunk(self, repository: str, loc: str, start: int, n: int, body) -> tuple[int, str]:
        """One PATCH of ``n`` bytes at ``start`` to an upload session: (status, next session URL)."""
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
        return resp.status_code, urllib.parse.urljoin(self.client.base + "/", new) if new else loc

    def _commit_upload(self, repository: str, loc: str, desc: Descriptor) -> None:
        """The final empty PUT of an upload session, naming the digest."""
        resp = self.client.request("PUT", self._with_query(loc, digest=str(desc.digest)), scope=_push(repository),
                                   headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
                                   body=b"")
        if resp.status_code != 201:
            raise self._upload_error(resp, desc)
        resp.close()

    def _upload_status(self, loc: str, repository: str) -> tuple[str, int]:
        """Where an upload session stands: (location, bytes the registry has)."""
        resp = self.client.request("GET", loc, scope=_push(repository))
        resp.close()
        if resp.status_code not in (200, 204):
            raise error_from(resp, "upload status")
        rng = resp.headers.get("Range", "")
        new = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location") or loc
        end = int(rng.split("-")[-1]) + 1 if "-" in rng else 0
        return urllib.parse.urljoin(self.client.base + "/", new), end

    def _chunked(self, repository: str, loc: str, desc: Descriptor, opener, chunk_size: int, tick, rollback) -> None:
        if chunk_size <= 0:
            raise InvalidInput("chunk size must be positive")
        offset = 0
        stalls = 0
        while offset < desc.size:
            n = min(chunk_size, desc.size - offset)
            start = offset
            status, loc = self._patch_chunk(repository, loc, start, n,
                                            lambda s=start, k=n: FileBody(opener, s, k, None))
            if status == 416:
                if stalls >= 3:
                    raise RegistryError(f"{self.registry} keeps refusing chunks of {desc.digest} (416)")
                loc, offset = self._upload_status(loc, repository)  # out of step: ask where the session is
                stalls += 1
                continue
            offset += n
            tick(n)
        self._commit_upload(repository, loc, desc)

    # -- blobs: download ---------------------------------------------------------------------
    def open_blob(self, repository: str, digest: Digest, start: int = 0):
        """A streaming response for a blob from ``start`` (Authorization never leaves the registry host)."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        resp = self.client.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository),
                                   headers=headers)
        if resp.status_code == 404:
            resp.close()
            raise NotFound(f"blob {digest} not found in {self.registry}/{repository}")
        if resp.status_code not in (200, 206):
            raise error_from(resp, f"GET blob {digest}")
        return resp

    def fetch_blob(self, repository: str, desc: Descriptor, data_path: str, state_path: str, *,
                   progress: ProgressFn = None) -> None:
        """Download a blob into ``data_path`` (resuming from ``state_path``) and verify it.

        On return the file holds exactly the blob; the caller renames it into place.
        On a digest mismatch the partial files are deleted and VerificationError raised.
        """
        size = desc.size
        parts = self._load_state(state_path, desc)
        fd = os.open(data_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            if parts is None:
                n = 1 if size < PARALLEL_MIN else math.ceil(size / PART_SIZE)
                step = math.ceil(size / n) if n else 0
                parts = [_Part(i * step, min(size, (i + 1) * step)) for i in range(n)] or [_Part(0, 0)]
            already = sum(p.done for p in parts)
            if already and progress is not None:
                progress(already)
            state_lock = threading.Lock()

            def save() -> None:
                with state_lock:
                    os.fdatasync(fd)
                    atomic_write(state_path, json.dumps({"digest": str(desc.digest), "size": size, "parts": [
                        [p.start, p.end, p.done] for p in parts]}).encode())
            save()
            direct: list[Optional[str]] = [None]
            # the other parts start once the first response is in: by then we know whether the
            # blob redirects to object storage (and its URL), so only one request asks the registry
            answered = threading.Event()

            def fetch_part(p: _Part, first: bool) -> None:
                if not first:
                    answered.wait()
                tries = 0
                while not p.complete:
                    pos = p.start + p.done
                    try:
                        self._fetch_range(repository, desc, fd, p, pos, direct, progress, save,
                                          answered if first else None)
                    except RegistryError as e:
                        if not e.temporary or tries >= 5:
                            raise
                        tries += 1
                        log.info("blob %s part at %d: %s; resuming", desc.digest.short, pos, e)
                    finally:
                        answered.set()

            todo = [p for p in parts if not p.complete]
            try:
                if len(todo) == 1:
                    fetch_part(todo[0], True)
                elif todo:
                    with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as ex:
                        futures = [ex.submit(fetch_part, p, i == 0) for i, p in enumerate(todo)]
                        for f in futures:
                            f.result()
            except _NoRanges:
                # the server ignores byte ranges: one sequential stream from the start instead
                log.info("%s ignores byte ranges; downloading %s in one stream", self.registry, desc.digest.short)
                if progress is not None:
                    progress(-sum(p.done for p in parts))
                parts[:] = [_Part(0, size)]
                save()
                fetch_part(parts[0], True)
            save()
        finally:
            os.close(fd)
        with open(data_path, "rb", buffering=0) as f:
            got, n = hash_stream(f)
        if got != desc.digest or n != size:
            unlink_quiet(data_path)
            unlink_quiet(state_path)
            raise VerificationError(f"digest mismatch for blob {desc.digest} from {self.registry}/{repository}: "
                                    f"the content ({n} bytes) hashes to {got}; the registry's copy is damaged, "
                                    "nothing was installed", expected=desc.digest, actual=got)

    def _fetch_range(self, repository, desc, fd, part: _Part, pos: int, direct, progress, save,
                     answered: Optional[threading.Event] = None) -> None:
        end = part.end - 1
        headers = {"Range": f"bytes={pos}-{end}"}
        if direct[0] is not None:
            # a presigned object-storage URL: no registry auth goes there
            resp = self.client._with_retries(lambda: self.client.send("GET", direct[0], headers=headers), direct[0])
        else:
            def remember(url: str) -> None:
                direct[0] = url
            resp = self.client.request("GET", f"/v2/{repository}/blobs/{desc.digest}", scope=_pull(repository),
                                       headers=headers, on_redirect=remember)
        if answered is not None:
            answered.set()
        try:
            if resp.status_code == 404:
                raise NotFound(f"blob {desc.digest} not found in {self.registry}/{repository}")
            if resp.status_code == 200 and (pos != 0 or part.end != desc.size):
                raise _NoRanges()
            if resp.status_code not in (200, 206):
                raise error_from(resp, f"GET blob {desc.digest}")
            since = 0
            try:
                for chunk in resp.iter_content(CHUNK):
                    if not chunk:
                        continue
                    room = part.end - (part.start + part.done)
                    if len(chunk) > room:
                        if resp.status_code == 200 and part.start == 0 and part.end == desc.size:
                            raise VerificationError(f"blob {desc.digest}: the registry sent more than "
                                                    f"{desc.size} bytes", expected=desc.digest)
                        chunk = chunk[:room]
                    os.pwrite(fd, chunk, part.start + part.done)
                    part.done += len(chunk)
                    since += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                    if since >= STATE_EVERY:
                        save()
                        since = 0
                    if part.complete:
                        break
            except NetworkError as e:  # network trouble: retried from where we are; disk errors propagate
                raise RegistryError(f"download of {desc.digest} interrupted: {e}", temporary=True) from None
            if not part.complete:
                raise RegistryError(f"download of {desc.digest} ended early at byte {part.start + part.done}",
                                    temporary=True)
        finally:
            resp.close()
            save()

    @staticmethod
    def _load_state(state_path: str, desc: Descriptor) -> Optional[list[_Part]]:
        try:
            with open(state_path, "rb") as f:
                st = json.loads(f.read(1 << 20))
        except (FileNotFoundError, ValueError):
            return None
        try:
            if st.get("digest") != str(desc.digest) or st.get("size") != desc.size:
                return None
            parts = [_Part(int(a), int(b), int(c)) for a, b, c in st["parts"]]
        except (KeyError, TypeError, ValueError):
            return None
        pos = 0
        for p in parts:  # must tile [0, size) with sane progress
            if p.start != pos or p.end < p.start or not 0 <= p.done <= p.end - p.start:
                return None
            pos = p.end
        return parts if pos == desc.size else None

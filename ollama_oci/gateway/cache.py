"""The pull-through blob cache: one upstream fetch per blob, however many servers ask at once.

* **Single-flight**: the first request for an uncached blob starts a *fill* (a thread that streams the
  blob from upstream into a temp file, hashing it); every request for that blob, the first included,
  reads from the growing file. The fill does not belong to any client: ollama's probe GET hangs up
  at once, and its ranged part GETs then read what the fill writes.
* **Nothing unverified is served whole**: readers may take bytes up to the fill's progress, except
  the blob's last byte, which is released only after the digest checks out. A corrupt upstream blob
  is deleted, never renamed into the cache, and every reader's response breaks off short of its end
  (so a client's own digest check, or its length check, fails too).
* **Bounded**: a size cap with least-recently-used eviction; a blob larger than the cap is streamed
  straight through instead. Temp files are under ``tmp/`` and removed at start and on shutdown, so
  nothing half-written survives a restart.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import queue
import threading
from typing import Callable, Optional

from ..cancel import CancelToken
from ..digest import Digest
from ..errors import Cancelled, VerificationError
from ..fsutil import fsync_dir, tmp_name, unlink_quiet, write_all

__all__ = ["BlobCache", "Fill"]

log = logging.getLogger("ollama_oci.gateway")

CHUNK = 1 << 20
#: the fill wakes its readers after this many new bytes (and at the end)
NOTIFY_EVERY = 1 << 20
FILL_TRIES = 3
#: chunks received but not yet hashed (memory per fill: this many CHUNKs at most)
HASH_QUEUE = 8


class Fill:
    """One blob arriving from upstream into the cache."""

    def __init__(self, cache: "BlobCache", digest: Digest, size: int, loop: asyncio.AbstractEventLoop):
        self.cache = cache
        self.digest = digest
        self.size = size
        self.loop = loop
        self.tmp = tmp_name(cache.tmp_dir)
        self.written = 0
        self.verified = False
        self.error: Optional[BaseException] = None
        self.cancel = CancelToken()
        self._waiters: list[asyncio.Future] = []
        self.task: Optional[asyncio.Future] = None

    # -- the reader side (event loop) ------------------------------------------------------------
    def readable(self) -> int:
        """Bytes a reader may send: everything once the digest checked out, else all but the last."""
        if self.verified and self.error is None:
            return self.size
        return min(self.written, max(self.size - 1, 0))

    async def changed(self) -> None:
        fut = self.loop.create_future()
        self._waiters.append(fut)
        await fut

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)

    def open(self) -> int:
        """A descriptor for reading (the temp file, or the cached file once it has moved)."""
        try:
            return os.open(self.tmp, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            # verified and renamed into the cache (its completion may not be published yet)
            return os.open(self.cache.path_of(self.digest), os.O_RDONLY | os.O_NOFOLLOW)

    # -- the writer side (worker threads) -----------------------------------------------------------
    def run(self, opener: Callable[[int], object]) -> None:
        """Stream the blob into the temp file. Hashing runs in a second thread, so receiving, writing
        and hashing overlap (each releases the GIL); readers are released the last byte as soon as the
        digest checks out, before the fsync and the rename into the cache."""
        h = hashlib.sha256()
        chunks: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=HASH_QUEUE)

        def hasher() -> None:
            while True:
                b = chunks.get()
                if b is None:
                    return
                h.update(b)
        hashing = threading.Thread(target=hasher, name="gateway-hash", daemon=True)
        hashing.start()
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            try:
                self._receive(fd, opener, chunks)
            finally:
                chunks.put(None)
                hashing.join()
            got = "sha256:" + h.hexdigest()
            if self.written != self.size or got != str(self.digest):
                raise VerificationError(f"upstream sent {self.written} bytes hashing to {got} for {self.digest} "
                                        f"({self.size} bytes); not cached, not served",
                                        expected=self.digest, actual=got)
            self.verified = True
            self.loop.call_soon_threadsafe(self._wake)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(self.tmp, self.cache.path_of(self.digest))
            fsync_dir(self.cache.blob_dir)
        finally:
            if fd >= 0:
                os.close(fd)

    def _receive(self, fd: int, opener: Callable[[int], object], chunks: "queue.Queue") -> None:
        tries = 0
        last_note = 0
        while self.written < self.size:
            self.cancel.check()
            try:
                stream = opener(self.written)
            except Exception:
                tries += 1
                if tries >= FILL_TRIES:
                    raise
                continue
            try:
                while self.written < self.size:
                    self.cancel.check()
                    data = stream.read(min(CHUNK, self.size - self.written))
                    if not data:   # ended early: a try like a broken stream, or it would reopen forever
                        raise EOFError(f"the stream ended at byte {self.written}")
                    write_all(fd, data)
                    chunks.put(data)
                    self.written += len(data)
                    if self.written - last_note >= NOTIFY_EVERY:
                        last_note = self.written
                        self.loop.call_soon_threadsafe(self._wake)
            except Cancelled:
                raise
            except Exception as e:   # a broken upstream stream: resume where it stopped
                tries += 1
                log.warning("upstream stream of %s broke at %d of %d bytes (%s)", self.digest, self.written,
                            self.size, e)
                if tries >= FILL_TRIES:
                    raise
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()

    def finish(self, error: Optional[BaseException]) -> None:
        """On the loop, after ``run``: publish the result and wake every reader."""
        self.error = error
        if error is not None:
            unlink_quiet(self.tmp)
        self._wake()


class BlobCache:
    def __init__(self, root: str, max_size: int, metrics=None):
        self.root = root
        self.max_size = max_size
        self.blob_dir = os.path.join(root, "blobs")
        self.tmp_dir = os.path.join(root, "tmp")
        self.metrics = metrics
        self.fills: dict[str, Fill] = {}
        self._lru: "collections.OrderedDict[str, int]" = collections.OrderedDict()
        self._repos: dict[str, set] = {}     # digest -> repositories the blob is known to belong to
        self.total = 0
        self._lock = threading.Lock()
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)
        for f in os.listdir(self.tmp_dir):      # half-written fills of an earlier run
            unlink_quiet(os.path.join(self.tmp_dir, f))
        entries = []
        for f in os.listdir(self.blob_dir):
            p = os.path.join(self.blob_dir, f)
            if not f.startswith("sha256-") or len(f) != 71:
                continue
            try:
                st = os.stat(p, follow_symlinks=False)
            except OSError:
                continue
            entries.append((st.st_atime, f, st.st_size))
        for _, f, size in sorted(entries):
            self._lru[f"sha256:{f[7:]}"] = size
            self.total += size

    def path_of(self, digest: Digest) -> str:
        return os.path.join(self.blob_dir, f"sha256-{digest.hex}")

    def fits(self, size: int) -> bool:
        return 0 < size <= self.max_size

    def lookup(self, digest: Digest, repository: str) -> Optional[str]:
        """The cached file, if the blob is cached and known to belong to ``repository``."""
        key = str(digest)
        with self._lock:
            if key not in self._lru:
                return None
            known = repository in self._repos.get(key, ())
            self._lru.move_to_end(key)
        path = self.path_of(digest)
        if not os.path.isfile(path):
            with self._lock:
                self.total -= self._lru.pop(key, 0)
            return None
        return path if known else None

    def cached(self, digest: Digest) -> bool:
        with self._lock:
            return str(digest) in self._lru

    def filling(self, digest: Digest, repository: str) -> Optional[Fill]:
        """The fill under way for this blob, if the blob is known to belong to ``repository``."""
        key = str(digest)
        fill = self.fills.get(key)
        with self._lock:
            known = repository in self._repos.get(key, ())
        return fill if fill is not None and known else None

    def note_repository(self, digest: Digest, repository: str) -> None:
        with self._lock:
            s = self._repos.setdefault(str(digest), set())
            if len(s) < 1000:
                s.add(repository)

    def start_fill(self, digest: Digest, size: int, opener: Callable[[int], object], executor) -> Fill:
        """The fill for this blob: the running one, or a new one (single-flight)."""
        key = str(digest)
        fill = self.fills.get(key)
        if fill is not None:
            return fill
        loop = asyncio.get_running_loop()
        fill = Fill(self, digest, size, loop)
        self.fills[key] = fill
        if self.metrics:
            self.metrics.inc("upstream_fetches_total")

        async def drive() -> None:
            err: Optional[BaseException] = None
            try:
                await loop.run_in_executor(executor, fill.run, opener)
            except (Cancelled, asyncio.CancelledError) as e:
                err = e
                log.info("fill of %s stopped at %d of %d bytes (shutting down)", digest, fill.written, size)
            except BaseException as e:  # noqa: B902 - published to readers, then logged
                err = e
                if self.metrics:
                    self.metrics.inc("upstream_errors_total")
                log.error("fill of %s failed: %s", digest, e)
            if err is None:
                self._add(key, size)
            fill.finish(err)
            self.fills.pop(key, None)

        fill.task = asyncio.ensure_future(drive())
        return fill

    def _add(self, key: str, size: int) -> None:
        with self._lock:
            if key not in self._lru:
                self.total += size
            self._lru[key] = size
            self._lru.move_to_end(key)
            while self.total > self.max_size and len(self._lru) > 1:
                old, old_size = next(iter(self._lru.items()))
                if old == key or old in self.fills:
                    break
                self._lru.pop(old)
                self._repos.pop(old, None)
                self.total -= old_size
                unlink_quiet(os.path.join(self.blob_dir, "sha256-" + old.split(":", 1)[1]))
                if self.metrics:
                    self.metrics.inc("cache_evictions_total")

    async def close(self) -> None:
        """Stop every fill and remove its temp file (SIGTERM): nothing half-written stays behind."""
        for fill in list(self.fills.values()):
            fill.cancel.cancel()
        for fill in list(self.fills.values()):
            if fill.task is not None:
                try:
                    await fill.task
                except BaseException:
                    pass
            unlink_quiet(fill.tmp)

    def stat(self) -> tuple[int, int]:
        with self._lock:
            return len(self._lru), self.total

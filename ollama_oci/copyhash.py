"""Assemble one file from byte ranges of others, with in-kernel copies, hashing what was written.

Used where a blob is made from files already on disk: a split GGUF set merged into one model blob,
a GGUF copied into a store on the same filesystem when it cannot be linked, a member of a ``.tar``
bundle unpacked into a store.

A writer thread moves the bytes with ``copy_file_range(2)`` (the kernel copies page to page; no
trip through Python, and on filesystems that share extents it may share them) while the calling
thread reads the output back from the page cache behind it and hashes it. The digest is thus of
the bytes the file holds, not of what the sources held a moment before, and the two passes run on
two cores: a merge costs about one hash pass (docs/benchmarks.md). Where the kernel or filesystem
refuses ``copy_file_range`` (another filesystem, an old kernel, a pipe), the writer falls back to
``pread``/``pwrite`` with one reusable buffer. Memory is two fixed buffers whatever the size.

A stream (a ``.tar.zst`` bundle's member, decompressed) is written by :func:`write_stream`: a thread
decompresses and writes each block, the calling thread hashes that same block meanwhile. The other
way round, :class:`HashedReader` reads and hashes a blob on a thread while the caller writes the
blocks it hands over somewhere no kernel copy reaches (a bundle, through a compressor).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Union

from . import prehash
from .digest import Digest

__all__ = ["Range", "copy_pieces", "write_stream", "HashedReader", "ShortSource"]

CHUNK = 8 << 20
# errors that mean "copy_file_range cannot do this pair of files", not "the copy failed"
_NO_CFR = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM,
           getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


@dataclass(frozen=True)
class Range:
    """``length`` bytes of the open file ``fd`` from ``offset``."""

    fd: int
    offset: int
    length: int
    name: str = ""


Piece = Union[bytes, Range]


class ShortSource(OSError):
    """A source ended before the range asked of it (it shrank while being copied)."""

    def __init__(self, name: str):
        super().__init__(errno.EIO, f"{name or 'a source file'} ended early (it changed while being copied)")
        self.name = name


class _Writer(threading.Thread):
    def __init__(self, out_fd: int, pieces: Iterable[Piece]):
        super().__init__(name="ollama-oci-copy", daemon=True)
        self.out_fd = out_fd
        self.pieces = pieces
        self.cond = threading.Condition()
        self.written = 0
        self.finished = False
        self.error: Optional[BaseException] = None
        self.stop = False
        self.kernel = hasattr(os, "copy_file_range")
        self.buf: Optional[bytearray] = None

    def _advance(self, n: int) -> None:
        with self.cond:
            self.written += n
            self.cond.notify()

    def _literal(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.out_fd, view, self.written)
            view = view[n:]
            self._advance(n)

    def _range(self, r: Range) -> None:
        pos, left = r.offset, r.length
        while left and not self.stop:
            want = min(CHUNK, left)
            n = -1
            if self.kernel:
                try:
                    n = os.copy_file_range(r.fd, self.out_fd, want, pos, self.written)
                except OSError as e:
                    if e.errno not in _NO_CFR:
                        raise
                    self.kernel = False
            if n < 0:
                if self.buf is None:
                    self.buf = bytearray(CHUNK)
                view = memoryview(self.buf)[:want]
                n = os.preadv(r.fd, [view], pos)
                if n > 0:
                    self._literal(view[:n])
                    pos += n
                    left -= n
                    continue
            if n <= 0:
                raise ShortSource(r.name)
            pos += n
            left -= n
            self._advance(n)

    def run(self) -> None:
        try:
            for p in self.pieces:
                if self.stop:
                    break
                if isinstance(p, Range):
                    self._range(p)
                elif p:
                    self._literal(p)
        except BaseException as e:  # handed to the caller's thread
            self.error = e
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify()


def copy_pieces(out_fd: int, pieces: Iterable[Piece], *,
                progress: Optional[Callable[[int], None]] = None) -> tuple[Digest, int]:
    """Write ``pieces`` (literal bytes and :class:`Range`\\ s of open files) one after another into
    ``out_fd`` from offset 0, and return the sha256 and size of what was written.

    ``out_fd`` must be open for reading and writing (``O_RDWR``): the hash reads it back. The caller
    fsyncs. ``progress(n)`` is told of each hashed block. A source that ends early raises
    :class:`ShortSource`; any other I/O error is raised as it came.
    """
    w = _Writer(out_fd, pieces)
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    pos = 0
    w.start()
    try:
        while True:
            with w.cond:
                while w.written <= pos and not w.finished:
                    w.cond.wait()
                upto, finished = w.written, w.finished
            while pos < upto:
                n = os.preadv(out_fd, [memoryview(buf)[:min(CHUNK, upto - pos)]], pos)
                if n <= 0:
                    raise OSError(errno.EIO, "the file being written ended early")
                h.update(memoryview(buf)[:n])
                pos += n
                if progress is not None:
                    progress(n)
            if finished:
                break
    except BaseException:
        w.stop = True
        w.join(timeout=5)
        raise
    w.join()
    if w.error is not None:
        raise w.error
    return Digest("sha256:" + h.hexdigest()), pos


class _StreamWriter(threading.Thread):
    """Pulls blocks from an iterator (a decompressor: the C library runs without the GIL), writes each
    at its offset and hands it on through a bounded queue to the hashing thread."""

    def __init__(self, out_fd: int, blocks: Iterable[bytes], depth: int):
        super().__init__(name="ollama-oci-stream", daemon=True)
        import queue
        self.out_fd = out_fd
        self.blocks = blocks
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.stop = False

    def run(self) -> None:
        pos = 0
        try:
            for b in self.blocks:
                if self.stop:
                    return
                view = memoryview(b)
                while view:
                    n = os.pwrite(self.out_fd, view, pos)
                    view = view[n:]
                    pos += n
                self.q.put(b)
            self.q.put(None)
        except BaseException as e:  # handed to the caller's thread
            self.q.put(e)


def write_stream(out_fd: int, blocks: Iterable[bytes], *,
                 progress: Optional[Callable[[int], None]] = None) -> tuple[Digest, int]:
    """Write ``blocks`` (a stream read in blocks, such as a zstd decompressor) into ``out_fd`` from
    offset 0 and return the sha256 and size of what was written.

    A thread pulls each block (decompression) and writes it; this thread hashes the same block, the
    very buffer that was handed to ``pwrite``, while the next one is decompressed and written (no
    second read of the file, as :func:`copy_pieces` needs for kernel copies it never sees). At most
    a few blocks are in flight: memory stays flat. The caller fsyncs."""
    w = _StreamWriter(out_fd, blocks, depth=4)
    h = hashlib.sha256()
    total = 0
    w.start()
    try:
        for b in _received(w.q):
            h.update(b)
            total += len(b)
            if progress is not None:
                progress(len(b))
    finally:
        w.stop = True
        _wait_out(w, w.q)
    return Digest("sha256:" + h.hexdigest()), total


def _received(q) -> Iterator:
    """What a worker thread hands over through ``q``, in order, up to its ``None``; an exception it
    hands over is raised here, in the caller's thread."""
    while True:
        item = q.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _wait_out(thread: threading.Thread, q) -> None:
    """Wait for a worker told to stop; if it is blocked on a full ``q`` (its consumer left early),
    take what it put there so that it can finish."""
    import queue
    while thread.is_alive():
        try:
            q.get_nowait()
        except queue.Empty:
            thread.join(0.01)


class HashedReader:
    """The first ``size`` bytes of the file object ``f``, read and hashed on a thread, handed to the
    caller in order, block by block (iterate; at most ``depth`` blocks in flight: memory stays flat).

    Export writes each blob into a compressor while the next block is read and hashed: the hash
    (the verification that keeps a damaged store from being shipped) overlaps the writing instead of
    adding to it. After the last block, :meth:`hexdigest` is the sha256 of what was handed over;
    ``short`` says the file ended before ``size`` bytes. Use as a context manager: leaving it early
    stops the thread before ``f`` is closed. A read error is raised in the caller's thread.

    :meth:`mapped` reads a store blob through a memory map instead: the blocks are views of the page
    cache, not copies of it (~25 ms less CPU on the Gemma's 253 MB, where both cores are busy
    compressing), handed over as fast as the caller takes them, and the file is hashed by a
    background job of its own (:func:`ollama_oci.prehash.beside`, or the one the console script
    started on it), which uses the cores the caller leaves idle: :attr:`job`, whose result
    :meth:`hexdigest` waits for, or which the caller takes with :meth:`detach` to check later (a
    bundle checks them all before it gets its name). The pages of blocks the caller is done with
    leave this process's mapping as it goes (:func:`ollama_oci.prehash.mapped_views`), so the
    resident size stays bounded, as with reads. Store blobs are written once and renamed into place,
    never truncated in place, which a mapped read relies on.
    """

    def __init__(self, f, size: int, *, block: int = 1 << 20, depth: int = 4):
        import queue
        self._f = f
        self._own = None          # a file this reader opened itself (closed on exit)
        self._map = None
        self._left = size
        self._block = block
        self._q: "queue.Queue" = queue.Queue(maxsize=depth)
        self._h = hashlib.sha256()
        self._stop = False
        #: (mapped) the job hashing the mapped file: same inode, size and modification time
        self.job: Optional[prehash.HashJob] = None
        self.short = False
        self._handed = False      # (mapped) every block was handed over
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def mapped(cls, path: str, size: int, *, block: int = 1 << 20, depth: int = 4) -> "HashedReader":
        """The first ``size`` bytes of the store blob at ``path``, read through a memory map."""
        import mmap
        if not hasattr(mmap, "MADV_DONTNEED"):   # no way to let pages go: read into buffers instead
            f = open(path, "rb")
            r = cls(f, size, block=block, depth=depth)
            r._own = f
            return r
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size else None
        r = cls(None, size, block=block, depth=depth)
        r._have = st.st_size
        if m is not None:
            m.madvise(mmap.MADV_SEQUENTIAL)
            r._map = m
            if st.st_size == size:
                r.job = prehash.claim(st) if prehash.pending() else None
                if r.job is None and size >= prehash.MIN_SIZE:
                    r.job = prehash.beside(path, st)
        return r

    def _run(self) -> None:
        try:
            left = self._left
            while left and not self._stop:
                b = self._f.read(min(self._block, left))
                if not b:
                    self.short = True
                    break
                self._h.update(b)
                left -= len(b)
                self._q.put(b)
            self._q.put(None)
        except BaseException as e:  # handed to the caller's thread
            self._q.put(e)

    def __enter__(self) -> "HashedReader":
        if self._f is not None:
            self._thread = threading.Thread(target=self._run, name="ollama-oci-read-hash", daemon=True)
            self._thread.start()
        return self

    #: (mapped) how far the caller may get ahead of the job that hashes the file
    LAG_MAX = 256 << 20

    def __iter__(self):
        if self._f is not None:
            yield from _received(self._q)
            return
        end = min(self._left, self._have)
        pos = 0
        # the pages of blocks the caller is done with (written, or copied into the compressor) leave
        # this process's mapping as it goes (prehash.mapped_views): memory stays flat
        for b in prehash.mapped_views(self._map, end, self._block) if self._map is not None else ():
            if self.job is None:      # a small file, or one of another size (which ends as short)
                self._h.update(b)
            else:
                self._keep_near(pos)
            yield b
            pos += len(b)
        self.short = pos < self._left
        self._handed = True

    def _keep_near(self, pos: int) -> None:
        """Wait while the job is more than ``LAG_MAX`` behind: the pages it has yet to hash are then
        still in the page cache when it gets there, so the file is read from disk once, whatever
        its size and the memory there is (the job runs at the lowest priority, and a compressor
        that keeps every core busy can leave it behind; on the Gemma and at 1 GiB it never is)."""
        job = self.job
        while pos - job.done > self.LAG_MAX and not job.finished.is_set():
            job.finished.wait(0.002)

    def detach(self) -> Optional[prehash.HashJob]:
        """(mapped) The job hashing the file, now the caller's to wait for (None when there is none:
        then :meth:`hexdigest` is the digest)."""
        job, self.job = self.job, None
        return job

    def hexdigest(self) -> str:
        """The sha256 of the bytes handed over (waits for a mapped file's job)."""
        job = self.detach()
        if job is not None:
            got = job.wait()
            if got is not None and got[1] == self._left:
                return got[0][len("sha256:"):]
            if self._map is None:
                from .errors import VerificationError
                raise VerificationError("a blob changed, or could not be read, while it was being read")
            # the job could not vouch for the file (it changed, or a read failed): hash the map
            h = hashlib.sha256()
            with memoryview(self._map) as view:
                for pos in range(0, self._left, self._block):
                    h.update(view[pos:pos + self._block])
            return h.hexdigest()
        return self._h.hexdigest()

    def __exit__(self, *exc) -> None:
        self._stop = True
        if self._thread is not None:
            _wait_out(self._thread, self._q)
        if self.job is not None and not self._handed:     # left early: the hash is not wanted
            self.job.cancel()
            self.job = None
        if self._own is not None:
            self._own.close()
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:   # a block is still referenced: the map closes when it is dropped
                pass
            self._map = None

"""Hashing a file on a thread: before anyone asks for its digest, or beside the work that uses it.

``ollama-oci pack model.gguf`` spends most of its time in one sha256 pass over the GGUF. A fresh
process first spends ~45 ms loading the interpreter, click and the library; the console script
(:mod:`ollama_oci.console`) therefore starts hashing the GGUF files a ``pack`` names before it
loads the rest, and staging (:func:`ollama_oci.fsutil.stage_file`) takes the result when it links
that same file into a store. ``ollama-oci export`` likewise starts on the blobs of the models it
names (:func:`ollama_oci.console.export_blobs`).

An export verifies every blob it bundles, but the hash is not on its critical path: the compressor
is. :class:`~ollama_oci.copyhash.HashedReader` therefore hands a store blob's bytes to the
compressor straight from a memory map while a *background* job (:func:`beside`, or the one the
console script started) hashes the same file at the lowest CPU priority: it runs where the
compressor leaves a core idle (start-up, the gaps between its jobs, the final drain and fsync), not
in its place, and the bundle gets its name only once every job has matched
(docs/benchmarks.md has what it saved).

A result is used only for the file it was computed from: the key is the file's device, inode, size
and modification time, read before the hash and again after it, and the linked (or mapped) file must
still have the same key when the result is taken (a hard link shares the inode). Anything else
(another file, a file changed meanwhile, a copy into another filesystem, a split set that is merged)
finds no result, or cancels the job, and hashes as before. Standard library only: this module is
loaded before everything else.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:    # not loaded at run time: this module starts work before typing is loaded
    from typing import Callable, Optional

#: 8 MiB a read: while the main thread loads modules it holds the GIL, and this thread waits up to a
#: switch interval for it between reads; larger reads wait less often (measured with the console
#: script on the Gemma: 1.42x of a hashing process with 1 MiB, 1.27x with 8 MiB, 1.43x without)
CHUNK = 8 << 20
#: (mapped) the pages of this many bytes, once used, leave the mapping at once: one ``madvise`` per
#: 1 MiB block cost ~40 ms on the Gemma's 253 MB (each one interrupts the other core to flush its TLB
#: while zstd's workers run there); one per 32 MiB costs nothing measurable
DROP_EVERY = 32 << 20
#: a store blob smaller than this is hashed where it is read (a thread of its own would cost more)
MIN_SIZE = 1 << 20

_lock = threading.Lock()
_jobs: dict[tuple, "HashJob"] = {}


def _key(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _lower_priority() -> None:
    """This thread, not the process, to the lowest CPU priority (nice 19): on Linux a thread is a
    task of its own (setpriority(2) with its thread id). Nowhere else: elsewhere that id could name
    another process."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


class HashJob:
    """The sha256 of one file, computed on a daemon thread (:func:`start`, :func:`beside`)."""

    def __init__(self, key: tuple):
        self.key = key
        self.done = 0
        self.digest: Optional[str] = None
        self.cancelled = False
        self.finished = threading.Event()

    def run(self, path: str, mapped: bool, background: bool) -> None:
        if background:
            _lower_priority()
        try:
            h = hashlib.sha256()
            with open(path, "rb", buffering=0) as f:
                if _key(os.fstat(f.fileno())) != self.key:
                    return
                if mapped and self.key[2] and hasattr(mmap, "MADV_DONTNEED"):
                    self._hash_mapped(f, h)
                else:
                    buf = bytearray(CHUNK)
                    view = memoryview(buf)
                    while not self.cancelled:
                        n = f.readinto(view)
                        if not n:
                            break
                        h.update(view[:n])
                        self.done += n
                if not self.cancelled and self.done == self.key[2] and _key(os.fstat(f.fileno())) == self.key:
                    self.digest = "sha256:" + h.hexdigest()
        except (OSError, ValueError):   # ValueError: a map of a file shorter than its key said
            pass                          # whoever asks hashes the file itself, and meets the error
        finally:
            self.finished.set()

    def _hash_mapped(self, f, h) -> None:
        """Hash through a read-only map: no copy of the page cache (a store blob is never truncated in
        place, which a map relies on; a user's GGUF is read instead)."""
        m = mmap.mmap(f.fileno(), self.key[2], access=mmap.ACCESS_READ)
        views = mapped_views(m, self.key[2], CHUNK)
        try:
            m.madvise(mmap.MADV_SEQUENTIAL)
            for part in views:
                with part:        # released before the map is closed
                    if self.cancelled:
                        break
                    h.update(part)
                    self.done += len(part)
        finally:
            views.close()
            m.close()

    def cancel(self) -> None:
        """Stop hashing (the result is not wanted)."""
        self.cancelled = True

    def wait(self, progress: Optional[Callable[[int], None]] = None) -> Optional[tuple[str, int]]:
        """(digest, size) once the job ends (telling ``progress`` the bytes as they are hashed); None
        if its file changed or it was cancelled."""
        told = 0
        while not self.finished.wait(0.05):
            if progress is not None and self.done > told:
                progress(self.done - told)
                told = self.done
        if self.digest is None:
            return None
        if progress is not None and self.done > told:
            progress(self.done - told)
        return self.digest, self.done


def mapped_views(m: mmap.mmap, end: int, block: int):
    """Views of ``m[:end]``, ``block`` bytes each, in order. The pages of the views the caller is done
    with (it asked for the next one) leave this process's mapping every ``DROP_EVERY`` bytes
    (``MADV_DONTNEED``; they stay in the page cache, and a view still held reads them back from
    there): the resident size stays bounded whatever the file's size (without it a 1 GiB export
    showed 1.1 GiB peak RSS)."""
    pos = dropped = 0
    with memoryview(m) as view:
        while pos < end:
            n = min(block, end - pos)
            yield view[pos:pos + n]
            pos += n
            if pos - dropped >= DROP_EVERY:
                m.madvise(mmap.MADV_DONTNEED, dropped, pos - dropped)
                dropped = pos


def _regular(path: str) -> Optional[os.stat_result]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _run(job: HashJob, path: str, mapped: bool, background: bool) -> HashJob:
    threading.Thread(target=job.run, args=(path, mapped, background), name="ollama-oci-hash",
                     daemon=True).start()
    return job


def start(path: str, *, mapped: bool = False, background: bool = False) -> bool:
    """Start hashing the regular file at ``path`` on a daemon thread, for whoever takes the result
    (:func:`take`, :func:`claim`); False if it is not one. ``mapped``: read it through a memory map
    (only for files never truncated in place: store blobs); ``background``: at the lowest CPU
    priority."""
    st = _regular(path)
    if st is None:
        return False
    key = _key(st)
    with _lock:
        if key in _jobs:
            return True
        job = _jobs[key] = HashJob(key)
    _run(job, path, mapped, background)
    return True


def beside(path: str, st: os.stat_result) -> HashJob:
    """A background job hashing the store blob at ``path`` through a map, now, for the caller: its
    result is for the file whose stat is ``st`` (the caller's open file) and nothing else."""
    return _run(HashJob(_key(st)), path, True, True)


def claim(st: os.stat_result) -> Optional[HashJob]:
    """The job hashing the file whose stat is ``st``, now the caller's (no one else takes or cancels
    it); None if there is none. Its :meth:`HashJob.wait` gives the result."""
    with _lock:
        return _jobs.pop(_key(st), None)


def take(st: os.stat_result, progress: Optional[Callable[[int], None]] = None) -> Optional[tuple[str, int]]:
    """The (digest, size) of the file whose stat is ``st`` if a job hashed it and it has not changed
    since; waits for a job still running (telling ``progress`` the bytes as they are hashed). None
    if there is no such job or its file changed: the caller hashes the file itself."""
    job = claim(st)
    return None if job is None else job.wait(progress)


def cancel(st: Optional[os.stat_result] = None) -> None:
    """Stop the job for the file whose stat is ``st`` (every job when None): its result will not be
    taken (the file is copied or merged instead), and the core it uses is wanted."""
    with _lock:
        jobs = list(_jobs.values()) if st is None else [j for j in [_jobs.get(_key(st))] if j is not None]
        for j in jobs:
            _jobs.pop(j.key, None)
            j.cancel()


def pending() -> int:
    """How many jobs are started and not yet taken or cancelled."""
    with _lock:
        return len(_jobs)

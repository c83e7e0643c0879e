"""Hashing a file before anyone asks for its digest.

``ollama-oci pack model.gguf`` spends most of its time in one sha256 pass over the GGUF. A fresh
process first spends ~45 ms loading the interpreter, click and the library; the console script
(:mod:`ollama_oci.console`) therefore starts hashing the GGUF files a ``pack`` names before it
loads the rest, and staging (:func:`ollama_oci.fsutil.stage_file`) takes the result when it links
that same file into a store.

A result is used only for the file it was computed from: the key is the file's device, inode, size
and modification time, read before the hash and again after it, and the linked file must still
have the same key when staging takes it (a hard link shares the inode). Anything else (another
file, a file changed meanwhile, a copy into another filesystem, a split set that is merged) finds
no result, or cancels the job, and hashes as before. Standard library only: this module is loaded
before everything else.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from typing import Callable, Optional

#: 8 MiB a read: while the main thread loads modules it holds the GIL, and this thread waits up to a
#: switch interval for it between reads; larger reads wait less often (measured with the console
#: script on the Gemma: 1.42x of a hashing process with 1 MiB, 1.27x with 8 MiB, 1.43x without)
CHUNK = 8 << 20

_lock = threading.Lock()
_jobs: dict[tuple, "_Job"] = {}


def _key(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Job:
    def __init__(self, key: tuple):
        self.key = key
        self.done = 0
        self.digest: Optional[str] = None
        self.cancelled = False
        self.finished = threading.Event()

    def run(self, path: str) -> None:
        try:
            h = hashlib.sha256()
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            with open(path, "rb", buffering=0) as f:
                if _key(os.fstat(f.fileno())) != self.key:
                    return
                while not self.cancelled:
                    n = f.readinto(view)
                    if not n:
                        break
                    h.update(view[:n])
                    self.done += n
                if not self.cancelled and self.done == self.key[2] and _key(os.fstat(f.fileno())) == self.key:
                    self.digest = "sha256:" + h.hexdigest()
        except OSError:
            pass                          # whoever asks hashes the file itself, and meets the error
        finally:
            self.finished.set()


def start(path: str) -> bool:
    """Start hashing the regular file at ``path`` on a daemon thread; False if it is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    key = _key(st)
    with _lock:
        if key in _jobs:
            return True
        job = _jobs[key] = _Job(key)
    threading.Thread(target=job.run, args=(path,), name="ollama-oci-prehash", daemon=True).start()
    return True


def take(st: os.stat_result, progress: Optional[Callable[[int], None]] = None) -> Optional[tuple[str, int]]:
    """The (digest, size) of the file whose stat is ``st`` if a job hashed it and it has not changed
    since; waits for a job still running (telling ``progress`` the bytes as they are hashed). None
    if there is no such job or its file changed: the caller hashes the file itself."""
    with _lock:
        job = _jobs.pop(_key(st), None)
    if job is None:
        return None
    told = 0
    while not job.finished.wait(0.05):
        if progress is not None and job.done > told:
            progress(job.done - told)
            told = job.done
    if job.digest is None:
        return None
    if progress is not None and job.done > told:
        progress(job.done - told)
    return job.digest, job.done


def cancel(st: Optional[os.stat_result] = None) -> None:
    """Stop the job for the file whose stat is ``st`` (every job when None): its result will not be
    taken (the file is copied or merged instead), and the core it uses is wanted."""
    with _lock:
        jobs = list(_jobs.values()) if st is None else [j for j in [_jobs.get(_key(st))] if j is not None]
        for j in jobs:
            _jobs.pop(j.key, None)
            j.cancelled = True


def pending() -> int:
    """How many jobs are started and not yet taken or cancelled."""
    with _lock:
        return len(_jobs)

"""Crash-safe file operations: temp file, fsync, rename; link, reflink or copy with hashing.

Nothing half-written ever carries a final name: content goes to a temp file in
the destination directory, is flushed with ``fsync``, renamed into place, and
the directory is synced so the rename itself survives a power cut.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .copyhash import Range, copy_pieces
from .digest import Digest, check, hash_stream
from .errors import InvalidInput, StoreError, VerificationError
from . import prehash

__all__ = ["unlink_quiet", "atomic_write", "fsync_dir", "ingest_file", "stage_file", "commit_staged", "discard_staged", "Staged",
           "LINK_MODES", "locked", "tmp_name", "WriteBehind"]

LINK_MODES = ("auto", "reflink", "hardlink", "copy")
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
TMP_PREFIX = ".tmp-ollama-oci-"


def tmp_name(directory: str) -> str:
    return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename still happened
        pass
    finally:
        os.close(fd)


class WriteBehind:
    """Makes a file being written durable as it grows, not all at the end.

    Call :meth:`wrote` after writes: every ``every`` bytes it starts an ``fdatasync`` on a thread
    (never two at once), so the kernel writes the file out while the program is still producing
    it, and the ``fsync`` that makes the whole file durable waits only for the last stretch (on the
    Gemma's 238 MB ``.tar.zst`` bundle: ~35 ms instead of ~95 ms; docs/benchmarks.md has what it did
    to import, export, copy and merge times). Call :meth:`close` before the file descriptor is
    closed.
    """

    def __init__(self, fd: int, every: int = 32 << 20):
        self.fd = fd
        self.every = every
        self._next = every
        self._thread: Optional[threading.Thread] = None

    def wrote(self, position: int) -> None:
        """The file is now ``position`` bytes long; start a flush if one is due and none is running."""
        if position < self._next or (self._thread is not None and self._thread.is_alive()):
            return
        self._next = position + self.every
        self._thread = threading.Thread(target=self._flush, name="ollama-oci-write-behind", daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        try:
            os.fdatasync(self.fd)
        except OSError:   # the caller's own fsync at the end reports a failing disk
            pass

    def close(self) -> None:
        """Wait for a flush in progress (the descriptor must not be closed under it)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _io_error(what: str, path: str, e: OSError) -> StoreError:
    hint = ""
    if e.errno == errno.ENOSPC:
        hint = "; free some disk space and run again (finished blobs are kept)"
    elif e.errno in (errno.EACCES, errno.EPERM):
        hint = "; check the permissions of the store directory"
    elif e.errno == errno.EROFS:
        hint = "; the store is on a read-only filesystem"
    return StoreError(f"cannot {what} {path}: {e.strerror or e}{hint}")


def write_all(fd: int, data) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may take less than it is given)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path: str, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    ``durable=False`` skips the fsyncs: the file survives the process being killed (it is in the
    page cache), not an operating-system crash; for progress notes written often."""
    d = os.path.dirname(path) or "."
    tmp = tmp_name(d)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, data)
            os.fchmod(fd, mode & ~_umask())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        unlink_quiet(tmp)
        raise _io_error("write", path, e) from None
    if durable:
        fsync_dir(d)


_UMASK = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        m = os.umask(0o022)
        os.umask(m)
        _UMASK = m
    return _UMASK


def unlink_quiet(path: str) -> None:
    """Remove a file; a file that is already gone is fine."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _try_reflink(src: str, dst: str) -> bool:
    try:
        sfd = os.open(src, os.O_RDONLY)
    except OSError:
        return False
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        os.close(sfd)
        return False
    try:
        fcntl.ioctl(dfd, _FICLONE, sfd)
        os.fsync(dfd)
        return True
    except OSError:
        os.close(dfd)
        dfd = -1
        unlink_quiet(dst)
        return False
    finally:
        os.close(sfd)
        if dfd >= 0:
            os.close(dfd)


@dataclass
class Staged:
    """A file linked, cloned or copied into a store's temp area and hashed, not yet visible."""

    tmp: str
    digest: Digest
    size: int
    method: str
    #: a shared flock held on the temp file until it is committed or discarded: ``prune`` leaves
    #: a locked leftover alone (a hard link keeps its source's old mtime, so age cannot tell)
    lock_fd: int = -1

    def release(self) -> None:
        if self.lock_fd >= 0:
            try:
                os.close(self.lock_fd)
            except OSError:
                pass
            self.lock_fd = -1


def ensure_room(directory: str, need: int, what: str) -> None:
    """Refuse to write ``need`` bytes into ``directory`` when its filesystem has less free, before
    anything is allocated (a full disk, or a hostile size such as 2**62)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise StoreError(f"{what} needs {need:,} bytes and {directory} has {free:,} free; free some space "
                         "(ollama-oci prune) or write elsewhere (--models-dir, OLLAMA_MODELS)")


def hold(path: str) -> int:
    """Open ``path`` (never through a symlink) and hold a shared flock on it; returns the fd."""
    import fcntl
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def in_use(path: str) -> bool:
    """Whether another process (or thread) holds a flock on ``path``: work in progress."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def stage_file(src: str, tmp_dir: str, *, link_mode: str = "auto",
               progress: Optional[Callable[[int, int], None]] = None,
               known: Optional[tuple[Digest, int]] = None) -> Staged:
    """Bring ``src`` into ``tmp_dir`` under a temp name and hash it, reading it once.

    ``link_mode``: ``reflink`` (copy-on-write clone), ``hardlink``, ``copy``, or
    ``auto`` (the first of those that works here).  A clone or link is hashed
    where it lies; a copy is hashed while it is written.

    ``known`` = (digest, size) says ``src`` is itself a verified, immutable blob
    (one store's copy going into another): a link or clone of it is then not
    hashed again, and a copy is checked against it in the same pass.
    Nothing carries a final name until :func:`commit_staged`.
    """
    if link_mode not in LINK_MODES:
        raise InvalidInput(f"link mode {link_mode!r} is not one of {', '.join(LINK_MODES)}")
    try:
        total = os.stat(src).st_size
    except FileNotFoundError:
        from .errors import NotFound
        raise NotFound(f"{src}: no such file") from None
    except OSError as e:
        raise _io_error("read", src, e) from None
    os.makedirs(tmp_dir, exist_ok=True)
    tmp = tmp_name(tmp_dir)
    method = None
    done = 0
    lock = -1
    behind: Optional[WriteBehind] = None   # a copy goes to disk as it is written

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if behind is not None:
            behind.wrote(done)
        if progress is not None:
            progress(done, total)

    try:
        if link_mode in ("auto", "reflink") and _try_reflink(src, tmp):
            method = "reflink"
        elif link_mode in ("auto", "hardlink"):
            try:
                os.link(src, tmp)
                method = "hardlink"
            except OSError as e:
                if link_mode == "hardlink":
                    raise StoreError(f"cannot hard-link {src} into the store: {e.strerror}; "
                                     "use --link-mode copy (or auto)") from None
        elif link_mode == "reflink":
            raise StoreError(f"cannot reflink {src} into the store: the filesystem does not support "
                             "it; use --link-mode auto or copy")
        if method is not None:
            lock = hold(tmp)  # before the (long) hash: a hard link's mtime is its source's
        if method is not None and known is not None:
            digest, size = known
            if os.path.getsize(tmp) != size:
                raise VerificationError(f"{src} has {os.path.getsize(tmp)} bytes, expected {size}",
                                        expected=digest)
            if progress is not None:
                progress(size, size)
        elif method is not None:
            with open(tmp, "rb", buffering=0) as f:
                # hashed already, if the console script started on this very file (prehash.py)
                pre = prehash.take(os.fstat(f.fileno()), progress=tick) if prehash.pending() else None
                if pre is not None:
                    digest, size = Digest(pre[0]), pre[1]
                else:
                    done = 0    # a hash started ahead whose file changed may have reported some already
                    digest, size = hash_stream(f, progress=tick)
                if method == "hardlink":
                    os.fsync(f.fileno())
        else:
            method = "copy"
            if prehash.pending():
                prehash.cancel(os.stat(src))   # copied and hashed behind the writer instead
            ensure_room(tmp_dir, total, src)
            with open(src, "rb", buffering=0) as fin:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                lock = hold(tmp)
                behind = WriteBehind(fd)
                try:
                    # the kernel copies, this thread hashes what was written (copyhash.py)
                    digest, size = copy_pieces(fd, [Range(fin.fileno(), 0, total, src)], progress=tick)
                    behind.close()
                    os.fsync(fd)
                finally:
                    behind.close()
                    os.close(fd)
            if known is not None:
                check(known[0], digest, expected_size=known[1], actual_size=size, what=src)
        return Staged(tmp, digest, size, method, lock)
    except OSError as e:
        unlink_quiet(tmp)
        _close_quiet(lock)
        raise _io_error("store", src, e) from None
    except BaseException:
        unlink_quiet(tmp)
        _close_quiet(lock)
        raise


def _close_quiet(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def commit_staged(st: Staged, final: str) -> None:
    """Give a staged file its final name (or drop it if an identical blob is already there)."""
    try:
        try:
            fst = os.stat(final)
            exists = fst.st_size == st.size
        except FileNotFoundError:
            exists = False
        if exists:
            unlink_quiet(st.tmp)
            # ollama "touches" reused layers so its pruner's grace period applies; a blob that is
            # a hard link of someone's file (the user's GGUF) is left alone: its mtime is theirs
            if fst.st_nlink == 1:
                os.utime(final)
        else:
            if st.method != "hardlink":  # never chmod the user's own file through a link
                os.chmod(st.tmp, 0o644 & ~_umask())
            os.replace(st.tmp, final)
            fsync_dir(os.path.dirname(final))
    except OSError as e:
        unlink_quiet(st.tmp)
        raise _io_error("store", final, e) from None
    finally:
        st.release()


def discard_staged(st: Staged) -> None:
    unlink_quiet(st.tmp)
    st.release()


def ingest_file(src: str, tmp_dir: str, final_path: Callable[[Digest], str], *, link_mode: str = "auto",
                progress: Optional[Callable[[int, int], None]] = None,
                known: Optional[tuple[Digest, int]] = None) -> tuple[Digest, int, str]:
    """:func:`stage_file` then :func:`commit_staged`: returns (digest, size, method used)."""
    st = stage_file(src, tmp_dir, link_mode=link_mode, progress=progress, known=known)
    commit_staged(st, final_path(st.digest))
    return st.digest, st.size, st.method


def write_blob_bytes(data: bytes, final: str) -> None:
    """Store a small blob whose name is already known (its digest was computed by the caller)."""
    try:
        if os.path.getsize(final) == len(data):
            os.utime(final)
            return
    except OSError:
        pass
    os.makedirs(os.path.dirname(final), exist_ok=True)
    atomic_write(final, data)


@contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive advisory lock on a directory (flock), for read-modify-write of an index."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

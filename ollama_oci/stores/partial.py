"""Resumable, verified writes of a blob that arrives as a stream (a download), for local stores.

The blob is written into ``.partial-<hex>`` in the store's temp area, in parallel byte ranges
when it is large and the source serves ranges, each range's progress made durable (fdatasync,
then an atomic state file) every few MiB, so a killed pull resumes where it stopped. A per-blob
``flock`` keeps two pulls of the same blob from interleaving. Once complete, the whole file is
hashed; only a file whose digest and size match is renamed to its final name. The partial file is
opened with ``O_NOFOLLOW``: a symlink planted in the store's temp area is refused, never followed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..digest import CHUNK, hash_stream
from ..errors import RegistryError, StoreError, VerificationError
from ..fsutil import atomic_write, ensure_room, fsync_dir, unlink_quiet
from ..spec import Descriptor
from .contract import BlobSource, ProgressFn, RangeNotSupported

log = logging.getLogger("ollama_oci")

__all__ = ["receive", "PARALLEL_MIN", "PART_SIZE", "STATE_EVERY"]

#: blobs at least this large are fetched in parallel byte ranges
PARALLEL_MIN = 32 << 20
#: size of one download part (the last one is shorter)
PART_SIZE = 64 << 20
#: how often (bytes) a part's progress is noted (survives the process being killed: a re-run loses
#: at most this much per part, however soon the kill)
STATE_EVERY = 2 << 20
#: how often (bytes) the data and the note are made durable (fdatasync: survives a machine crash)
DURABLE_EVERY = 64 << 20
#: how many temporary failures (all parts together) a blob survives before it fails
BLOB_TRIES = 8
#: a transfer that moves less than STALL_BYTES in STALL_SECONDS is stalled: dropped and resumed
STALL_SECONDS = 30.0
STALL_BYTES = 64 << 10


@dataclass
class _Part:
    start: int
    end: int          # exclusive
    done: int = 0

    @property
    def complete(self) -> bool:
        return self.start + self.done >= self.end


def receive(tmp_dir: str, final: str, desc: Descriptor, source: BlobSource, *, progress: ProgressFn = None,
            present: Callable[[], bool]) -> bool:
    """Fetch ``desc`` from ``source`` into ``final``, resumably; False if ``present()`` found it there
    meanwhile (another process fetched it), True if this call wrote it."""
    os.makedirs(tmp_dir, exist_ok=True)
    data_path = os.path.join(tmp_dir, f".partial-{desc.digest.hex}")
    state_path = data_path + ".json"
    lock_path = data_path + ".lock"
    lock_fd = _open_nofollow(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # another pull of the same blob finishes first
        if present():
            return False
        _fetch(desc, source, data_path, state_path, progress)
        os.replace(data_path, final)
        fsync_dir(os.path.dirname(final))
        # the lock goes only after success: whoever waits on it now finds the blob in place
        unlink_quiet(state_path)
        unlink_quiet(lock_path)
        return True
    finally:
        os.close(lock_fd)


def _open_nofollow(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:  # a symlink where our own file should be
            raise StoreError(f"refusing to write through the symlink {path}: something other than "
                             "ollama-oci put it there; remove it") from None
        raise


def _fetch(desc: Descriptor, source: BlobSource, data_path: str, state_path: str, progress: ProgressFn,
           *, again: bool = False) -> None:
    size = desc.size
    parts = _load_state(state_path, desc)
    resumed = parts is not None and any(p.done for p in parts)
    ensure_room(os.path.dirname(data_path), size - (sum(p.done for p in parts) if parts else 0),
                f"blob {desc.digest}")
    fd = _open_nofollow(data_path, os.O_RDWR | os.O_CREAT)
    note = {"fd": -1, "len": 0}  # the progress note, rewritten in place (see save)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # work in progress: prune leaves it alone
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

        durable_at = [sum(p.done for p in parts)]

        def save(durable: bool = False) -> None:
            """Note the parts' progress: one ``pwrite`` over the note (a process killed mid-way has
            either the old note or the new one; a shorter note is padded with spaces, which JSON
            ignores). Every DURABLE_EVERY bytes the data and the note are also fsynced: a machine
            crash may otherwise leave the note ahead of the data, which the final hash catches
            (the blob then starts over once)."""
            with state_lock:
                done = sum(p.done for p in parts)
                durable = durable or done - durable_at[0] >= DURABLE_EVERY
                data = json.dumps({"digest": str(desc.digest), "size": size, "parts": [
                    [p.start, p.end, p.done] for p in parts]}).encode()
                if note["fd"] < 0:  # the first note: created whole, then rewritten in place
                    atomic_write(state_path, data)
                    note["fd"] = _open_nofollow(state_path, os.O_WRONLY)
                    note["len"] = len(data)
                    durable_at[0] = done
                    return
                data = data.ljust(note["len"])
                os.pwrite(note["fd"], data, 0)
                note["len"] = len(data)
                if durable:
                    os.fdatasync(fd)
                    os.fdatasync(note["fd"])
                    durable_at[0] = done
        save(durable=True)

        failures = [0]  # temporary failures of all parts together: the blob gives up in bounded time
        flock = threading.Lock()
        kick: list = [None]   # _run_parts' spawn: a slot freed while a part streams is taken up at once

        def tick(n: int) -> None:
            if progress is not None:
                progress(n)
            spawn = kick[0]      # read once: the calling thread clears it when the parts are all taken
            if spawn is not None:
                spawn()

        def fetch_part(p: _Part, opened: Optional[threading.Event] = None) -> None:
            while not p.complete:
                pos = p.start + p.done
                try:
                    _fetch_range(desc, source, fd, p, pos, tick, save, opened)
                    opened = None
                except RangeNotSupported:
                    if len(parts) > 1 or pos == 0:
                        raise  # the caller falls back to one stream from the start
                    # one stream from a server that ignores ranges, interrupted: start it over
                    if progress is not None:
                        progress(-p.done)
                    p.done = 0
                    with flock:
                        failures[0] += 1
                        if failures[0] > BLOB_TRIES:
                            raise RegistryError(f"the transfer of {desc.digest} keeps failing, and "
                                                f"{source.store.describe()} cannot resume it (it ignores byte "
                                                "ranges)", temporary=True) from None
                except Exception as e:
                    if not getattr(e, "temporary", False):
                        raise
                    with flock:
                        failures[0] += 1
                        if failures[0] > BLOB_TRIES:
                            raise
                    log.warning("blob %s at byte %d: %s; resuming", desc.digest.short, pos, e)

        try:
            _run_parts([p for p in parts if not p.complete], fetch_part, source, kick)
        except RangeNotSupported:
            # the source ignores byte ranges: one sequential stream from the start instead
            log.info("%s ignores byte ranges; fetching %s in one stream", source.store.describe(), desc.digest.short)
            if progress is not None:
                progress(-sum(p.done for p in parts))
            parts[:] = [_Part(0, size)]
            save()
            fetch_part(parts[0])
        save(durable=True)
        os.fchmod(fd, 0o644)  # on the file opened with O_NOFOLLOW, never through a path
        os.lseek(fd, 0, os.SEEK_SET)
        with open(fd, "rb", buffering=0, closefd=False) as f:
            got, n = hash_stream(f)
    finally:
        os.close(fd)
        if note["fd"] >= 0:
            os.close(note["fd"])
    if got != desc.digest or n != size:
        unlink_quiet(data_path)
        unlink_quiet(state_path)
        if resumed and not again:
            # the resumed part may not have been durable (a machine crash after the note): once more,
            # from nothing, before the source is blamed
            log.warning("blob %s did not verify after resuming; fetching it again from the start", desc.digest.short)
            if progress is not None:
                progress(-size)
            return _fetch(desc, source, data_path, state_path, progress, again=True)
        raise VerificationError(f"digest mismatch for blob {desc.digest} from {source.store.describe()}: the "
                                f"content ({n} bytes) hashes to {got}; the source's copy is damaged, nothing "
                                "was installed", expected=desc.digest, actual=got)


def _run_parts(todo: list[_Part], fetch_part: Callable[..., None], source: BlobSource,
               kick: Optional[list] = None) -> None:
    """Fetch the parts: the calling thread works through them, and helper threads join whenever the
    copy's budget has a free slot (one budget for blobs and parts together; a slot another blob frees
    later is taken up as the parts stream: ``kick[0]`` is set to the check, which the parts' progress
    calls). Helpers start once the first part's stream is open, so a redirect to object storage is
    learnt before they ask."""
    if not todo:
        return
    queue = list(todo[1:])
    qlock = threading.Lock()
    errors: list[BaseException] = []
    opened = threading.Event()
    helpers: list[threading.Thread] = []
    idle = [0]      # helpers started that have not taken a part yet
    budget = source.budget

    def spawn() -> None:
        """Start helpers while slots are free and parts wait with no helper coming for them (called
        before each part, and as parts stream)."""
        while budget is not None:
            with qlock:
                if len(queue) - idle[0] <= 0 or errors:
                    return
            if not budget.try_acquire():
                return
            t = threading.Thread(target=helper, name="ollama-oci-part", daemon=True)
            with qlock:
                helpers.append(t)
                idle[0] += 1
            t.start()

    def work(is_helper: bool = False) -> None:
        first = is_helper
        while True:
            spawn()
            with qlock:
                if first:      # this helper is no longer on its way to a part: it takes one now, or none
                    idle[0] -= 1
                    first = False
                if not queue or errors:
                    return
                p = queue.pop(0)
            try:
                fetch_part(p, None)
            except BaseException as e:  # handed to the calling thread
                with qlock:
                    errors.append(e)
                return

    def helper() -> None:
        try:
            opened.wait()
            work(is_helper=True)
        finally:
            budget.release()

    def kick_spawn() -> None:
        if opened.is_set():
            spawn()

    if kick is not None:
        kick[0] = kick_spawn
    spawn()
    try:
        fetch_part(todo[0], opened)
    except BaseException as e:
        with qlock:
            errors.append(e)
    finally:
        opened.set()
    work()
    if kick is not None:
        kick[0] = None
    while True:
        with qlock:
            alive = [t for t in helpers if t.is_alive()]
        if not alive:
            break
        for t in alive:
            t.join()
    if errors:
        raise errors[0]


def _fetch_range(desc: Descriptor, source: BlobSource, fd: int, part: _Part, pos: int, progress: ProgressFn,
                 save: Callable[[], None], opened: Optional[threading.Event] = None) -> None:
    whole = pos == 0 and part.end == desc.size
    try:
        stream = source.open(pos, None if whole else part.end - pos)
    finally:
        if opened is not None:
            opened.set()
    since = 0
    window_start, window_bytes = time.monotonic(), 0
    try:
        while not part.complete:
            chunk = stream.read(min(CHUNK, part.end - (part.start + part.done)))
            if not chunk:
                break
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= STALL_SECONDS:
                if window_bytes < STALL_BYTES:  # a trickle (a byte every few seconds) is a stall too
                    raise RegistryError(f"the transfer of {desc.digest} stalled ({window_bytes} bytes in "
                                        f"{now - window_start:.0f} s)", temporary=True)
                window_start, window_bytes = now, 0
            os.pwrite(fd, chunk, part.start + part.done)
            part.done += len(chunk)
            since += len(chunk)
            if progress is not None:
                progress(len(chunk))   # may raise Cancelled: the state is saved below all the same
            if since >= STATE_EVERY:
                save()
                since = 0
    finally:
        stream.close()
        save()
    if not part.complete:
        raise RegistryError(f"the transfer of {desc.digest} ended early at byte {part.start + part.done}",
                            temporary=True)


def _load_state(state_path: str, desc: Descriptor) -> Optional[list[_Part]]:
    try:
        fd = _open_nofollow(state_path, os.O_RDONLY)
    except (FileNotFoundError, StoreError):
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            st = json.loads(f.read(1 << 20))
    except (ValueError, RecursionError):
        return None
    try:
        if st.get("digest") != str(desc.digest) or st.get("size") != desc.size:
            return None
        parts = [_Part(int(a), int(b), int(c)) for a, b, c in st["parts"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    pos = 0
    for p in parts:  # must tile [0, size) with sane progress
        if p.start != pos or p.end < p.start or not 0 <= p.done <= p.end - p.start:
            return None
        pos = p.end
    return parts if pos == desc.size else None

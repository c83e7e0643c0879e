"""copyhash: one file assembled from literal bytes and ranges of others, hashed as written."""

from __future__ import annotations

import errno
import hashlib
import os
import sys

import pytest

from ollama_oci.copyhash import Range, ShortSource, copy_pieces


def _files(tmp_path):
    a, b = os.urandom(3 << 20), os.urandom((9 << 20) + 123)
    (tmp_path / "a").write_bytes(a)
    (tmp_path / "b").write_bytes(b)
    return a, b


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "pread-pwrite"])
def test_pieces_land_in_order_and_the_digest_is_of_the_written_file(tmp_path, monkeypatch, kernel):
    a, b = _files(tmp_path)
    if not kernel:   # another filesystem, or a kernel without it: the writer falls back to pread/pwrite
        def refuse(*_a, **_k):
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    fa, fb = os.open(tmp_path / "a", os.O_RDONLY), os.open(tmp_path / "b", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    seen = []
    try:
        digest, size = copy_pieces(out, [b"head", Range(fb, 5, len(b) - 5, "b"), b"", b"\0" * 7,
                                        Range(fa, 0, len(a), "a")], progress=seen.append)
    finally:
        for fd in (fa, fb, out):
            os.close(fd)
    want = b"head" + b[5:] + b"\0" * 7 + a
    assert (tmp_path / "out").read_bytes() == want
    assert size == len(want) and digest.hex == hashlib.sha256(want).hexdigest() and sum(seen) == len(want)


def test_a_source_that_ends_early_is_an_error_and_a_writer_error_reaches_the_caller(tmp_path, monkeypatch):
    a, _ = _files(tmp_path)
    fa = os.open(tmp_path / "a", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ShortSource) as ei:
            copy_pieces(out, [Range(fa, 0, len(a) + 10, "a-file")])
        assert "a-file" in str(ei.value)

        def broken(*_a, **_k):
            raise OSError(errno.EIO, "disk error")
        monkeypatch.setattr(os, "copy_file_range", broken)
        with pytest.raises(OSError) as ei:
            copy_pieces(out, [Range(fa, 0, len(a), "a")])
        assert ei.value.errno == errno.EIO
    finally:
        os.close(fa)
        os.close(out)


def test_a_failing_progress_callback_stops_the_writer(tmp_path):
    """Cancelling (a progress callback that raises, as pack's does) stops the copy thread too."""
    a, _ = _files(tmp_path)
    fa = os.open(tmp_path / "a", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)

    class Stop(Exception):
        pass

    def cancel(_n):
        raise Stop()
    try:
        with pytest.raises(Stop):
            copy_pieces(out, [Range(fa, 0, len(a), "a")] * 50, progress=cancel)
    finally:
        os.close(fa)
        os.close(out)
    import threading
    assert not [t for t in threading.enumerate() if t.name == "ollama-oci-copy" and t.is_alive()]
    assert os.path.getsize(tmp_path / "out") < 50 * len(a)


def test_a_stream_is_written_and_hashed_in_one_pass(tmp_path):
    import hashlib

    from ollama_oci.copyhash import write_stream
    blocks = [os.urandom(n) for n in (1 << 20, 5, 3 << 19, 0, 77)]
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        seen = []
        d, n = write_stream(fd, iter(blocks), progress=seen.append)
    finally:
        os.close(fd)
    data = b"".join(blocks)
    assert (tmp_path / "out").read_bytes() == data
    assert d == "sha256:" + hashlib.sha256(data).hexdigest() and n == len(data) == sum(seen)


def test_a_stream_that_fails_midway_raises_its_error_and_stops(tmp_path):
    from ollama_oci.copyhash import write_stream

    def blocks():
        for _ in range(20):           # more than the queue holds: the writer must not hang
            yield b"x" * 1024
        raise ValueError("zstd data is damaged")
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match="damaged"):
            write_stream(fd, blocks())
    finally:
        os.close(fd)
    ro = os.open(tmp_path / "out", os.O_RDONLY)      # a write that fails: its error, not a hang
    try:
        with pytest.raises(OSError):
            write_stream(ro, iter([b"y" * 4096] * 50))
    finally:
        os.close(ro)


def test_a_blob_is_read_and_hashed_on_a_thread_in_order(tmp_path):
    import hashlib

    from ollama_oci.copyhash import HashedReader
    data = os.urandom((5 << 20) + 333)
    (tmp_path / "blob").write_bytes(data + b"tail not asked for")
    with open(tmp_path / "blob", "rb") as f, HashedReader(f, len(data), block=1 << 20, depth=2) as r:
        got = b"".join(r)
        digest = r.hexdigest()
    assert got == data and digest == hashlib.sha256(data).hexdigest() and not r.short
    # a file shorter than said: the blocks that are there, then `short`
    with open(tmp_path / "blob", "rb") as f, HashedReader(f, len(data) + 100) as r:
        assert len(b"".join(r)) == len(data) + len(b"tail not asked for") and r.short


def test_a_hashed_read_that_fails_or_is_left_early_stops_its_thread(tmp_path):
    import threading

    from ollama_oci.copyhash import HashedReader

    class Failing:
        def __init__(self):
            self.n = 0

        def read(self, n):
            self.n += 1
            if self.n > 6:
                raise OSError(errno.EIO, "Input/output error")
            return b"x" * n
    with pytest.raises(OSError, match="Input/output"), HashedReader(Failing(), 1 << 30, block=4096, depth=2) as r:
        for _ in r:
            pass
    # the consumer stops after one block (its write failed): the reader, blocked on a full queue, ends
    src = Failing()
    src.n = -10**9
    with pytest.raises(RuntimeError, match="disk full"), HashedReader(src, 1 << 30, block=4096, depth=2) as r:
        for _ in r:
            raise RuntimeError("disk full")
    assert not any(t.name == "ollama-oci-read-hash" for t in threading.enumerate())


def test_a_mapped_hashed_read_gives_the_same_blocks_and_notices_a_short_file(tmp_path):
    import hashlib

    from ollama_oci.copyhash import HashedReader
    data = os.urandom((3 << 20) + 77)
    (tmp_path / "blob").write_bytes(data)
    with HashedReader.mapped(str(tmp_path / "blob"), len(data), block=1 << 20) as r:
        got = b"".join(bytes(b) for b in r)
    assert got == data and r.hexdigest() == hashlib.sha256(data).hexdigest() and not r.short
    with HashedReader.mapped(str(tmp_path / "blob"), len(data) + 1) as r:
        assert sum(len(b) for b in r) == len(data) and r.short
    (tmp_path / "empty").write_bytes(b"")
    with HashedReader.mapped(str(tmp_path / "empty"), 0) as r:
        assert list(r) == [] and r.hexdigest() == hashlib.sha256(b"").hexdigest() and not r.short
    with HashedReader.mapped(str(tmp_path / "empty"), 5) as r:
        assert list(r) == [] and r.short


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RssFile from /proc")
def test_a_mapped_hashed_read_keeps_few_pages_resident(tmp_path):
    """Memory stays flat: the pages of blocks the caller is done with leave the mapping (they stay in
    the page cache). Without that, mapping a 160 MiB blob left 160 MiB resident (a 1 GiB export
    showed 1.1 GiB peak RSS)."""
    from ollama_oci.copyhash import HashedReader

    def rss_file() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssFile:")) << 10
    size = 160 << 20
    with open(tmp_path / "blob", "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    before, peak = rss_file(), 0
    with HashedReader.mapped(str(tmp_path / "blob"), size, block=1 << 20, depth=2) as r:
        for b in r:
            bytes(b[:1])
            peak = max(peak, rss_file() - before)
    # DROP_EVERY (32 MiB) and the blocks in flight, for the reader's map and for the map of the job
    # that hashes the file beside it
    assert peak < 80 << 20, peak


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_mapped_read_of_a_big_blob_is_hashed_by_a_job_beside_it(tmp_path):
    """From 1 MiB on, the blocks are handed over without hashing them, and a background job hashes
    the file: the caller waits for it (hexdigest), or takes it to check later (detach)."""
    from ollama_oci.copyhash import HashedReader
    from ollama_oci import prehash
    data = os.urandom(prehash.MIN_SIZE + 4097)
    (tmp_path / "blob").write_bytes(data)
    with HashedReader.mapped(str(tmp_path / "blob"), len(data), block=1 << 16) as r:
        assert r.job is not None
        got = b"".join(bytes(b) for b in r)
        job = r.detach()
    assert got == data and job.wait() == ("sha256:" + _sha(data), len(data))
    with HashedReader.mapped(str(tmp_path / "blob"), len(data)) as r:
        for _ in r:
            pass
    assert r.hexdigest() == _sha(data)
    small = os.urandom(1000)
    (tmp_path / "small").write_bytes(small)
    with HashedReader.mapped(str(tmp_path / "small"), len(small)) as r:
        assert r.job is None and b"".join(bytes(b) for b in r) == small
        assert r.hexdigest() == _sha(small)


def test_a_hash_started_ahead_is_taken_only_for_the_same_unchanged_file(tmp_path):
    """The console script's job is for the file as it was when it started: once the file has
    changed (same size, other bytes, a later mtime), the reader hashes what it maps now."""
    import time

    from ollama_oci import prehash
    from ollama_oci.copyhash import HashedReader
    data = bytearray(os.urandom(2 << 20))
    path = tmp_path / "blob"
    path.write_bytes(data)
    try:
        assert prehash.start(str(path), mapped=True, background=True)
        ahead = next(iter(prehash._jobs.values()))
        assert ahead.finished.wait(10) and ahead.digest == "sha256:" + _sha(bytes(data))
        time.sleep(0.01)
        data[12345] ^= 0xFF
        with open(path, "r+b") as f:
            f.seek(12345)
            f.write(data[12345:12346])
        with HashedReader.mapped(str(path), len(data)) as r:
            assert r.job is not None and r.job is not ahead
            for _ in r:
                pass
        assert r.hexdigest() == _sha(bytes(data))
        # unchanged, it is taken: the reader starts no job of its own
        path2 = tmp_path / "blob2"
        path2.write_bytes(data)
        assert prehash.start(str(path2), mapped=True, background=True)
        ahead = prehash._jobs[prehash._key(os.stat(path2))]
        with HashedReader.mapped(str(path2), len(data)) as r:
            assert r.job is ahead
            for _ in r:
                pass
        assert r.hexdigest() == _sha(bytes(data)) and ahead not in prehash._jobs.values()
    finally:
        prehash.cancel()


def test_a_job_that_cannot_vouch_for_the_file_is_not_trusted(tmp_path, monkeypatch):
    """A job whose file changed or failed to read gives no digest: the reader hashes its map instead,
    and a bundle that took the job to check later refuses to give itself a name."""
    from ollama_oci import OllamaStore, Recipe, pack, parse_name, prehash
    from ollama_oci.bundle import export_bundle
    from ollama_oci.copyhash import HashedReader
    from ollama_oci.errors import VerificationError

    def failed(path, st):
        job = prehash.HashJob(prehash._key(st))
        job.finished.set()
        return job
    monkeypatch.setattr(prehash, "beside", failed)
    data = os.urandom(2 << 20)
    (tmp_path / "blob").write_bytes(data)
    with HashedReader.mapped(str(tmp_path / "blob"), len(data)) as r:
        for _ in r:
            pass
        assert r.hexdigest() == _sha(data)

    from gguf_factory import make_big_gguf
    make_big_gguf(str(tmp_path / "big.gguf"), 2 << 20)
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[str(tmp_path / "big.gguf")]), "big:1", [store])
    for out in ("x.tar", "x.tar.zst"):
        with pytest.raises(VerificationError, match="changed or could not be read"):
            export_bundle(store, [parse_name("big:1")], str(tmp_path / out))
        assert not (tmp_path / out).exists()
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_a_background_job_lowers_the_priority_of_its_own_thread_only():
    import threading

    from ollama_oci import prehash
    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen = []

    def probe():
        prehash._lower_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen == [19] and os.getpriority(os.PRIO_PROCESS, 0) == before


def test_a_mapped_read_does_not_run_far_ahead_of_its_hash(tmp_path, monkeypatch):
    """The caller is held while the job hashing the file is more than LAG_MAX behind, so the pages the
    job has yet to read are still in the page cache when it gets there (the file is read once)."""
    import threading
    import time

    from ollama_oci import prehash
    from ollama_oci.copyhash import HashedReader
    monkeypatch.setattr(HashedReader, "LAG_MAX", 1 << 20)
    data = os.urandom(4 << 20)
    (tmp_path / "blob").write_bytes(data)

    def slow(path, st):        # a job that hashes in 256 KiB steps, with pauses
        job = prehash.HashJob(prehash._key(st))

        def run():
            h = hashlib.sha256()
            while job.done < len(data):
                time.sleep(0.01)
                h.update(data[job.done:job.done + (256 << 10)])
                job.done = min(job.done + (256 << 10), len(data))
            job.digest = "sha256:" + h.hexdigest()
            job.finished.set()
        threading.Thread(target=run, daemon=True).start()
        return job
    monkeypatch.setattr(prehash, "beside", slow)
    gaps = []
    with HashedReader.mapped(str(tmp_path / "blob"), len(data), block=128 << 10) as r:
        pos = 0
        for b in r:
            gaps.append(pos - r.job.done)
            pos += len(b)
    assert max(gaps) <= 1 << 20 and r.hexdigest() == _sha(data)

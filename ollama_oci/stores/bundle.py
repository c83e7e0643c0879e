"""A bundle file as a store to copy into: an OCI image layout in a tar, zstd-compressed or not.

``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>`` (skopeo reads it as ``oci-archive:``).
:class:`BundleWriter` implements the write half of the store contract, so an export is one
``copy`` per model into it. When the models are announced first (:meth:`BundleWriter.announce`,
as ``export_bundle`` does), ``index.json`` and the manifests lead the archive, so an import
knows every model before the first blob and reads the file once, in one pass. Members are
written in order, one at a time (``sequential``), every blob hashed as it goes in; the file
appears under its name only when complete (temp file, fsync, rename). Same models, same bytes:
members carry no dates or owners.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
import threading
from typing import Any, BinaryIO, Optional

from ..copyhash import HashedReader, Range
from ..digest import CHUNK, Digest, digest_bytes
from ..errors import InvalidInput, NotFound, StoreError, Unsupported, VerificationError
from ..fsutil import WriteBehind, fsync_dir, tmp_name, unlink_quiet
from ..names import ModelName, parse_name
from ..spec import MT, Descriptor, parse_manifest
from .contract import BlobSource, ProgressFn

__all__ = ["BundleWriter", "is_bundle_path", "REF_ANNOTATION", "LAYOUT_FILE"]

REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
ZSTD_SUFFIXES = (".tar.zst", ".tzst", ".tar.zstd")


def is_bundle_path(path: str) -> bool:
    p = path.lower()
    return p.endswith(".tar") or p.endswith(ZSTD_SUFFIXES)


def compressed(path: str) -> bool:
    return path.lower().endswith(ZSTD_SUFFIXES)


def tar_header(name: str, size: int, mode: int = 0o644) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = 0          # reproducible bundles: same models, same bytes
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = tarfile.REGTYPE
    return ti.tobuf(format=tarfile.PAX_FORMAT)   # PAX: members over 8 GiB are fine


def _index(entries: list[tuple[ModelName, bytes, str]]) -> bytes:
    index = {"schemaVersion": 2, "mediaType": MT.OCI_INDEX, "manifests": [
        {"mediaType": mt, "digest": str(digest_bytes(data)), "size": len(data),
         "annotations": {REF_ANNOTATION: name.display}} for name, data, mt in entries]}
    return json.dumps(index, indent=2).encode() + b"\n"


class _Behind:
    """The bundle file as the compressor writes to it: every write tells the write-behind how long the
    file is, also while the compressor empties its last jobs at the end (~30-40 ms less fsync tail on
    the Gemma's bundle, where that phase used to write its output unflushed)."""

    def __init__(self, f: BinaryIO, behind: WriteBehind):
        self.f, self.behind, self.pos = f, behind, f.tell()

    def write(self, data) -> int:
        n = self.f.write(data)
        self.pos += len(data) if n is None else n
        self.behind.wrote(self.pos)
        return n

    def flush(self) -> None:
        self.f.flush()


def _let_go_of(path: str) -> None:
    """Drop the page-cache pages of the file this bundle will replace, on a thread, now: the rename
    that replaces it at the end then frees its blocks only (~37 ms for a 238 MB bundle on this
    machine's ext4) instead of its pages as well (~55 ms), while nothing else can run."""
    if not hasattr(os, "posix_fadvise"):
        return

    def drop() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
    threading.Thread(target=drop, name="ollama-oci-let-go", daemon=True).start()


class BundleWriter:
    """A bundle being written. Use as a context manager: the file appears on a clean exit only."""

    #: members are written one after the other: a copy moves one blob at a time into it
    sequential = True
    #: ``exists`` is a set lookup
    checks_blobs_cheaply = True

    #: zstd job size: at high levels zstd's default (4x the window: 32 MiB at level 19) lets the
    #: compressor take ~200 MB ahead of its workers, so the bar reached 100% and the end then stalled
    JOB_SIZE = 8 << 20
    #: at the fast levels (1-9, where a job re-reads a quarter of the window from the one before, or
    #: less) half that: the workers start sooner and the last job ends sooner, for the same work
    #: (Gemma's bundle 0.661 -> 0.636 s, a 1 GiB one 1.38 -> 1.30 s, medians; 0.01% larger)
    FAST_JOB_SIZE = 4 << 20
    #: the compressor's output goes to the file in writes of this size
    WRITE_SIZE = 1 << 20

    def __init__(self, path: str, *, level: int = 3, progress: Any = None):
        self.path = path
        self.level = level
        self.progress = progress
        self._cctx: Any = None
        self.size = 0                 # bytes of tar written (before compression)
        self.blob_bytes = 0
        self._written: dict[str, int] = {}
        self._announced: dict[ModelName, tuple[bytes, str]] = {}
        self._tagged: dict[ModelName, tuple[bytes, str]] = {}
        self._order: list[ModelName] = []
        self._unchecked: list[tuple[Descriptor, Any, str]] = []   # (blob, its hash job, where from)
        self._lock = threading.Lock()
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):  # as cp and tar do: the directory is the user's to create
            raise NotFound(f"cannot write {path}: the directory {d} does not exist")
        self._dir = d
        _let_go_of(path)
        self._tmp = tmp_name(d)
        self._raw = open(self._tmp, "xb")
        self._behind = WriteBehind(self._raw.fileno())
        self._out: Any = self._raw
        if compressed(path):
            import zstandard
            job = self.FAST_JOB_SIZE if level <= 9 else self.JOB_SIZE
            params = zstandard.ZstdCompressionParameters.from_level(level, threads=-1, job_size=job,
                                                                    write_checksum=1)
            self._cctx = zstandard.ZstdCompressor(compression_params=params)
            # its output in 1 MiB writes, not zstd's 128 KiB: ~230 calls into Python for the Gemma's
            # bundle instead of ~1,800 (0.62 -> 0.59 s, medians of 25 runs)
            self._out = self._cctx.stream_writer(_Behind(self._raw, self._behind), closefd=False,
                                                 write_size=self.WRITE_SIZE)
        self._add_bytes("oci-layout", LAYOUT_FILE)
        self._closed = False

    # -- tar ----------------------------------------------------------------------------------
    def _w(self, b) -> None:
        self._out.write(b)
        self.size += len(b)
        if self._out is self._raw:    # (compressed: the compressor's writes tell it, _Behind)
            self._behind.wrote(self._raw.tell())

    def _pad(self, n: int) -> None:
        if n % 512:
            self._w(b"\0" * (512 - n % 512))

    def _add_bytes(self, name: str, data: bytes) -> None:
        self._w(tar_header(name, len(data)))
        self._w(data)
        self._pad(len(data))

    def _add_blob_bytes(self, data: bytes) -> None:
        d = digest_bytes(data)
        if str(d) not in self._written:
            self._add_bytes(f"blobs/sha256/{d.hex}", data)
            self._written[str(d)] = len(data)

    # -- announcing the models first ----------------------------------------------------------------
    def announce(self, entries: list[tuple[ModelName, bytes, str]]) -> None:
        """Write ``index.json`` and the manifests before any blob (call once, first): an import then
        reads the bundle in one pass. Each model must later be tagged with the same bytes."""
        with self._lock:
            if self._announced or len(self._written) > 0:
                raise InvalidInput("announce the models once, before any blob")
            for name, data, mt in entries:
                parse_manifest(data)
                self._announced[name] = (data, mt)
            self._add_bytes("index.json", _index(entries))
            for _name, data, _mt in entries:
                self._add_blob_bytes(data)

    # -- the store contract (the write half) ---------------------------------------------------------
    def describe(self) -> str:
        return f"bundle:{self.path}"

    def describe_ref(self, ref: Any) -> str:
        return f"{self.path}:{self._name(ref).display}"

    @staticmethod
    def _name(ref: Any) -> ModelName:
        return ref if isinstance(ref, ModelName) else parse_name(str(ref))

    def resolve(self, ref: Any) -> Descriptor:
        got = self._tagged.get(self._name(ref))
        if got is None:
            raise NotFound(f"{self._name(ref).display} is not (yet) in {self.path}")
        return Descriptor(got[1], digest_bytes(got[0]), len(got[0]))

    def fetch_manifest(self, ref: Any) -> tuple[bytes, str]:
        got = self._tagged.get(self._name(ref))
        if got is None:
            raise NotFound(f"{self._name(ref).display} is not (yet) in {self.path}")
        return got

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        raise Unsupported(f"{self.path} is being written; read it with 'ollama-oci import'")

    def exists(self, desc: Descriptor) -> bool:
        return self._written.get(str(desc.digest)) == desc.size

    def push(self, desc: Descriptor, source: BlobSource, *, progress: ProgressFn = None) -> str:
        with self._lock:
            if self.exists(desc):
                return "exists"
            self._w(tar_header(f"blobs/sha256/{desc.digest.hex}", desc.size))
            done = 0
            # a local file goes to the compressor straight from a map while a background job hashes
            # it (checked at commit); any other source is read and hashed on a thread while this
            # one writes: either way the verification overlaps the writing
            path = source.local_path
            with contextlib.ExitStack() as stack:
                if path is not None:    # a local file: read through a map, no copy of the page cache
                    if source.cancel is not None:
                        source.cancel.check()       # as source.open() checks it
                    blocks = stack.enter_context(HashedReader.mapped(path, desc.size, block=CHUNK))
                else:
                    blocks = stack.enter_context(HashedReader(stack.enter_context(source.open()), desc.size,
                                                              block=CHUNK))
                for chunk in blocks:
                    self._w(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                    del chunk
                job = blocks.detach()     # (a store blob) hashed beside the compressor, checked at commit
                hexdigest = blocks.hexdigest() if job is None else None
            if done != desc.size:
                if job is not None:
                    job.cancel()
                raise VerificationError(f"blob {desc.digest} ended after {done} of {desc.size} "
                                        f"bytes in {source.store.describe()}")
            if job is not None:
                self._unchecked.append((desc, job, source.store.describe()))
            else:
                self._check(desc, "sha256:" + hexdigest, source.store.describe())
            self._pad(desc.size)
            self._written[str(desc.digest)] = desc.size
            self.blob_bytes += desc.size
            return "copied"

    @staticmethod
    def _check(desc: Descriptor, got: str, where: str) -> None:
        if got != desc.digest:
            raise VerificationError(f"blob {desc.digest} is damaged in {where} (it hashes to {got}); "
                                    "run 'ollama-oci verify'", expected=desc.digest)

    def _hashing(self, desc: Descriptor):
        """A job's progress as ``hash`` events, for a hash still running when the bundle is done (it
        ran at the lowest priority: a compressor at a high level can leave it little until then)."""
        from ..progress import ProgressEvent
        done = 0

        def tell(n: int) -> None:
            nonlocal done
            done += n
            self.progress(ProgressEvent("hash", f"check {desc.digest.hex[:12]}", done, desc.size))
        return tell

    def _check_all(self) -> None:
        """Wait for the blobs hashed beside the compressor, and check them: nothing gets the
        bundle's name unverified."""
        while self._unchecked:
            desc, job, where = self._unchecked.pop(0)
            running = self.progress is not None and not job.finished.is_set()
            got = job.wait(self._hashing(desc) if running else None)
            if got is None:
                raise VerificationError(f"blob {desc.digest} changed or could not be read in {where} while "
                                        "it was bundled; run the export again", expected=desc.digest)
            self._check(desc, got[0], where)

    def tag(self, ref: Any, data: bytes, media_type: str) -> Digest:
        name = self._name(ref)
        m = parse_manifest(data)
        with self._lock:
            for d in m.blobs:
                if not self.exists(d):
                    raise StoreError(f"refusing to tag {name.display} in {self.path}: blob {d.digest} is missing")
            if self._announced:
                if self._announced.get(name) != (data, media_type):
                    raise InvalidInput(f"{name.display} was not announced with these manifest bytes")
            else:
                self._add_blob_bytes(data)
            if name not in self._tagged:
                self._order.append(name)
            self._tagged[name] = (data, media_type)
        return digest_bytes(data)

    def list_refs(self) -> list[ModelName]:
        return list(self._order)

    def delete(self, ref: Any) -> None:
        raise Unsupported("a bundle being written cannot delete a model")

    # -- finishing ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Finish the archive and give it its name (every announced model must be tagged)."""
        with self._lock:
            missing = [n.display for n in self._announced if n not in self._tagged]
            if missing:
                raise StoreError(f"{self.path}: {', '.join(missing)} announced but never copied")
            if not self._announced:
                self._add_bytes("index.json", _index([(n, *self._tagged[n]) for n in self._order]))
            self._w(b"\0" * 1024)
            if self._out is not self._raw:
                self._finish_compression()
                # the compressor's buffers (~100 MB with its workers' on the Gemma) are freed on a
                # thread while this one waits for the disk, not after it (~7 ms)
                done = [self._cctx, self._out]
                self._cctx, self._out = None, self._raw
                threading.Thread(target=done.clear, name="ollama-oci-zstd-free", daemon=True).start()
            self._raw.flush()
            self._behind.close()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._check_all()     # while the file was written out, the last hashes ran on
            os.replace(self._tmp, self.path)
            fsync_dir(self._dir)
            self._closed = True

    def _finish_compression(self) -> None:
        """Close the zstd stream; what the workers still have to compress (up to a few jobs: a long
        wait at level 19) is reported as a ``compress`` phase while they do."""
        from ..progress import ProgressEvent
        stop = threading.Event()
        watcher = None
        if self.progress is not None and self._cctx is not None:
            start = self._cctx.frame_progression()[1]

            def watch() -> None:
                while not stop.wait(0.25):
                    ingested, consumed, _ = self._cctx.frame_progression()
                    self.progress(ProgressEvent("compress", f"zstd -{self.level}", consumed - start, ingested - start))
            watcher = threading.Thread(target=watch, name="ollama-oci-zstd-progress", daemon=True)
            watcher.start()
        try:
            self._out.close()
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
                ingested = self._cctx.frame_progression()[0]
                self.progress(ProgressEvent("compress", f"zstd -{self.level}", ingested - start, ingested - start))

    def abort(self) -> None:
        for _desc, job, _where in self._unchecked:
            job.cancel()
        self._unchecked.clear()
        if not self._closed:
            self._closed = True
            try:
                if self._out is not self._raw:
                    self._out.close()
            except Exception:
                pass
            self._behind.close()
            self._raw.close()
            unlink_quiet(self._tmp)

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:    # a blob that failed its check, a model never copied: no file left
                self.abort()
                raise
        else:
            self.abort()


# -- reading: a bounded streaming tar reader ----------------------------------------------------------

#: bounds on what a bundle's tar headers may ask of the reader
MAX_PAX_HEADER = 64 << 10     # a PAX extended header (path, size, ...): a few hundred bytes in practice
MAX_LONG_NAME = 4 << 10       # a GNU long name
MAX_MEMBERS = 1_000_000


class TarFormatError(Exception):
    """The archive is not a tar this reader accepts (damaged, truncated, or over a bound)."""


class _Member:
    """One regular file's data in the stream; reads stop at its end."""

    def __init__(self, stream: BinaryIO, size: int, at: Optional[int] = None):
        self.stream, self.size, self.left = stream, size, size
        self.at = at  # where the data starts in the file behind ``stream``, if it is a plain file

    def take_range(self) -> Optional[Range]:
        """Capability: the member's bytes as a range of the archive file, for an in-kernel copy
        (:mod:`ollama_oci.copyhash`); the stream moves past them. None for a compressed archive,
        or once reading has begun."""
        if self.at is None or self.left != self.size:
            return None
        self.stream.seek(self.at + self.size)
        self.left = 0
        return Range(self.stream.fileno(), self.at, self.size, "the archive")

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n is None or n < 0 else min(n, self.left)
        data = self.stream.read(want)
        if not data:
            raise TarFormatError(f"the archive ends inside a member ({self.left} bytes missing)")
        self.left -= len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def skip(self) -> None:
        while self.left > 0:
            self.read(min(self.left, 1 << 20))


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = stream.read(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


def _number(field: bytes) -> int:
    """A tar number: octal text, or base-256 (GNU) for large values."""
    if field[:1] and field[0] & 0x80:
        n = int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
        return n
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad number field {text[:20]!r}") from None


def _pax(data: bytes) -> dict[str, str]:
    """PAX records ``"<len> <key>=<value>\\n"``, parsed without regular expressions (CVE-2024-6232)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos, pos + 20)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("bad PAX record length") from None
        if length <= 0 or pos + length > len(data):
            raise TarFormatError("bad PAX record length")
        record = data[sp + 1:pos + length - 1]  # without the trailing newline
        key, eq, value = record.partition(b"=")
        if eq:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_tar(stream: BinaryIO):
    """Yield ``(name, member)`` for each regular file of a tar stream, in order; ``member`` is a
    file-like limited to the file's bytes (what the caller leaves unread is skipped).

    Streams in constant memory whatever the number of members, refuses oversized PAX headers and
    long names, verifies header checksums, and parses PAX records by hand. Directories, links and
    devices are skipped, never materialized.
    """
    pax: dict[str, str] = {}
    long_name: Optional[str] = None
    count = 0
    try:
        direct = stream.seekable() and stream.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        direct = False
    while True:
        head = _read_exact(stream, 512)
        if len(head) < 512:
            if not head:
                return  # ended without the zero blocks: accepted, as GNU tar does
            raise TarFormatError("the archive ends inside a header")
        if head == b"\0" * 512:
            return
        count += 1
        if count > MAX_MEMBERS:
            raise TarFormatError(f"more than {MAX_MEMBERS} members")
        chk = _number(head[148:156])
        if chk != sum(head[:148]) + 8 * 32 + sum(head[156:]):
            raise TarFormatError("a header's checksum does not match (damaged archive)")
        kind = head[156:157]
        size = _number(head[124:136])
        name = head[:100].split(b"\0", 1)[0]
        if head[257:262] == b"ustar" and head[345:500].strip(b"\0"):
            name = head[345:500].split(b"\0", 1)[0] + b"/" + name
        member = _Member(stream, size)
        if kind in (b"x", b"g", b"L"):
            bound = MAX_LONG_NAME if kind == b"L" else MAX_PAX_HEADER
            if size > bound:
                raise TarFormatError(f"a {'long name' if kind == b'L' else 'PAX header'} of {size} bytes "
                                     f"(at most {bound})")
            data = member.read()
            _read_exact(stream, (512 - size % 512) % 512)
            if kind == b"x":
                pax = _pax(data)
            elif kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise TarFormatError("bad PAX size") from None
            member = _Member(stream, size)
        if direct and kind in (b"0", b"\0", b"7"):
            member.at = stream.tell()
        text = pax.get("path") or long_name or name.decode("utf-8", "surrogateescape")
        pax, long_name = {}, None
        if size < 0:
            raise TarFormatError("negative member size")
        if kind in (b"0", b"\0", b"7"):
            yield text, member
        member.skip()
        _read_exact(stream, (512 - size % 512) % 512)

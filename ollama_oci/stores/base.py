"""What every store offers, and the parts the local stores share.

A store holds blobs addressed by digest and manifests addressed by model name.
The ollama model store and the OCI layout differ only in where those live on
disk and in which manifest bytes they keep; verification, listing and removal
with shared-blob accounting are written once here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Optional

from ..digest import Digest, digest_bytes, hash_file, parse_digest
from ..errors import InvalidInput, NotFound, StoreError, VerificationError
from ..fsutil import Staged, commit_staged, in_use, stage_file, unlink_quiet, write_blob_bytes
from ..names import ModelName, parse_name
from ..spec import MAX_CONFIG_BYTES, Config, Descriptor, Manifest, parse_manifest
from ..progress import ProgressCallback, ProgressEvent
from .contract import BlobSource

__all__ = ["LocalStore", "ModelEntry", "Problem"]

log = logging.getLogger("ollama_oci")

ProgressFn = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class ModelEntry:
    """One model in a store."""

    name: ModelName
    manifest_digest: Digest       # the model ID: what ollama list shows (LocalStore.manifest_id)
    size: int                     # sum of blob sizes, as the manifest claims
    modified: float               # mtime (seconds since the epoch)

    def to_json(self) -> dict:
        return {"name": self.name.display, "full_name": str(self.name), "id": self.manifest_digest.short,
                "digest": str(self.manifest_digest), "size": self.size, "modified": self.modified}


@dataclass(frozen=True)
class Problem:
    """Something ``verify`` found wrong."""

    model: str
    digest: str
    kind: str          # missing / size / digest / manifest
    detail: str

    def to_json(self) -> dict:
        return {"model": self.model, "digest": self.digest, "problem": self.kind, "detail": self.detail}


class LocalStore:
    """Blob and manifest storage on a local filesystem (subclasses define the layout).

    Implements the store contract (:mod:`.contract`) with model names as references, plus the
    ``local_path`` capability; blobs from a stream arrive through a resumable partial file
    (:mod:`.partial`).
    """

    #: whether stored manifests end with a newline (ollama's local form) or not (registry form)
    manifest_newline = True

    def manifest_id(self, data: bytes) -> Digest:
        """What identifies a stored manifest to users (``list``'s ID): its digest here; the Ollama
        store has Ollama's own rule."""
        return digest_bytes(data)
    kind = "store"
    #: ``exists`` is a stat, so a copy may check every blob of an unchanged manifest
    checks_blobs_cheaply = True

    root: str

    # -- layout (subclasses) -------------------------------------------------------------
    def blob_path(self, digest: Digest) -> str:
        raise NotImplementedError

    def tmp_dir(self) -> str:
        raise NotImplementedError

    def _write_manifest(self, name: ModelName, data: bytes) -> None:
        raise NotImplementedError

    def read_manifest_bytes(self, name: ModelName) -> tuple[bytes, float]:
        raise NotImplementedError

    def names(self) -> list[ModelName]:
        raise NotImplementedError

    def _delete_manifest(self, name: ModelName) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind}:{self.root}"

    def prepare(self) -> None:
        """Create the store's directories (done lazily by writers)."""

    # -- the store contract ---------------------------------------------------------------
    @staticmethod
    def _name(ref: "ModelName | str") -> ModelName:
        if isinstance(ref, ModelName):
            return ref
        if isinstance(ref, str):
            return parse_name(ref)
        raise InvalidInput(f"a local store takes a model name, not {type(ref).__name__} {ref!r}")

    def describe_ref(self, ref: "ModelName | str") -> str:
        return f"{self.describe()}:{self._name(ref).display}"

    def resolve(self, ref: "ModelName | str") -> Descriptor:
        """The stored manifest's descriptor (its digest is the model's ID)."""
        data, _ = self.read_manifest_bytes(self._name(ref))
        try:
            mt = parse_manifest(data).media_type
        except InvalidInput as e:
            raise InvalidInput(f"{self._name(ref).display}: bad manifest in {self.describe()}: {e}") from None
        return Descriptor(mt, digest_bytes(data), len(data))

    def fetch_manifest(self, ref: "ModelName | str") -> tuple[bytes, str]:
        """The manifest bytes as stored, and their media type."""
        m, raw = self.get_manifest(self._name(ref))
        return raw, m.media_type

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        f = self.open_blob(desc.digest)
        if offset:
            f.seek(offset)
        return f if length is None else _Window(f, length)

    def exists(self, desc: Descriptor) -> bool:
        return self.has_blob(desc.digest, desc.size)

    def local_path(self, desc: Descriptor) -> Optional[str]:
        """Capability: the file holding a blob (a destination links or reflinks it)."""
        return self.find_blob(desc.digest)

    def push(self, desc: Descriptor, source: BlobSource, *, progress=None) -> str:
        """Put a blob in: linked or copied from a local file (checked in the same pass), or fetched
        from a stream into a resumable partial file, verified, then renamed into place. With
        ``source.verify_existing`` a blob already here is re-hashed first, and fetched again if damaged."""
        if self.exists(desc):
            if not source.verify_existing:
                return "exists"
            got, _ = hash_file(self.find_blob(desc.digest), progress=progress)
            if got == desc.digest:
                return "verified"
            log.warning("blob %s is damaged here (it hashes to %s); fetching it again", desc.digest.short, got.short)
            if progress is not None:
                progress(-desc.size)
            for p in (self.find_blob(desc.digest), self.blob_path(desc.digest)):
                if p:
                    unlink_quiet(p)
        path = source.local_path
        if path is not None:
            last = [0]

            def staged(done: int, total: int) -> None:
                if progress is not None:
                    progress(done - last[0])
                last[0] = done
            st = self.stage_file(path, link_mode=source.link_mode, progress=staged,
                                 known=(desc.digest, desc.size))
            self.commit(st)
            return "copied" if st.method == "copy" else "linked"
        from .partial import receive
        self.prepare()
        wrote = receive(self.tmp_dir(), self.blob_path(desc.digest), desc, source, progress=progress,
                        present=lambda: self.exists(desc))
        return "downloaded" if wrote else "exists"

    def tag(self, ref: "ModelName | str", data: bytes, media_type: str = "") -> Digest:
        """Write a manifest under a name, after checking its blobs are all there."""
        return self.put_manifest(self._name(ref), data)

    def stage_stream(self, f: BinaryIO, desc: Descriptor, *, progress=None) -> Optional[Staged]:
        """Capability: take a blob from a stream without making it visible (hashed against its
        digest as it is written; :meth:`commit` or :func:`~ollama_oci.fsutil.discard_staged` it
        later). None if the store already has it."""
        from ..fsutil import WriteBehind, tmp_name, unlink_quiet
        if self.exists(desc):
            return None
        self.prepare()
        from ..fsutil import ensure_room, hold
        ensure_room(self.tmp_dir(), desc.size, f"blob {desc.digest}")
        tmp = tmp_name(self.tmp_dir())
        lock = -1
        take_range = getattr(f, "take_range", None)
        try:
            with open(tmp, "xb+", buffering=0) as out:
                lock = hold(tmp)  # held until committed or discarded: prune leaves it alone
                rng = take_range() if take_range is not None and getattr(f, "size", None) == desc.size else None
                # a plain file's range is copied by the kernel and hashed behind it; a stream (a
                # decompressor) is decompressed and written by a second thread, this one hashing each block
                from ..copyhash import ShortSource, copy_pieces, write_stream
                behind = WriteBehind(out.fileno())
                done = 0

                def tick(n: int) -> None:   # the blob goes to disk as it is written (fsutil.WriteBehind)
                    nonlocal done
                    done += n
                    behind.wrote(done)
                    if progress is not None:
                        progress(n)
                try:
                    if rng is not None:
                        got, n = copy_pieces(out.fileno(), [rng], progress=tick)
                    else:
                        got, n = write_stream(out.fileno(), _blocks(f, desc.size), progress=tick)
                except ShortSource:
                    raise VerificationError(f"blob {desc.digest} is cut short (the archive is truncated); "
                                            "nothing was imported", expected=desc.digest) from None
                finally:
                    behind.close()
                os.fsync(out.fileno())
            if got != desc.digest or n != desc.size:
                raise VerificationError(f"blob {desc.digest} is damaged (it hashes to {got}); nothing was "
                                        "imported", expected=desc.digest, actual=got)
        except BaseException:
            unlink_quiet(tmp)
            if lock >= 0:
                os.close(lock)
            raise
        return Staged(tmp, desc.digest, desc.size, "copy", lock)

    def push_stream(self, chunks, *, progress=None) -> tuple[Digest, int]:
        """Capability: store content whose digest is known only at its end (a tar built on the fly):
        written to a temp file while hashed, then renamed to its digest."""
        import hashlib

        from ..fsutil import fsync_dir, tmp_name, unlink_quiet
        self.prepare()
        tmp = tmp_name(self.tmp_dir())
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for piece in chunks:
                    h.update(piece)
                    f.write(piece)
                    size += len(piece)
                    if progress is not None:
                        progress(len(piece))
                f.flush()
                os.fsync(f.fileno())
            digest = Digest("sha256:" + h.hexdigest())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.blob_path(digest))
            fsync_dir(os.path.dirname(self.blob_path(digest)))
        except BaseException:
            unlink_quiet(tmp)
            raise
        return digest, size

    def list_refs(self) -> list[ModelName]:
        return self.names()

    def delete(self, ref: "ModelName | str") -> None:
        self.remove(self._name(ref))

    # -- blobs --------------------------------------------------------------------------
    def find_blob(self, digest: Digest | str) -> Optional[str]:
        """The path of a blob if the store has it (a regular file: a symlink is never followed)."""
        p = self.blob_path(parse_digest(digest))
        return p if is_regular(p) else None

    def has_blob(self, digest: Digest | str, size: Optional[int] = None) -> bool:
        p = self.find_blob(digest)
        if p is None:
            return False
        return size is None or os.path.getsize(p) == size

    def open_blob(self, digest: Digest | str) -> BinaryIO:
        p = self.find_blob(digest)
        if p is None:
            raise NotFound(f"blob {digest} is not in {self.describe()}")
        try:  # O_NOFOLLOW: a blob swapped for a symlink since the check is refused, not followed
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise StoreError(f"cannot open blob {digest} in {self.describe()}: {e.strerror}") from None
        return os.fdopen(fd, "rb")

    def read_blob(self, digest: Digest | str, limit: int) -> bytes:
        """A small blob's bytes, refused above ``limit`` and checked against its digest."""
        d = parse_digest(digest)
        with self.open_blob(d) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidInput(f"blob {d} is larger than {limit} bytes")
        got = digest_bytes(data)
        if got != d:
            raise VerificationError(f"blob {d} is damaged (its content hashes to {got}); "
                                    "run 'ollama-oci verify' and pack or pull the model again",
                                    expected=d, actual=got)
        return data

    def ingest_file(self, path: str, *, link_mode: str = "auto", progress: ProgressFn = None,
                    known: Optional[tuple[Digest, int]] = None) -> tuple[Digest, int]:
        """Put a file in as a blob (see :func:`ollama_oci.fsutil.ingest_file`)."""
        return self.commit(self.stage_file(path, link_mode=link_mode, progress=progress, known=known))

    def stage_file(self, path: str, *, link_mode: str = "auto", progress: ProgressFn = None,
                   known: Optional[tuple[Digest, int]] = None) -> Staged:
        """Bring a file in and hash it without making it visible (see :func:`commit`)."""
        self.prepare()
        st = stage_file(path, self.tmp_dir(), link_mode=link_mode, progress=progress, known=known)
        log.debug("%s: %s into %s as %s", path, st.method, self.describe(), st.digest)
        return st

    def commit(self, staged: Staged) -> tuple[Digest, int]:
        commit_staged(staged, self.blob_path(staged.digest))
        return staged.digest, staged.size

    def put_blob_bytes(self, data: bytes, digest: Optional[Digest] = None) -> Digest:
        d = digest_bytes(data)
        if digest is not None and parse_digest(digest) != d:
            raise VerificationError(f"blob bytes hash to {d}, not {digest}", expected=digest, actual=d)
        self.prepare()
        write_blob_bytes(data, self.blob_path(d))
        return d

    # -- manifests ----------------------------------------------------------------------
    def put_manifest(self, name: ModelName, manifest: Manifest | bytes) -> Digest:
        """Store a manifest after checking that every blob it names is present and whole."""
        data = manifest.to_bytes(newline=self.manifest_newline) if isinstance(manifest, Manifest) else manifest
        m = manifest if isinstance(manifest, Manifest) else parse_manifest(data)
        for d in m.blobs:
            p = self.find_blob(d.digest)
            if p is None:
                raise StoreError(f"refusing to write manifest {name.display}: blob {d.digest} is missing")
            if os.path.getsize(p) != d.size:
                raise VerificationError(f"refusing to write manifest {name.display}: blob {d.digest} has "
                                        f"{os.path.getsize(p)} bytes, the manifest says {d.size}")
        self.prepare()
        self._write_manifest(name, data)
        return self.manifest_id(data)

    def get_manifest(self, name: ModelName) -> tuple[Manifest, bytes]:
        data, _ = self.read_manifest_bytes(name)
        try:
            return parse_manifest(data), data
        except InvalidInput as e:
            raise InvalidInput(f"{name.display}: bad manifest in {self.describe()}: {e}") from None

    def get_config(self, manifest: Manifest) -> Config:
        if not manifest.config.digest:
            return Config(model_format="", architecture="", os="")
        return Config.from_json(self.read_blob(manifest.config.digest, MAX_CONFIG_BYTES))

    def list(self) -> list[ModelEntry]:
        out = []
        for n in self.names():
            try:
                data, mtime = self.read_manifest_bytes(n)
                m = parse_manifest(data)
            except (InvalidInput, NotFound, OSError):
                continue
            out.append(ModelEntry(n, self.manifest_id(data), m.size, mtime))
        out.sort(key=lambda e: e.modified, reverse=True)
        return out

    def _referenced(self, skip: Optional[ModelName] = None) -> tuple[set[str], list[str]]:
        """Digests referenced by every manifest except ``skip``, and names that could not be read."""
        refs: set[str] = set()
        unreadable: list[str] = []
        for n in self.names():
            if skip is not None and n == skip:
                continue
            try:
                data, _ = self.read_manifest_bytes(n)
                m = parse_manifest(data)
            except (InvalidInput, NotFound, OSError):
                unreadable.append(n.display)
                continue
            refs.update(str(d.digest) for d in m.blobs)
        return refs, unreadable

    def remove(self, name: ModelName, *, warn: Optional[Callable[[str], None]] = None) -> list[Digest]:
        """Remove a model; delete the blobs no other model uses.  Returns the deleted digests."""
        manifest, _ = self.get_manifest(name)
        refs, unreadable = self._referenced(skip=name)
        self._delete_manifest(name)
        if unreadable:
            if warn:
                warn(f"kept the blobs of {name.display}: these manifests could not be read, so their "
                     f"blobs are unknown: {', '.join(unreadable)}")
            return []
        deleted = []
        for d in {x.digest for x in manifest.blobs}:
            if str(d) in refs:
                continue
            p = self.find_blob(d)
            if p is not None:
                try:
                    os.unlink(p)
                    deleted.append(d)
                except FileNotFoundError:
                    pass
        return sorted(deleted)

    # -- garbage collection ----------------------------------------------------------------
    def _blob_files(self) -> list[tuple[str, Optional[str]]]:
        """(path, digest or None for leftovers) of every file in the blob area (subclasses)."""
        raise NotImplementedError

    def _referenced_by_index(self) -> set[str]:
        """Digests the store's own index references besides manifests' blobs (OCI: manifest blobs)."""
        return set()

    def prune(self, *, grace: float = 3600.0, dry_run: bool = False) -> tuple[list[str], int]:
        """Delete blobs no manifest references and leftovers of interrupted work (temp and
        partial files), all older than ``grace`` seconds; returns (paths, bytes).

        Nothing is deleted when any manifest cannot be read (its blobs are unknown), and the
        grace period keeps the blobs of a pack or pull still running (blobs go in before
        their manifest), as ollama's own pruner does.
        """
        import time as _time
        refs, unreadable = self._referenced()
        if unreadable:
            raise StoreError(f"not pruning {self.describe()}: these manifests cannot be read, so the blobs they "
                             f"use are unknown: {', '.join(unreadable)}; fix or remove them first")
        refs |= self._referenced_by_index()
        cutoff = _time.time() - grace
        removed, freed = [], 0
        for path, digest in self._blob_files():
            if digest is not None and digest in refs:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if st.st_mtime > cutoff:
                continue
            if digest is None and in_use(path):  # a pack or pull running now holds it (flock)
                continue
            if not dry_run:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            removed.append(path)
            freed += st.st_size
        return removed, freed

    def verify(self, names: Optional[Iterable[ModelName]] = None, *, rehash: bool = True,
               progress: ProgressCallback = None) -> tuple[list[ModelEntry], list[Problem]]:
        """Check models: every blob present with its size, and (``rehash``) its digest.

        A blob shared by several models is hashed once.
        """
        targets = list(names) if names is not None else self.names()
        problems: list[Problem] = []
        checked: dict[str, Optional[Problem]] = {}
        entries = []
        for n in targets:
            try:
                data, mtime = self.read_manifest_bytes(n)
                m = parse_manifest(data)
            except NotFound:
                raise
            except (InvalidInput, OSError) as e:
                problems.append(Problem(n.display, "", "manifest", str(e)))
                continue
            entries.append(ModelEntry(n, self.manifest_id(data), m.size, mtime))
            for d in m.blobs:
                key = str(d.digest)
                if key not in checked:
                    checked[key] = self._check_blob(n, d.digest, d.size, rehash, progress)
                p = checked[key]
                if p is not None:
                    problems.append(Problem(n.display, p.digest, p.kind, p.detail))
        return entries, problems

    def _check_blob(self, n: ModelName, digest: Digest, size: int, rehash: bool, progress) -> Optional[Problem]:
        if os.path.islink(self.blob_path(digest)):
            return Problem(n.display, str(digest), "symlink", "the blob is a symlink, which ollama-oci never "
                           "writes or follows; remove it and pull or pack the model again")
        p = self.find_blob(digest)
        if p is None:
            return Problem(n.display, str(digest), "missing", "blob file is missing")
        actual = os.path.getsize(p)
        if actual != size:
            return Problem(n.display, str(digest), "size", f"blob has {actual} bytes, manifest says {size}")
        if rehash:
            cb = None
            if progress is not None:
                done = 0

                def cb(k, _d=str(digest)):
                    nonlocal done
                    done += k
                    progress(ProgressEvent("hash", _d, done, size))
            got, _ = hash_file(p, progress=cb)
            if got != digest:
                return Problem(n.display, str(digest), "digest", f"content hashes to {got}")
        return None


def is_regular(path: str) -> bool:
    """Whether ``path`` is a regular file itself (not a symlink to one)."""
    import stat
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class _Window:
    """At most ``length`` bytes of an open file, from where it stands."""

    def __init__(self, f: BinaryIO, length: int):
        self.f, self.left = f, length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.f.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "_Window":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _blocks(f, size: int):
    """Up to ``size`` bytes of ``f``, a block at a time (the copy thread reads them; 1 MiB blocks
    measured faster than 4 or 8 MiB from a zstd stream)."""
    from ..digest import CHUNK
    left = size
    while left:
        b = f.read(min(CHUNK, left))
        if not b:
            return
        left -= len(b)
        yield b

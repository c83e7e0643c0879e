"""Offline bundles: several models in one file, blobs stored once, verified on import.

A bundle is an OCI image layout in a tar ("oci-archive", which skopeo also reads):
``oci-layout``, ``index.json`` naming each model with ``org.opencontainers.image.ref.name``,
then the manifests, then ``blobs/sha256/<hex>`` for every other blob.  ``.tar.zst`` (or
``.tzst``) is the same tar compressed with zstd.  Export is one ``copy`` per model into a
:class:`~ollama_oci.stores.bundle.BundleWriter` (each blob read once into the tar and
compressor).  Import reads the tar once: the index and manifests come first, so every blob is
known when it arrives; a local store stages each blob out of sight while hashing it and makes
nothing visible unless the whole bundle checks out; a registry receives each blob as it
streams.  Bundles written with the index last (earlier versions) are still read; a registry
import of those takes a second pass.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Optional

from . import prehash
from .digest import Digest, digest_bytes, parse_digest
from .errors import InvalidInput, NotFound, VerificationError, printable
from .fsutil import discard_staged
from .names import ModelName, parse_name
from .progress import ProgressCallback, ProgressEvent
from .spec import MAX_MANIFEST_BYTES, Descriptor, parse_manifest
from .stores.bundle import REF_ANNOTATION, BundleWriter, TarFormatError, compressed, is_bundle_path, iter_tar
from .stores.contract import BlobSource, bind
from .stores.memory import MemoryStore

__all__ = ["plan_import", "export_bundle", "import_bundle", "is_bundle_path", "BundleReport"]

_MAX_INDEX = 64 << 20



@dataclass
class BundleReport:
    path: str
    models: list[dict] = field(default_factory=list)    # {"name", "manifest_digest"}
    blobs: int = 0
    blob_bytes: int = 0
    skipped: int = 0                                      # blobs the destination already had
    file_size: int = 0

    def to_json(self) -> dict:
        return {"bundle": self.path, "models": self.models, "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "skipped_blobs": self.skipped, "file_size": self.file_size}


# -- export ---------------------------------------------------------------------------------------

def export_bundle(src: Any, refs: Iterable, path: str, *, names: Optional[list] = None, level: int = 3,
                  progress: ProgressCallback = None) -> BundleReport:
    """Write the models ``refs`` of ``src`` (any store) into a bundle file: one copy per model into a
    :class:`~ollama_oci.stores.bundle.BundleWriter`, the index and manifests first.

    ``names`` gives the name each model gets in the bundle (default: the model name, or the
    reference as an ollama name).  The file appears only when complete (temp + rename).
    """
    from .engine import CopyOptions, copy_manifest
    refs = list(refs)
    if not refs:
        raise InvalidInput("nothing to export: name at least one model")
    names = names or [r if isinstance(r, ModelName) else r.to_model_name() for r in refs]
    if len(set(names)) != len(names):
        raise InvalidInput("two models would get the same name in the bundle; give each its own")
    entries = []
    for ref, name in zip(refs, names):
        store, r = bind(src, ref)
        data, mt = store.fetch_manifest(r)  # each manifest read once
        entries.append((store, name, data, mt))
    report = BundleReport(path)
    opts = CopyOptions(progress=progress)
    try:
        with BundleWriter(path, level=level, progress=progress) as w:
            w.announce([(name, data, mt) for _, name, data, mt in entries])
            for store, name, data, mt in entries:
                copy_manifest(store, data, mt, w, name, opts)
                report.models.append({"name": name.display, "manifest_digest": str(digest_bytes(data))})
    finally:
        if prehash.pending():
            prehash.cancel()    # a hash the console script started that no blob took (console.py)
    report.blobs = len({str(x.digest) for _, _, data, _ in entries for x in parse_manifest(data).blobs})
    report.blob_bytes = w.blob_bytes
    report.file_size = os.path.getsize(path)
    return report


# -- import ---------------------------------------------------------------------------------------

#: small blobs (manifests, configs, text layers) are kept in memory up to this total; beyond it
#: they are staged like large ones, so a bundle of many small members cannot exhaust memory
_MAX_SMALL_TOTAL = 64 << 20


def _open_tar(path: str):
    """The bundle's decompressed byte stream (zstd or plain)."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such bundle") from None
    if compressed(path):
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return raw


def _walk(path: str, on_large: Optional[Callable[..., None]], *, head_only: bool = False) -> tuple[dict, dict[str, bytes]]:
    """One pass over a bundle, in constant memory (:func:`~ollama_oci.stores.bundle.iter_tar`).

    Returns ``index.json`` and the small blobs (manifests, configs, text layers), each
    verified against its name; every larger blob's stream goes to ``on_large(digest,
    size, stream, index, small)`` with what was read so far (``index`` None if it comes
    later), or is skipped when ``on_large`` is None. Once the index is known, a blob that
    neither it nor a manifest read so far names is skipped unread; a blob that appears twice
    is taken once. A damaged or truncated archive is a VerificationError. ``head_only`` stops as
    soon as the index and every manifest it lists have been read (a bundle this project wrote has
    them first), for plans that need no blob.
    """
    stream = _open_tar(path)
    index, small = None, {}
    small_total = 0
    seen: set[str] = set()
    wanted: Optional[set[str]] = None   # digests the index and the manifests so far name
    manifests: set[str] = set()         # the manifests the index lists

    def note_manifest(data: bytes) -> None:
        try:
            m = parse_manifest(data)
        except InvalidInput:
            return
        wanted.update(str(d.digest) for d in m.blobs)

    try:
        for name, member in iter_tar(stream):
            name = name.lstrip("./") if name.startswith("./") else name
            if name == "index.json":
                if member.size > _MAX_INDEX:
                    raise InvalidInput(f"{path}: index.json is larger than {_MAX_INDEX} bytes")
                try:
                    index = json.loads(member.read())
                except (ValueError, RecursionError) as e:
                    raise InvalidInput(f"{path}: index.json is not JSON: {printable(str(e), 100)}") from None
                listed = index.get("manifests") if isinstance(index, dict) else None
                manifests = {e["digest"] for e in listed if isinstance(e, dict) and isinstance(e.get("digest"), str)} \
                    if isinstance(listed, list) else set()
                wanted = set(manifests)
                for k, data in small.items():
                    if k in manifests:
                        note_manifest(data)
                continue
            if name == "oci-layout" or not name.startswith("blobs/"):
                continue
            parts = name.split("/")
            if len(parts) != 3 or parts[1] != "sha256":
                raise InvalidInput(f"{path}: unexpected member {printable(name, 200)!r}")
            digest = parse_digest("sha256:" + parts[2])
            key = str(digest)
            if key in seen or (wanted is not None and key not in wanted):
                continue  # a repeat, or nothing any model uses: never stored
            seen.add(key)
            if member.size <= MAX_MANIFEST_BYTES and small_total + member.size <= _MAX_SMALL_TOTAL:
                data = member.read()
                got = digest_bytes(data)
                if got != digest:
                    raise VerificationError(f"{path}: blob {digest} is damaged (it hashes to {got}); nothing was "
                                            "imported", expected=digest, actual=got)
                small[key] = data
                small_total += len(data)
                if key in manifests:
                    note_manifest(data)
                if head_only and index is not None and manifests <= set(small):
                    break
            elif on_large is not None:
                on_large(digest, member.size, member, index, small)
    except TarFormatError as e:
        raise VerificationError(f"{path} is damaged, truncated or not a bundle ({e}); nothing was imported") from None
    except Exception as e:
        if "zstd" in type(e).__module__.lower() or "zstd" in type(e).__name__.lower():
            raise VerificationError(f"{path}: zstd data is damaged ({e}); nothing was imported") from None
        raise
    finally:
        stream.close()
    if index is None:
        raise InvalidInput(f"{path}: no index.json; this is not an OCI image layout archive")
    return index, small


def plan_import(path: str, dst: Any, *, names: Optional[list[str]] = None, rename: Optional[dict] = None,
                dst_ref_for: Optional[Callable[[ModelName], Any]] = None) -> list[dict]:
    """What :func:`import_bundle` would do, moving nothing: per model, its blobs and whether ``dst`` has
    each (``exists``) or would receive it (``missing``). Reads the bundle's head only when the index
    and manifests lead it (as ``export`` writes them)."""
    from .stores.contract import bind
    index, small = _walk(path, None, head_only=True)
    out = []
    for ename, edigest in _select(index, names, path):
        m = parse_manifest(small[edigest]) if edigest in small else None
        if m is None:
            raise InvalidInput(f"{path}: the manifest of {ename} is missing")
        name = _dest_name(ename, rename)
        store, _ = bind(dst, dst_ref_for(name)) if dst_ref_for is not None else (dst, name)
        blobs = [{"digest": str(d.digest), "size": d.size, "action": "exists" if store.exists(d) else "missing"}
                 for d in m.blobs]
        out.append({"name": ename, "destination": name.display if dst_ref_for is None else str(dst_ref_for(name)),
                    "manifest_digest": edigest, "blobs": blobs})
    return out


def import_bundle(path: str, dst: Any, *, names: Optional[list[str]] = None, rename: Optional[dict] = None,
                  progress: ProgressCallback = None,
                  dst_ref_for: Optional[Callable[[ModelName], Any]] = None) -> BundleReport:
    """Import models from a bundle into ``dst``.

    A store that can stage blobs out of sight (``stage_stream``: the local stores) gets all or
    nothing: every blob is hashed against its name as it streams, and nothing is made visible (no
    blob renamed into place, no manifest written) unless the whole bundle checks out. Any other
    store (a registry, with ``dst_ref_for`` mapping each model name to its reference) receives the
    blobs as they stream, verified by the registry, and the manifests only at the end.
    ``names`` picks models (default: all); ``rename`` maps a bundle name to a destination name.
    """
    if getattr(dst, "stage_stream", None) is None:
        if dst_ref_for is None:
            raise InvalidInput(f"importing into {dst.describe()} needs a destination reference for each model")
        return _import_streaming(path, dst, names, rename, progress, dst_ref_for)
    report = BundleReport(path)
    staged: dict[str, Any] = {}           # digest -> Staged, or None when the store already had it
    dst.prepare()

    def stage(digest: Digest, size: int, f: BinaryIO, *_so_far) -> None:
        staged[str(digest)] = dst.stage_stream(f, Descriptor("application/octet-stream", digest, size),
                                               progress=_ticker(progress, digest, size))
        report.skipped += staged[str(digest)] is None

    try:
        index, small = _walk(path, stage)
        manifests = []
        for ename, edigest in _select(index, names, path):
            data = small.get(edigest)
            if data is None:
                raise VerificationError(f"{path}: the manifest of {ename} ({edigest}) is missing from the bundle")
            m = parse_manifest(data)
            for d in m.blobs:
                k = str(d.digest)
                if k not in small and k not in staged and not dst.exists(d):
                    raise VerificationError(f"{path}: blob {d.digest} of {ename} is missing from the bundle")
            # every destination name is checked before anything becomes visible
            manifests.append((ename, _dest_name(ename, rename), data, m))
        # everything checks out: make it visible, blobs first, manifests last
        needed = {str(d.digest) for _, _, _, m in manifests for d in m.blobs}
        for k in list(staged):
            st = staged.pop(k)
            if st is not None:
                dst.commit(st) if k in needed else discard_staged(st)
        for ename, target, data, m in manifests:
            for d in m.blobs:
                if str(d.digest) in small:
                    dst.put_blob_bytes(small[str(d.digest)], d.digest)
            dst.put_manifest(target, data)
            report.models.append({"name": target.display, "manifest_digest": str(digest_bytes(data))})
        unique = {str(d.digest): d.size for _, _, _, m in manifests for d in m.blobs}
        report.blobs, report.blob_bytes = len(unique), sum(unique.values())
    finally:
        for st in staged.values():
            if st is not None:
                discard_staged(st)
    report.file_size = os.path.getsize(path)
    return report


def _ticker(progress: ProgressCallback, digest: Digest, size: int) -> Optional[Callable[[int], None]]:
    if progress is None:
        return None
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        progress(ProgressEvent("transfer", str(digest), done[0], size))
    return tick


def _dest_name(name: str, rename: Optional[dict]) -> ModelName:
    return parse_name((rename or {}).get(name, name))


def _select(index: dict, names: Optional[list[str]], path: str) -> list[tuple[str, str]]:
    entries = []
    listed = index.get("manifests") if isinstance(index, dict) else None
    for e in listed if isinstance(listed, list) else []:
        if not isinstance(e, dict):
            continue
        ann = e.get("annotations")
        ref = ann.get(REF_ANNOTATION) if isinstance(ann, dict) else None
        d = e.get("digest")
        if isinstance(ref, str) and isinstance(d, str):
            parse_digest(d)
            entries.append((ref, d))
    if not entries:
        raise InvalidInput(f"{path}: the bundle names no models")
    if not names:
        return entries
    wanted = {parse_name(n) for n in names}
    chosen = [(r, d) for r, d in entries if parse_name(r) in wanted]
    missing = wanted - {parse_name(r) for r, _ in chosen}
    if missing:
        raise NotFound(f"{path} has no model {', '.join(sorted(n.display for n in missing))}; it has: "
                       f"{', '.join(r for r, _ in entries)}")
    return chosen


def _import_streaming(path, dst, names, rename, progress, dst_ref_for) -> BundleReport:
    """Into a store that cannot stage out of sight (a registry): each large blob streams straight
    into the first repository that needs it, in one pass over the bundle, since the index and
    manifests come first. A bundle with its index last takes a second pass."""
    report = BundleReport(path)
    plan: list = []
    home: dict[str, Any] = {}          # blob digest -> (store that receives it first, descriptor)
    seen: set[str] = set()
    deferred = [False]

    def make_plan(index: dict, small: dict) -> bool:
        """Plan the destinations once every chosen model's manifest has been read."""
        chosen = _select(index, names, path)
        if any(d not in small for _, d in chosen):
            return False
        for ename, edigest in chosen:
            data = small[edigest]
            m = parse_manifest(data)
            store, ref = bind(dst, dst_ref_for(_dest_name(ename, rename)))
            plan.append((store, ref, data, m))
            for d in m.blobs:
                home.setdefault(str(d.digest), (store, d))
        return True

    def upload(digest: Digest, size: int, f: BinaryIO, index, small) -> None:
        if not plan and (index is None or not make_plan(index, small)):
            deferred[0] = True   # the models are not known yet: this blob goes in a second pass
            return
        if str(digest) not in home or str(digest) in seen:
            return
        store, d = home[str(digest)]
        action = store.push(d, BlobSource(_OneStream(f, path), d), progress=_ticker(progress, d.digest, d.size))
        report.skipped += action == "exists"
        seen.add(str(digest))

    index, small = _walk(path, upload)
    if not plan and not make_plan(index, small):
        missing = [e for e, d in _select(index, names, path) if d not in small]
        raise VerificationError(f"{path}: the manifest of {missing[0]} is missing from the bundle")
    if deferred[0]:
        _walk(path, upload)
    for store, ref, data, m in plan:
        for d in m.blobs:
            k = str(d.digest)
            if k in small:
                mem, md = MemoryStore.of(small[k], d.media_type)
                store.push(md, BlobSource(mem, md))
            else:
                first = home[k][0]
                if k not in seen and not first.exists(d):
                    raise VerificationError(f"{path}: blob {d.digest} is missing from the bundle")
                if first.describe() != store.describe():  # another repository: mounted (or copied) from there
                    store.push(d, BlobSource(first, d))
        store.tag(ref, data, m.media_type)
        report.models.append({"name": store.describe_ref(ref), "manifest_digest": str(digest_bytes(data))})
    report.blobs, report.blob_bytes = len(home), sum(d.size for _, d in home.values())
    report.file_size = os.path.getsize(path)
    return report


class _OneStream:
    """A tar member's stream as a one-blob source: it can be read once, from the start."""

    def __init__(self, f: BinaryIO, path: str):
        self.f, self.path, self.used = f, path, False

    def describe(self) -> str:
        return self.path

    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> "_NoClose":
        if self.used or offset:
            raise VerificationError("a bundle member cannot be re-read for a retry; run the import again")
        self.used = True
        return _NoClose(self.f)


class _NoClose:
    """A tar member stream handed to an uploader that closes what it opens."""

    def __init__(self, f):
        self.f = f

    def read(self, n=-1):
        return self.f.read(n)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

"""One copy engine: move an artifact between any two stores, verified and incremental.

``copy(src, src_ref, dst, dst_ref)`` reads the source manifest, moves every blob the
destination lacks (in parallel), each verified before it becomes visible, and writes the
manifest last. Push, pull, copy, mirror, export, import and pack are this function with
different stores. It knows stores only by the contract (:mod:`ollama_oci.stores.contract`);
how a blob moves is the destination's choice, from what the source offers:

=================================  ==========================================================
the source offers                  the destination does
=================================  ==========================================================
a local file (``local_path``)      local: link/reflink, or a copy checked in the same pass;
                                   registry: a streamed PUT of the file (chunked if needed)
a mount origin in the same         registry: a cross-repository mount, no bytes moved
registry (``mount_origin``)
a stream (``fetch``)               local: a resumable partial file in parallel ranges, hashed,
                                   renamed; registry: the stream piped into a streamed PUT
=================================  ==========================================================

Manifest bytes are the source's ``fetch_manifest``: an Ollama model store gives what ``ollama
push`` sends (Go's ``json.Marshal`` of the manifest: compact, no trailing newline); every other
store gives the bytes as stored, so digests survive every hop.

One :class:`~ollama_oci.stores.contract.Budget` of ``concurrency`` slots covers blobs and the byte
ranges of a blob together. A :class:`~ollama_oci.stores.contract.CancelToken` (set by the caller,
or by Ctrl-C in the calling thread) stops every worker between two blocks; partial downloads stay
on disk for the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from .digest import Digest, digest_bytes
from .errors import InvalidInput
from .progress import ProgressCallback, ProgressEvent
from .spec import MT, Descriptor, Manifest, parse_manifest
from .cancel import INTERRUPTED, CancelToken
from .stores.contract import BlobSource, Budget, bind

log = logging.getLogger("ollama_oci")

__all__ = ["copy", "copy_manifest", "plan_copy", "CopyOptions", "CopyReport", "BlobResult", "as_oci_manifest"]


@dataclass(frozen=True)
class CopyOptions:
    """How a copy runs. Built once by a caller and passed to every copy of a run."""

    concurrency: int = 4               #: connections (blobs and parts together) at once
    progress: ProgressCallback = None  #: told a :class:`ProgressEvent` as bytes move
    manifest_format: str = "keep"      #: "oci": send the manifest as an OCI image manifest
    link_mode: str = "auto"            #: how a local destination takes a local file (auto/reflink/hardlink/copy)
    cancel: Optional[CancelToken] = None   #: set it to stop the copy (it raises Cancelled)
    #: re-hash blobs the destination already has (where it can: local stores) and fetch damaged
    #: ones again, instead of trusting their presence (a kept volume after a disk fault)
    verify_existing: bool = False

    def __post_init__(self):
        if self.manifest_format not in ("keep", "oci"):
            raise InvalidInput(f"manifest format {self.manifest_format!r} is not 'keep' or 'oci'")
        if self.concurrency < 1:
            raise InvalidInput("concurrency must be at least 1")


@dataclass
class BlobResult:
    digest: Digest
    size: int
    media_type: str
    action: str          # exists, verified, mounted, uploaded, downloaded, linked, copied
    transferred: int = 0  # bytes that crossed the network or were written

    def to_json(self) -> dict:
        return {"digest": str(self.digest), "size": self.size, "mediaType": self.media_type,
                "action": self.action, "transferred": self.transferred}


@dataclass
class CopyReport:
    source: str
    destination: str
    manifest_digest: Digest
    media_type: str
    blobs: list[BlobResult] = field(default_factory=list)
    unchanged: bool = False   #: the destination already had this exact manifest

    @property
    def bytes_transferred(self) -> int:
        return sum(b.transferred for b in self.blobs)

    def to_json(self) -> dict:
        return {"source": self.source, "destination": self.destination,
                "manifest_digest": str(self.manifest_digest), "mediaType": self.media_type,
                "bytes_transferred": self.bytes_transferred, "unchanged": self.unchanged,
                "blobs": [b.to_json() for b in self.blobs]}


def as_oci_manifest(manifest: Manifest) -> tuple[bytes, str]:
    """The same artifact under an OCI image manifest media type (Go encoding, no newline).

    For tools that refuse Docker schema 2 manifests with non-image layers (skopeo cannot read
    those at all).  Not for servers that run ``ollama pull``: ollama's client accepts only
    Docker schema 2, and Docker distribution refuses it an OCI manifest.
    """
    m = Manifest(manifest.config, manifest.layers, MT.OCI_MANIFEST, 2)
    return m.to_bytes(newline=False), MT.OCI_MANIFEST


def copy(src: Any, src_ref: Any, dst: Any, dst_ref: Any, options: Optional[CopyOptions] = None,
         **kw: Any) -> CopyReport:
    """Copy one artifact from ``src`` to ``dst``; only missing blobs move, each verified.

    ``options`` (or the same fields as keywords: ``concurrency``, ``progress``, ``manifest_format``,
    ``link_mode``, ``cancel``) say how. ``manifest_format="oci"`` rewrites the manifest's media type
    to the OCI image manifest (the blobs are unchanged; the manifest digest changes).
    """
    opts = dataclasses.replace(options, **kw) if options is not None else CopyOptions(**kw)
    src, src_ref = bind(src, src_ref)
    dst, dst_ref = bind(dst, dst_ref)
    stored = getattr(src, "fetch_stored_manifest", None)
    if stored is not None and getattr(dst, "keeps_stored_manifests", False) and opts.manifest_format == "keep":
        # between two Ollama model stores the manifest file is copied as it is, so the model keeps
        # its ID (as `ollama cp` does); everywhere else the form a registry holds is sent
        data, media_type = stored(src_ref)
    else:
        data, media_type = src.fetch_manifest(src_ref)
    return copy_manifest(src, data, media_type, dst, dst_ref, opts, source=src.describe_ref(src_ref))


def copy_manifest(src: Any, data: bytes, media_type: str, dst: Any, dst_ref: Any,
                  options: Optional[CopyOptions] = None, *, source: str = "") -> CopyReport:
    """:func:`copy` of an artifact whose manifest bytes the caller already read from ``src``."""
    opts = options or CopyOptions()
    dst, dst_ref = bind(dst, dst_ref)
    data, media_type, report, blobs = _start(data, media_type, opts.manifest_format, source or src.describe(),
                                             dst.describe_ref(dst_ref))
    if source and source == report.destination:
        # a model copied onto itself: nothing to do, and its manifest must not be rewritten (an
        # Ollama store would get the pushed form of it, and the model a new ID)
        report.blobs = [BlobResult(d.digest, d.size, d.media_type, "exists") for d in blobs]
        report.unchanged = True
        return report
    if not opts.verify_existing and _already_there(dst, dst_ref, report.manifest_digest, blobs):
        # the same manifest is already in place, so are its blobs: one check instead of a HEAD per blob
        report.blobs = [BlobResult(d.digest, d.size, d.media_type, "exists") for d in blobs]
        report.unchanged = True
        return report
    check = getattr(dst, "check_blobs", None)
    if check is not None:
        check(blobs)      # a destination's known limits (a registry's largest layer), before any byte moves
    report.blobs = move_blobs(src, dst, blobs, opts)
    # the manifest last: everything it names is now in place and verified
    dst.tag(dst_ref, data, media_type)
    return report


def plan_copy(src: Any, src_ref: Any, dst: Any, dst_ref: Any, *, manifest_format: str = "keep") -> CopyReport:
    """What :func:`copy` would do, moving nothing: each blob's action is ``exists`` or ``missing``,
    and ``unchanged`` says the destination already holds this exact manifest."""
    src, src_ref = bind(src, src_ref)
    dst, dst_ref = bind(dst, dst_ref)
    data, media_type = src.fetch_manifest(src_ref)
    _, _, report, blobs = _start(data, media_type, manifest_format, src.describe_ref(src_ref), dst.describe_ref(dst_ref))
    report.unchanged = _already_there(dst, dst_ref, report.manifest_digest, blobs)
    report.blobs = [BlobResult(d.digest, d.size, d.media_type,
                               "exists" if report.unchanged or dst.exists(d) else "missing") for d in blobs]
    return report


def move_blobs(src: Any, dst: Any, blobs: list[Descriptor], opts: CopyOptions) -> list[BlobResult]:
    """Move each blob ``dst`` lacks from ``src`` (in parallel within the budget); results in order.

    A failure of one blob lets the others finish (their bytes are kept), then raises the first.
    Ctrl-C or the cancel token stops them all between two blocks.
    """
    cancel = opts.cancel or CancelToken()
    concurrency = 1 if getattr(dst, "sequential", False) else opts.concurrency  # e.g. a tar being written
    budget = Budget(concurrency)
    lock = threading.Lock()

    def one(desc: Descriptor) -> BlobResult:
        done = [0]

        def tick(n: int) -> None:
            cancel.check()
            if opts.progress is not None:
                with lock:
                    done[0] += n
                    opts.progress(ProgressEvent("transfer", str(desc.digest), done[0], desc.size))
        budget.acquire()
        try:
            tick(0)
            source = BlobSource(src, desc, budget=budget, cancel=cancel, link_mode=opts.link_mode,
                                verify_existing=opts.verify_existing)
            action = dst.push(desc, source, progress=tick)
        finally:
            budget.release()
        moved = desc.size if action in ("uploaded", "downloaded", "copied") else 0
        if not moved and opts.progress is not None:
            with lock:   # nothing moved (already there, mounted, linked): out of the totals
                opts.progress(ProgressEvent("transfer", str(desc.digest), 0, 0))
        return BlobResult(desc.digest, desc.size, desc.media_type, action, moved)

    if not blobs:
        return []
    if opts.progress is not None:
        # the whole plan up front: a total that grows as blobs start makes every early ETA too short
        for d in blobs:
            opts.progress(ProgressEvent("transfer", str(d.digest), 0, d.size))
    ex = ThreadPoolExecutor(max_workers=min(concurrency, len(blobs)), thread_name_prefix="ollama-oci-blob")
    futures = [ex.submit(one, d) for d in blobs]
    results: list[BlobResult] = []
    try:
        errors: list[Exception] = []
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # the others finish (their bytes are kept), then the first failure
                errors.append(e)
        if errors:
            raise errors[0]
    except BaseException as e:
        # Ctrl-C lands here, in the calling thread: tell every worker, and wait only for them to
        # notice (they check between blocks), not for their blobs to finish
        cancel.cancel()
        if isinstance(e, KeyboardInterrupt):
            INTERRUPTED.set()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return results


def _start(data: bytes, media_type: str, manifest_format: str, source: str, destination: str):
    """The manifest bytes to write (re-encoded for ``manifest_format="oci"``), their media type, an
    empty report, and the blobs to move (a blob listed twice moves once)."""
    manifest = parse_manifest(data)
    if manifest_format == "oci":
        data, media_type = as_oci_manifest(manifest)
    report = CopyReport(source, destination, digest_bytes(data), media_type)
    return data, media_type, report, list(dict.fromkeys(manifest.blobs))


def _already_there(dst: Any, dst_ref: Any, digest: Digest, blobs: list[Descriptor]) -> bool:
    try:
        # a registry is asked with the push scope, so one token serves the whole push
        resolve = getattr(dst, "resolve_for_push", None) or dst.resolve
        if resolve(dst_ref).digest != digest:
            return False
        # a local store's blobs cost a stat each: check them; a registry keeps a manifest's blobs
        if getattr(dst, "checks_blobs_cheaply", False):
            return all(dst.exists(d) for d in blobs)
        return True
    except Exception:  # not there, or unreadable: copy as usual
        return False

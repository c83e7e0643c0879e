"""The store contract: what every place that holds models offers, and what a copy hands a store.

A **store** holds artifacts (a manifest, a config blob, layer blobs addressed by digest). Every
store, the Ollama model store, an OCI layout, a registry repository, offers the same small
interface, in the spirit of oras-go's ``Target`` and go-containerregistry's remote/layout:

========================================  ===========================================================
``describe() -> str``                     where it is, for messages (``ollama:/root/.ollama/models``)
``describe_ref(ref) -> str``              a reference of this store, for messages
``resolve(ref) -> Descriptor``            the manifest a reference names (``NotFound`` if none)
``fetch_manifest(ref) -> (bytes, str)``   the manifest bytes to copy, and their media type
``fetch(desc, offset=0, length=None)``    a blob as a binary stream (the caller closes it)
``exists(desc) -> bool``                  whether the blob is there, whole
``push(desc, source, *, progress)``       put a blob from a :class:`BlobSource`; returns what it did
``tag(ref, data, media_type) -> Digest``  put a manifest under a reference (its blobs must be there)
``list_refs() -> list``                   the references it holds
``delete(ref)``                           remove a reference
========================================  ===========================================================

References are the store's own kind: a :class:`~ollama_oci.names.ModelName` for local stores, a
tag or digest for a registry repository. A store that stands for many repositories (a whole
registry) offers ``bind(ref) -> (store, ref)`` to give the repository a reference lives in.

Optional capabilities are found by asking (``getattr``), never by the store's class:

* ``local_path(desc) -> str | None``: a file that holds the blob, so a local destination can link or
  reflink it and an upload can stream it with a known length;
* ``mount_origin() -> (registry, repository) | None``: where a blob of this store can be mounted from
  without moving its bytes (a destination in the same registry mounts it);
* ``checks_blobs_cheaply``: ``exists`` costs a ``stat``, not a request, so a copy may check every blob
  of an unchanged manifest;
* ``push_stream(chunks)``: take content whose digest is known only at its end (a volume layer);
* ``stage_stream(f, desc)``: take a blob out of sight, to commit later (all-or-nothing imports);
* ``sequential``: take one blob at a time (a tar being written);
* ``resolve_for_push(ref)``: resolve with push rights (one registry token serves a whole push);
* ``check_blobs(descriptors)``: refuse, before anything moves, blobs the store cannot take (a
  registry's largest layer);
* ``fetch_stored_manifest(ref)`` with ``keeps_stored_manifests``: between two Ollama model stores the
  manifest file is copied as it is, so the model keeps its ID.

Resumable partial writes belong to the stores that write files (:mod:`.partial`), not to the engine.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO, Callable, Optional, Protocol

from ..cancel import CancelToken
from ..digest import Digest
from ..spec import Descriptor

__all__ = ["Store", "BlobSource", "Budget", "CancelToken", "RangeNotSupported", "bind", "ProgressFn"]

#: a blob's progress: bytes moved since the last call (negative: a retry rolled back)
ProgressFn = Optional[Callable[[int], None]]


class Store(Protocol):
    """The contract (for type checkers and readers; stores do not inherit from it)."""

    def describe(self) -> str: ...
    def describe_ref(self, ref: Any) -> str: ...
    def resolve(self, ref: Any) -> Descriptor: ...
    def fetch_manifest(self, ref: Any) -> tuple[bytes, str]: ...
    def fetch(self, desc: Descriptor, offset: int = 0, length: Optional[int] = None) -> BinaryIO: ...
    def exists(self, desc: Descriptor) -> bool: ...
    def push(self, desc: Descriptor, source: "BlobSource", *, progress: ProgressFn = None) -> str: ...
    def tag(self, ref: Any, data: bytes, media_type: str) -> Digest: ...
    def list_refs(self) -> list: ...
    def delete(self, ref: Any) -> None: ...


class RangeNotSupported(Exception):
    """A store was asked for part of a blob and can only serve all of it (a server ignoring Range)."""


class Budget:
    """How many transfers (blobs and the parts of a blob together) may run at once.

    A copy holds one slot per blob it moves; a destination that fetches a large blob in parallel
    byte ranges takes further slots only while some are free, so ``--concurrency 4`` means four
    connections, not four blobs of four parts each.
    """

    def __init__(self, size: int):
        self.size = max(1, size)
        self._sem = threading.BoundedSemaphore(self.size)

    def acquire(self) -> None:
        self._sem.acquire()

    def try_acquire(self) -> bool:
        return self._sem.acquire(blocking=False)

    def release(self) -> None:
        self._sem.release()


class BlobSource:
    """One blob of a source store, as a destination's ``push`` sees it.

    ``open(offset, length)`` streams it (from the source store's ``fetch``); ``local_path`` and
    ``mount_origin`` say whether it can be linked or mounted instead; ``budget`` bounds the extra
    parallel streams a destination may open for it; ``cancel`` is checked between blocks.
    """

    def __init__(self, store: Any, desc: Descriptor, *, budget: Optional[Budget] = None,
                 cancel: Optional[CancelToken] = None, link_mode: str = "auto",
                 verify_existing: bool = False):
        self.store = store
        self.desc = desc
        self.budget = budget
        self.cancel = cancel
        self.link_mode = link_mode   # how a local destination takes a local file (auto/reflink/hardlink/copy)
        self.verify_existing = verify_existing  # re-hash a blob the destination has before trusting it

    def open(self, offset: int = 0, length: Optional[int] = None) -> BinaryIO:
        if self.cancel is not None:
            self.cancel.check()
        return self.store.fetch(self.desc, offset, length)

    @property
    def local_path(self) -> Optional[str]:
        fn = getattr(self.store, "local_path", None)
        return fn(self.desc) if fn is not None else None

    @property
    def mount_origin(self) -> Optional[tuple[str, str]]:
        fn = getattr(self.store, "mount_origin", None)
        return fn() if fn is not None else None


def bind(store: Any, ref: Any) -> tuple[Any, Any]:
    """The store a reference lives in, and the reference as that store takes it (a registry gives
    the repository a reference names; other stores are their own)."""
    fn = getattr(store, "bind", None)
    return fn(ref) if fn is not None else (store, ref)

"""Content digests: validation, streaming hashing, verification.

A digest is always ``sha256:<64 lowercase hex>`` in memory.  Ollama's file names
use ``sha256-<hex>``; :func:`parse_digest` accepts both spellings, and nothing
else, before any path is built from one.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import BinaryIO, Callable, Optional

from .errors import InvalidDigest, VerificationError

__all__ = [
    "Digest",
    "parse_digest",
    "digest_bytes",
    "hash_file",
    "hash_stream",
    "CHUNK",
]

#: read size for hashing and copying: large enough that hashlib (which releases the
#: GIL above 2 KiB) runs at memory speed, small enough to keep memory flat.
CHUNK = 1 << 20

_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})\Z")

ProgressFn = Optional[Callable[[int], None]]


class Digest(str):
    """A validated ``sha256:<hex>`` string."""

    __slots__ = ()

    @property
    def hex(self) -> str:
        return self[7:]

    @property
    def filename(self) -> str:
        """Ollama's blob file name, ``sha256-<hex>``."""
        return "sha256-" + self[7:]

    @property
    def short(self) -> str:
        """The 12-character form ``ollama list`` shows."""
        return self[7:19]


def parse_digest(value: str) -> Digest:
    """Validate ``sha256:<hex>`` or ``sha256-<hex>`` and return the canonical :class:`Digest`."""
    if isinstance(value, Digest):
        return value
    if not isinstance(value, str):
        raise InvalidDigest(f"invalid digest {value!r}: expected a string 'sha256:<64 hex>'")
    m = _DIGEST.match(value)
    if not m:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidDigest(
            f"invalid digest {shown!r}: expected 'sha256:' followed by 64 lowercase hex characters"
        )
    return Digest("sha256:" + m.group(1))


def digest_bytes(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def hash_stream(src: BinaryIO, *, progress: ProgressFn = None, sink: Optional[BinaryIO] = None,
                limit: Optional[int] = None) -> tuple[Digest, int]:
    """Hash ``src`` to its end (or ``limit`` bytes), optionally writing every byte to ``sink``.

    One pass, one reusable buffer: memory stays flat whatever the size.
    """
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    readinto = getattr(src, "readinto", None)
    while limit is None or total < limit:
        want = CHUNK if limit is None else min(CHUNK, limit - total)
        if readinto is not None:
            n = readinto(view[:want])
            chunk = view[:n] if n else None
        else:
            data = src.read(want)
            n = len(data)
            chunk = data
        if not n:
            break
        h.update(chunk)
        if sink is not None:
            sink.write(chunk)
        total += n
        if progress is not None:
            progress(n)
    return Digest("sha256:" + h.hexdigest()), total


def hash_file(path: str | os.PathLike, *, progress: ProgressFn = None) -> tuple[Digest, int]:
    """sha256 and size of a file, read once in fixed-size chunks."""
    with open(path, "rb", buffering=0) as f:
        return hash_stream(f, progress=progress)


def check(expected: Digest, actual: Digest, *, expected_size: int | None = None,
          actual_size: int | None = None, what: str = "blob") -> None:
    """Raise :class:`VerificationError` unless digest (and size, when known) agree."""
    if expected_size is not None and actual_size is not None and expected_size != actual_size:
        raise VerificationError(
            f"{what} {expected}: size mismatch, expected {expected_size} bytes, got {actual_size}; "
            "the copy is damaged or incomplete, fetch or pack it again",
            expected=expected, actual=actual,
        )
    if expected != actual:
        raise VerificationError(
            f"{what} digest mismatch: expected {expected}, got {actual}; "
            "the copy is damaged, fetch or pack it again",
            expected=expected, actual=actual,
        )

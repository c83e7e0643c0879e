"""One progress event type for every long operation (copy, pack, export, import, verify).

A callback takes a :class:`ProgressEvent`; the CLI draws bars from them (on a terminal only),
a library caller may log or aggregate them. Events for one blob arrive from the thread moving it,
so a callback must be thread-safe (the CLI's takes a lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["ProgressEvent", "ProgressCallback"]


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` bytes of one blob in one phase.

    ``phase`` says what is happening: ``transfer`` (bytes moving: upload, download, copy into a
    store or a bundle), ``hash`` (reading to verify or to learn a digest).

    A copy announces each blob with ``done=0`` before the first byte moves (the whole plan), and a
    blob that turns out to need no move (already there, mounted, linked) gets ``done=0, total=0``:
    keep the latest event per digest and sum them.
    """

    phase: str
    digest: str       # the blob's digest ("sha256:..."), or a file name while its digest is unknown
    done: int
    total: int

    @property
    def label(self) -> str:
        """A short name for a bar: the digest's first 12 hex characters, or the file name."""
        return self.digest[7:19] if self.digest.startswith("sha256:") else self.digest


ProgressCallback = Optional[Callable[[ProgressEvent], None]]

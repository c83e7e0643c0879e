"""Stopping long work: a cancel token per copy, and the process-wide interrupt flag.

A :class:`CancelToken` is set by whoever wants a copy to stop (a library caller's UI, a signal
handler); workers check it between blocks and raise :class:`~ollama_oci.errors.Cancelled`.
:data:`INTERRUPTED` is set when Ctrl-C reaches the calling thread, so that every worker of the
process, including one sleeping before a retry, stops within a block or a moment.
"""

from __future__ import annotations

import threading

from .errors import Cancelled

__all__ = ["CancelToken", "INTERRUPTED", "interruptible_sleep"]

#: set once Ctrl-C reached the process: nothing more should start or wait
INTERRUPTED = threading.Event()


class CancelToken:
    """Set once to stop a copy: every worker checks it between blocks and raises Cancelled.

    A library caller keeps one and calls :meth:`cancel` from any thread; the copy leaves its
    resumable state (partial downloads) behind for the next run.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or INTERRUPTED.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("interrupted; run the same command again to resume")


def interruptible_sleep(seconds: float) -> None:
    """Sleep, but stop at once (raising Cancelled) when the process is interrupted."""
    if INTERRUPTED.wait(seconds):
        raise Cancelled("interrupted; run the same command again to resume")

"""Counters for ``/metrics`` (Prometheus text format), kept in the event loop's thread."""

from __future__ import annotations

import collections
import threading

__all__ = ["Metrics"]

PREFIX = "ollama_oci_gateway_"

_HELP = {
    "requests_total": "HTTP requests answered, by method and status code",
    "bytes_sent_total": "blob bytes streamed from upstream or the cache (sendfile bytes are not counted)",
    "blob_gets_total": "blob GET requests",
    "cache_hits_total": "blob requests served from the pull-through cache",
    "cache_misses_total": "blob requests that waited for an upstream fill",
    "cache_evictions_total": "cached blobs removed to stay under the size cap",
    "upstream_fetches_total": "blob fetches started against an upstream registry",
    "upstream_errors_total": "upstream requests that failed (including digest mismatches)",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: "collections.Counter[str]" = collections.Counter()
        self.requests: "collections.Counter[tuple[str, int]]" = collections.Counter()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    add = inc

    def request(self, method: str, status: int, sent: int) -> None:
        with self._lock:
            self.requests[(method, status)] += 1

    def render(self, gauges: dict) -> str:
        out = []
        with self._lock:
            out += [f"# HELP {PREFIX}requests_total {_HELP['requests_total']}", f"# TYPE {PREFIX}requests_total counter"]
            for (method, status), n in sorted(self.requests.items()):
                out.append(f'{PREFIX}requests_total{{method="{method}",code="{status}"}} {n}')
            for name, help_ in _HELP.items():
                if name == "requests_total":
                    continue
                out += [f"# HELP {PREFIX}{name} {help_}", f"# TYPE {PREFIX}{name} counter",
                        f"{PREFIX}{name} {self.counters.get(name, 0)}"]
        for name, v in gauges.items():
            out += [f"# TYPE {PREFIX}{name} gauge", f"{PREFIX}{name} {v}"]
        return "\n".join(out) + "\n"

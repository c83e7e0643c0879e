"""HTTP for the registry client, on urllib3: pooled connections, TLS, proxies, streamed bodies.

This is the layer under :class:`~ollama_oci.transport.http.RegistryClient`. It sends one request
and hands back a streaming response; retries, redirects and auth live above it. urllib3 does the
protocol: connections and keep-alive pools, message framing (within http.client's bounds: 64 KiB
per header line, 100 headers), TLS, ``CONNECT`` tunnels through http and https proxies, and
incremental decoding of compressed bodies. This module only chooses and configures it:

* one pool manager per proxy (``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, see :mod:`.proxy`),
  so a CIDR ``NO_PROXY`` works as Kubernetes users expect;
* TLS: the system trust store (OpenSSL honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``) plus the
  bundles in ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` plus the CA files given, or no
  verification; a client certificate for mutual TLS;
* uploads of a file region stream in 1 MiB blocks (:class:`FileBody`), never whole in memory;
* failures become :class:`NetworkError` (``unreachable`` set when retrying cannot help: a name
  that does not resolve, a refused connection on a loopback address) or :class:`TLSError`
  (certificates: permanent), so the caller's retry policy has few cases.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Optional, Union

if TYPE_CHECKING:
    import ssl

from .proxy import proxy_for, redact_proxy

__all__ = ["HTTP", "Response", "FileBody", "NetworkError", "TLSError", "BLOCK"]

#: bytes read or sent per call when streaming
BLOCK = 1 << 20
#: a response body left unread up to this size is drained so its connection can be reused
_DRAIN_MAX = 64 << 10
#: connections kept per destination
_POOL_MAX = 32

#: CA bundles users already point other HTTP clients at (requests, curl); trusted in addition
#: to the system store (OpenSSL itself honours SSL_CERT_FILE and SSL_CERT_DIR)
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class NetworkError(Exception):
    """The connection failed, timed out or ended early.

    ``unreachable`` is set when the same request cannot succeed soon: the host name does not
    resolve, or a loopback address refuses the connection (nothing listens on that port)."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class TLSError(Exception):
    """A certificate or TLS setup problem: retrying cannot fix it."""


Body = Union[None, bytes, "FileBody"]


class FileBody:
    """``length`` bytes of a file from ``offset``, read in blocks as the upload goes.

    ``opener`` is called on the first read (so a retried request gets a fresh file); ``tick(n)``
    is told each block sent. A source shorter than announced is an error, never a short upload.
    """

    def __init__(self, opener: Callable[[], BinaryIO], offset: int, length: int,
                 tick: Optional[Callable[[int], None]] = None):
        self.opener, self.offset, self.length, self.tick = opener, offset, length, tick
        self._f: Optional[BinaryIO] = None
        self._left = length

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            self.close()
            return b""
        if self._f is None:
            self._f = self.opener()
            if self.offset:
                self._f.seek(self.offset)
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(want)
        if not data:
            self.close()
            from ..errors import InvalidInput
            raise InvalidInput(f"the source ended {self._left} bytes before the announced {self.length}: it "
                               "changed while being uploaded")
        self._left -= len(data)
        if self.tick is not None:
            self.tick(len(data))
        return data

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()


class Response:
    """A streaming response: ``status_code``, ``reason``, ``headers`` (case-insensitive), ``url``."""

    def __init__(self, raw: Any, method: str, url: str):
        self.raw = raw
        self.method = method
        self.url = url
        self.status_code: int = raw.status
        self.reason: str = raw.reason or ""
        self.headers = raw.headers

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all of it for ``n < 0``): never more than asked, also
        for a compressed body."""
        import urllib3
        try:
            return self.raw.read(None if n is None or n < 0 else n, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise NetworkError(f"reading the response from {_where(self.url)} failed: {_reason(e)}") from None

    def read_some(self, n: int = BLOCK) -> bytes:
        """Whatever of the body is there now, up to ``n`` bytes (b"" at its end): a caller that watches
        progress (a stall rule) is not held until ``n`` bytes trickle in."""
        import urllib3
        try:
            return self.raw.read1(n, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise NetworkError(f"reading the response from {_where(self.url)} failed: {_reason(e)}") from None

    def json(self, limit: int = 4 << 20) -> Any:
        """The body as JSON; ValueError if it is larger than ``limit`` bytes or not JSON."""
        data = self.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"response body larger than {limit} bytes")
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("response JSON nested too deeply") from None

    def close(self) -> None:
        """Release the connection: kept alive when at most a small body is left unread."""
        raw = self.raw
        left = raw.length_remaining
        try:
            if self.method == "HEAD" or (left is not None and left <= _DRAIN_MAX):
                raw.drain_conn()
            else:
                raw.close()
        except Exception:
            raw.close()
        raw.release_conn()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HTTP:
    """Pooled HTTP/1.1 connections with one TLS configuration."""

    def __init__(self, *, verify: bool = True, cafiles: Optional[list[str]] = None,
                 cert: Union[None, str, tuple[str, str]] = None, pool_max: int = _POOL_MAX):
        self.verify = verify
        self.cafiles = list(cafiles or ())   # trusted in addition to the default trust
        self.cert = cert
        self.pool_max = pool_max
        self._ctx: Optional[ssl.SSLContext] = None
        self._managers: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # -- TLS ------------------------------------------------------------------------------------
    def ssl_context(self) -> "ssl.SSLContext":
        """The TLS configuration, made on first use (plain http never builds it)."""
        with self._lock:
            if self._ctx is None:
                self._ctx = self._make_context()
            return self._ctx

    def _make_context(self) -> "ssl.SSLContext":
        import ssl
        try:
            if not self.verify:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                import urllib3  # the user asked for it; one warning per request would drown the output
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            else:
                # the default trust, plus what was given: as docker and podman add a registry's
                # CAs to the system's (a private registry may redirect to S3)
                ctx = ssl.create_default_context()
                default = ssl.get_default_verify_paths().cafile
                _add_env_bundles(ctx, skip={os.path.realpath(default)} if default else set())
                for path in self.cafiles:
                    ctx.load_verify_locations(cafile=path)
            if self.cert:
                certfile, keyfile = self.cert if isinstance(self.cert, tuple) else (self.cert, None)
                ctx.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as e:
            raise TLSError(f"cannot load the TLS files ({e}); check --ca-file, --cert and --key "
                           "(and the registry's certs.d directory)") from None
        return ctx

    # -- pools ------------------------------------------------------------------------------------
    def _manager(self, https: bool, proxy: Optional[urllib.parse.SplitResult]) -> Any:
        key = (https, proxy.geturl() if proxy is not None else None)
        m = self._managers.get(key)
        if m is not None:
            return m
        import urllib3
        kw: dict[str, Any] = {"num_pools": 16, "maxsize": self.pool_max, "block": False, "blocksize": BLOCK}
        if https:
            kw["ssl_context"] = self.ssl_context()
        if proxy is None:
            m = urllib3.PoolManager(**kw)
        else:
            headers = None
            if proxy.username is not None:
                user = urllib.parse.unquote(proxy.username)
                pw = urllib.parse.unquote(proxy.password or "")
                headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{pw}")
            port = proxy.port or (443 if proxy.scheme == "https" else 80)
            host = f"[{proxy.hostname}]" if ":" in (proxy.hostname or "") else proxy.hostname
            m = urllib3.ProxyManager(f"{proxy.scheme}://{host}:{port}", proxy_headers=headers,
                                     proxy_ssl_context=self.ssl_context() if proxy.scheme == "https" else None,
                                     **kw)
        with self._lock:
            return self._managers.setdefault(key, m)

    # -- one request --------------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: Optional[dict] = None, body: Body = None,
                timeout: tuple[float, float] = (15.0, 300.0)) -> Response:
        """Send one request (no redirects followed, no retries) and return the response, body unread."""
        from ..errors import OllamaOCIError, RegistryError
        try:  # the URL may come from a server (a redirect's Location): check it before use
            u = urllib.parse.urlsplit(url)
            scheme = u.scheme.lower()
            port = u.port or (443 if scheme == "https" else 80)
            host = u.hostname
        except ValueError:
            scheme, host, port = "", None, 0
        if scheme not in ("http", "https") or not host:
            raise RegistryError("refusing to follow an invalid or non-HTTP URL "
                                f"({scheme + '://…' if scheme else 'unparseable'}) given by the server")
        proxy = proxy_for(scheme, host, port)
        import urllib3
        h = {"Accept-Encoding": "identity"}
        h.update(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in h):
            h["Content-Length"] = str(len(body))
        try:
            pm = self._manager(scheme == "https", proxy)
            raw = pm.urlopen(method, url, body=body, headers=h, redirect=False, retries=False,
                             preload_content=False, decode_content=True, assert_same_host=False,
                             timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        except (OllamaOCIError, TLSError):
            raise
        except ValueError:  # a URL or header http.client will not send (control characters)
            # (the value itself is not shown: it may be a token or a presigned signature)
            raise RegistryError(f"refusing to send a request to {_where(url)}: a URL or header value with "
                                "control characters or non-Latin-1 text") from None
        except Exception as e:
            if isinstance(body, FileBody):
                body.close()
            raise _classify(e, host, port, proxy) from None
        return Response(raw, method, url)


def _classify(e: BaseException, host: str, port: int, proxy: Optional[urllib.parse.SplitResult]) -> Exception:
    """A urllib3 (or socket) failure as NetworkError, TLSError or a permanent RegistryError."""
    import ssl

    import urllib3.exceptions as ue

    from ..errors import RegistryError
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(e, ue.ProxyError):
        inner = e.original_error if hasattr(e, "original_error") else (e.args[1] if len(e.args) > 1 else e)
        text = str(inner)
        if "Tunnel connection failed" in text and proxy is not None:
            answer = text.split("Tunnel connection failed:", 1)[1].strip()[:200]
            msg = f"the proxy {redact_proxy(proxy)} refused a tunnel to {where} ({answer})"
            if answer.startswith("407"):
                msg += ("; it wants credentials: " + ("check the ones in the proxy URL" if proxy.username else
                        "put them in the proxy URL (http://user:password@host:port)"))
            return RegistryError(msg)
        if isinstance(inner, BaseException) and _ssl_error(inner) is not None:
            return TLSError(f"TLS with the proxy {redact_proxy(proxy) if proxy else ''} failed: "
                            f"{_tls_reason(_ssl_error(inner))}")
        return NetworkError(f"cannot connect to the proxy {redact_proxy(proxy) if proxy else ''}: "
                            f"{_reason(inner if isinstance(inner, BaseException) else e)}")
    se = _ssl_error(e)
    if se is not None:
        if isinstance(se, ssl.SSLCertVerificationError) or _permanent_tls(se):
            return TLSError(_tls_reason(se))
        return NetworkError(f"TLS connection to {where} failed: {_tls_reason(se)}")
    if isinstance(e, ue.NameResolutionError) or isinstance(e.__cause__, __import__("socket").gaierror):
        return NetworkError(f"cannot resolve the host name {host!r}: check the registry's name", unreachable=True)
    if isinstance(e, ue.NewConnectionError):
        cause = e.__cause__ or e.__context__
        refused = isinstance(cause, ConnectionRefusedError) or "refused" in str(e).lower()
        if refused:
            return NetworkError(f"connection refused by {where}: nothing listens there; check the host and port",
                                unreachable=_is_loopback(host))
        return NetworkError(f"cannot connect to {where}: {_reason(cause or e)}")
    if isinstance(e, ue.ConnectTimeoutError):  # after NewConnectionError, which urllib3 derives from it
        return NetworkError(f"connecting to {where} timed out")
    if isinstance(e, ue.ReadTimeoutError):
        return NetworkError(f"{where} did not answer in time")
    return NetworkError(f"request to {where} failed: {_reason(e)}")


def _is_loopback(host: str) -> bool:
    import ipaddress
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ssl_error(e: BaseException) -> Optional[BaseException]:
    """The ssl.SSLError behind a urllib3 error, if any (it may be wrapped a few times)."""
    import ssl
    todo, seen = [e], set()
    while todo and len(seen) < 16:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            return cur
        todo.extend(x for x in (cur.__cause__, cur.__context__, getattr(cur, "reason", None),
                                getattr(cur, "original_error", None), *getattr(cur, "args", ()))
                    if isinstance(x, BaseException))
    return None


def _add_env_bundles(ctx: "ssl.SSLContext", skip: set) -> None:
    """Load the CA bundles the environment names, each once, except the real paths in ``skip``."""
    import ssl
    for var in CA_BUNDLE_VARS:
        path = os.environ.get(var)
        if not path:
            continue
        real = os.path.realpath(path)
        if real in skip and os.path.exists(real):
            continue
        skip.add(real)
        try:
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise TLSError(f"${var} names {path!r}, which is not a readable PEM CA bundle ({e}); "
                           f"fix or unset it, or give --ca-file") from None


def _where(url: str) -> str:
    try:
        u = urllib.parse.urlsplit(url)
        return (u.hostname or "?") + (f":{u.port}" if u.port else "")
    except ValueError:
        return "<url>"


def _reason(e: BaseException) -> str:
    """A short human reason for a network failure (urllib3 wraps the real one, often twice)."""
    import http.client
    import socket
    for _ in range(4):  # unwrap ProtocolError('Connection aborted.', inner) and causes
        inner = next((a for a in getattr(e, "args", ()) if isinstance(a, BaseException)), None)
        inner = inner or e.__cause__
        if inner is None or inner is e:
            break
        e = inner
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(e, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(e, ConnectionResetError):
        return "the connection was reset"
    if isinstance(e, BrokenPipeError):
        return "the server closed the connection"
    if isinstance(e, http.client.IncompleteRead) or type(e).__name__ == "IncompleteRead":
        return "the response ended early"
    s = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(s)[:200]


def _permanent_tls(e: BaseException) -> bool:
    """A TLS alert about certificates: the peer will say the same on every try."""
    r = (getattr(e, "reason", None) or str(e)).upper()
    return "ALERT" in r and ("CERTIFICATE" in r or "UNKNOWN_CA" in r)


def _tls_reason(e: BaseException) -> str:
    return str(getattr(e, "verify_message", None) or getattr(e, "reason", None) or e or "TLS error")[:200]

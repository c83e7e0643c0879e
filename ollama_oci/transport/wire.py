"""HTTP/1.1 on the standard library: pooled connections, proxies, TLS and streamed bodies.

This is the layer under :class:`~ollama_oci.transport.http.RegistryClient`. It sends one
request and hands back a streaming response; retries, redirects and auth live above it.

Why not requests (docs/design.md): importing it costs ~70 ms at every start of the CLI
(more than the rest of a no-op push together), its ``REQUESTS_CA_BUNDLE`` silently
overrides an explicit ``verify``, and it cannot hand a file to the kernel.  Here:

* an upload of a file region goes out with ``sendfile(2)`` on plain connections (the bytes
  never enter Python), and in 1 MiB reads with ``sendall`` over TLS;
* connections are kept alive per (scheme, host, port, proxy) and checked before reuse;
* ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` are honoured (``CONNECT``
  tunnels for https, absolute-form requests for http, credentials in the proxy URL);
* TLS: the system trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured by OpenSSL) plus the
  bundles in ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` plus any CA files given, or no
  verification; a client certificate for mutual TLS;
* network failures become :class:`NetworkError` (temporary) and certificate or handshake
  failures :class:`TLSError` (permanent), so the caller's retry policy has two cases only.
"""

from __future__ import annotations

import base64
import http.client
import os
import select
import socket
import ssl
import threading
import urllib.parse
import zlib
from typing import Any, BinaryIO, Callable, Iterable, Optional, Union

__all__ = ["HTTP", "Response", "FileRegion", "NetworkError", "TLSError", "Headers"]

#: bytes read or sent per call when streaming through Python
BLOCK = 1 << 20
#: a response body left unread up to this size is drained so its connection can be reused
_DRAIN_MAX = 64 << 10
#: idle connections kept per destination
_POOL_MAX = 32
#: bytes handed to one sendfile call (progress is reported between calls)
_SENDFILE_SLICE = 8 << 20


class NetworkError(Exception):
    """The connection failed, timed out or ended early: worth retrying."""


class TLSError(Exception):
    """The TLS handshake failed (untrusted or mismatched certificate, protocol): not worth retrying."""


class Headers:
    """Response headers, case-insensitive; repeated headers are joined with ``", "`` (RFC 9110)."""

    __slots__ = ("_d",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        d: dict[str, str] = {}
        for k, v in items:
            k = k.lower()
            d[k] = f"{d[k]}, {v}" if k in d else v
        self._d = d

    def get(self, name: str, default: Any = None) -> Any:
        return self._d.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"


class FileRegion:
    """A request body: ``length`` bytes of a file from ``offset``, opened anew for every try.

    On a plain socket a regular file goes out with ``sendfile(2)``; anything else (TLS,
    a pipe, a streamed response standing in for a file) in 1 MiB reads.  ``progress(n)`` is
    told the bytes sent as they go.
    """

    def __init__(self, opener: Callable[[], BinaryIO], offset: int, length: int,
                 progress: Optional[Callable[[int], None]] = None):
        self.opener, self.offset, self.length, self.progress = opener, offset, length, progress

    def __len__(self) -> int:
        return self.length

    def send_to(self, sock: socket.socket) -> None:
        f = self.opener()
        try:
            if not isinstance(sock, ssl.SSLSocket) and _is_regular_file(f):
                sent = self._sendfile(sock, f)
            else:
                sent = self._copy(sock, f)
        finally:
            f.close()
        if sent != self.length:
            from ..errors import InvalidInput
            raise InvalidInput(f"the source ended after {sent} of {self.length} bytes; "
                               "it changed while being uploaded")

    def _sendfile(self, sock: socket.socket, f) -> int:
        pos, end = self.offset, self.offset + self.length
        while pos < end:
            n = sock.sendfile(f, pos, min(_SENDFILE_SLICE, end - pos))
            if n <= 0:
                break
            pos += n
            if self.progress is not None:
                self.progress(n)
        return pos - self.offset

    def _copy(self, sock: socket.socket, f) -> int:
        if self.offset:
            f.seek(self.offset)
        left = self.length
        while left > 0:
            chunk = f.read(min(BLOCK, left))
            if not chunk:
                break
            sock.sendall(chunk)
            left -= len(chunk)
            if self.progress is not None:
                self.progress(len(chunk))
        return self.length - left


def _is_regular_file(f) -> bool:
    try:
        import stat
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


Body = Union[None, bytes, FileRegion]


class Response:
    """A response whose body is read as it is needed; :meth:`close` returns the connection."""

    def __init__(self, raw: http.client.HTTPResponse, url: str, release: Callable[[bool], None]):
        self._raw = raw
        self._release = release
        self._closed = False
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason or ""
        self.headers = Headers(raw.getheaders())
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        # we ask for identity; a server that compresses anyway is still understood
        self._dec = (zlib.decompressobj(16 + zlib.MAX_WBITS) if enc in ("gzip", "x-gzip") else
                     zlib.decompressobj() if enc == "deflate" else None)
        self._decoded = bytearray()   # decoded bytes not yet returned
        self._decoded_eof = False

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the (decoded) body; fewer only at its end. ``n < 0``: all of it."""
        if n is None or n < 0:
            parts = []
            while True:
                b = self.read(BLOCK)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        try:
            if self._dec is None:
                return self._raw.read(n)
            return self._read_decoded(n)
        except (OSError, http.client.HTTPException, ValueError, zlib.error) as e:
            raise NetworkError(f"reading the response failed: {type(e).__name__}") from None

    def _read_decoded(self, n: int) -> bytes:
        # decompress at most what is asked for (a small body cannot expand without bound in memory)
        buf, dec = self._decoded, self._dec
        while len(buf) < n and not self._decoded_eof:
            src = dec.unconsumed_tail or self._raw.read(BLOCK)
            if not src:
                buf += dec.flush()
                self._decoded_eof = True
                break
            buf += dec.decompress(src, n - len(buf))
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def iter_content(self, size: int = BLOCK):
        while True:
            b = self.read(size)
            if not b:
                return
            yield b

    def json(self, limit: int = 4 << 20) -> Any:
        """The body parsed as JSON, refused (ValueError) beyond ``limit`` bytes."""
        import json
        data = self.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"response body larger than {limit} bytes")
        return json.loads(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        raw = self._raw
        reusable = False
        try:
            if not raw.will_close and self._dec is None:
                if raw.fp is not None and (raw.chunked or (raw.length or 0) <= _DRAIN_MAX):
                    raw.read(_DRAIN_MAX)  # a small unread remainder: drain it, keep the connection
                reusable = raw.fp is None
        except Exception:
            reusable = False
        raw.close()
        self._release(reusable)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                self._raw.close()
                self._release(False)
        except Exception:
            pass


class HTTP:
    """Pooled HTTP/1.1 connections with one TLS configuration."""

    def __init__(self, *, verify: bool = True, cafiles: Iterable[str] = (),
                 cert: Union[None, str, tuple[str, str]] = None, pool_max: int = _POOL_MAX):
        self.verify = verify
        self.cafiles = list(cafiles)   # trusted in addition to the default trust
        self.cert = cert
        self.pool_max = pool_max
        self._ctx: Optional[ssl.SSLContext] = None
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    # -- TLS ------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ctx is None:
                try:
                    if not self.verify:
                        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                    else:
                        # the default trust, plus what was given: as docker and podman add a
                        # registry's CAs to the system's (a private registry may redirect to S3)
                        ctx = ssl.create_default_context()
                        _add_env_bundles(ctx)
                        for path in self.cafiles:
                            ctx.load_verify_locations(cafile=path)
                    if self.cert:
                        certfile, keyfile = self.cert if isinstance(self.cert, tuple) else (self.cert, None)
                        ctx.load_cert_chain(certfile, keyfile)
                except (OSError, ssl.SSLError) as e:
                    raise TLSError(f"cannot load the TLS files ({e}); check --ca-file, --cert and --key "
                                   "(and the registry's certs.d directory)") from None
                ctx.set_alpn_protocols(["http/1.1"])
                self._ctx = ctx
            return self._ctx

    # -- connections ------------------------------------------------------------------------------
    def _new_conn(self, scheme: str, host: str, port: int, proxy: Optional[urllib.parse.SplitResult],
                  connect_timeout: float) -> http.client.HTTPConnection:
        if proxy is not None and scheme == "https":
            # a CONNECT tunnel through the proxy; http.client starts TLS inside it, checking
            # the registry's certificate and name, not the proxy's
            conn = http.client.HTTPSConnection(proxy.hostname, proxy.port or 80, timeout=connect_timeout,
                                               context=self.ssl_context())
            conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
        elif proxy is not None:
            conn = http.client.HTTPConnection(proxy.hostname, proxy.port or 80, timeout=connect_timeout)
        elif scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        return conn

    def _take(self, key: tuple) -> Optional[http.client.HTTPConnection]:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if _alive(conn):
                    return conn
                conn.close()
        return None

    def _give(self, key: tuple, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable and conn.sock is not None:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.pool_max:
                    idle.append(conn)
                    return
        conn.close()

    # -- one request --------------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: Optional[dict] = None, body: Body = None,
                timeout: tuple[float, float] = (15.0, 300.0)) -> Response:
        """Send one request (no redirects followed) and return the response, body unread."""
        try:  # the URL may come from a server (a redirect's Location): check it before use
            u = urllib.parse.urlsplit(url)
            scheme = u.scheme.lower()
            port = u.port or (443 if scheme == "https" else 80)
        except ValueError:
            u, scheme, port = None, "", 0
        if u is None or scheme not in ("http", "https") or not u.hostname:
            from ..errors import RegistryError
            raise RegistryError("refusing to follow an invalid or non-HTTP URL "
                                f"({scheme + '://…' if scheme else 'unparseable'}) given by the server")
        host = u.hostname
        proxy = proxy_for(scheme, host, port)
        key = (scheme, host, port, proxy.geturl() if proxy is not None else None)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        hdrs = dict(headers or {})
        if proxy is not None and scheme == "http":
            target = urllib.parse.urlunsplit((scheme, u.netloc, u.path or "/", u.query, ""))
            hdrs.update(_proxy_auth(proxy))
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))  # type: ignore[arg-type]
        for fresh in (False, True):
            conn = None if fresh else self._take(key)
            reused = conn is not None
            if conn is None:
                conn = self._new_conn(scheme, host, port, proxy, timeout[0])
                try:
                    conn.connect()
                except ssl.SSLError as e:
                    conn.close()
                    raise TLSError(_tls_reason(e)) from None
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    if proxy is not None and str(e).startswith("Tunnel connection failed"):
                        raise _tunnel_refused(proxy, host, port, str(e)) from None
                    raise NetworkError(f"cannot connect to {host}:{port}: {_reason(e)}") from None
            conn.sock.settimeout(timeout[1])
            try:
                raw = self._exchange(conn, method, target, hdrs, body)
            except _Stale:
                conn.close()
                if reused and not isinstance(body, FileRegion):
                    continue  # a kept-alive connection the server had closed: once more on a new one
                # a file body is not replayed here: the caller's retry makes a fresh one (and rolls
                # back its progress)
                raise NetworkError(f"{host}:{port} closed the connection") from None
            except ssl.SSLError as e:
                conn.close()
                if _permanent_tls(e):  # e.g. TLS 1.3: the missing client certificate is refused here
                    raise TLSError(_tls_reason(e)) from None
                raise NetworkError(f"TLS connection to {host}:{port} failed: {_tls_reason(e)}") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise NetworkError(f"request to {host}:{port} failed: {_reason(e)}") from None
            except BaseException:
                conn.close()
                raise

            def release(reusable: bool, conn=conn) -> None:
                self._give(key, conn, reusable)
            return Response(raw, url, release)
        raise NetworkError(f"{host}:{port} keeps closing connections")  # pragma: no cover

    @staticmethod
    def _exchange(conn: http.client.HTTPConnection, method: str, target: str, hdrs: dict,
                  body: Body) -> http.client.HTTPResponse:
        started = False
        try:
            conn.putrequest(method, target)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            if isinstance(body, (bytes, bytearray)):
                conn.endheaders(bytes(body))  # small bodies go out with the headers
            else:
                conn.endheaders()
                started = True
                if body is not None:
                    body.send_to(conn.sock)
        except (BrokenPipeError, ConnectionResetError):
            # the server may have answered early (401, 413) and closed: read what it said
            if not started:
                raise _Stale() from None
            try:
                return conn.getresponse()
            except (OSError, http.client.HTTPException):
                raise NetworkError("the server closed the connection during the upload") from None
        try:
            return conn.getresponse()
        except http.client.RemoteDisconnected:
            raise _Stale() from None


class _Stale(Exception):
    """The connection was closed before any response byte came."""


def _alive(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection is usable when nothing is waiting to be read on it
    (readable while idle means the server closed it, or sent something out of turn)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        p = select.poll()
        p.register(sock, select.POLLIN)
        return not p.poll(0)
    except (OSError, ValueError):
        return False


#: CA bundles users already point other HTTP clients at (requests, curl); trusted in addition
#: to the system store (OpenSSL itself honours SSL_CERT_FILE and SSL_CERT_DIR)
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _add_env_bundles(ctx: ssl.SSLContext) -> None:
    for var in CA_BUNDLE_VARS:
        path = os.environ.get(var)
        if not path:
            continue
        try:
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise TLSError(f"${var} names {path!r}, which is not a readable PEM CA bundle ({e}); "
                           f"fix or unset it, or give --ca-file") from None


def _proxy_auth(proxy: urllib.parse.SplitResult) -> dict:
    if proxy.username is None:
        return {}
    user = urllib.parse.unquote(proxy.username)
    pw = urllib.parse.unquote(proxy.password or "")
    return {"Proxy-Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def proxy_for(scheme: str, host: str, port: int) -> Optional[urllib.parse.SplitResult]:
    """The proxy for a URL from ``{scheme}_proxy``/``all_proxy`` (either case), unless ``no_proxy`` says no."""
    env = os.environ
    if not any(k.lower().endswith("_proxy") for k in env):
        return None  # the common case costs no import
    import urllib.request
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    if bypass_proxy(host, port, proxies.get("no", "")):
        return None
    if "://" not in url:
        url = "http://" + url
    p = urllib.parse.urlsplit(url)
    if p.scheme != "http" or not p.hostname:  # a setting to fix, not a failure to retry
        from ..errors import RegistryError
        raise RegistryError(f"unsupported proxy URL {redact_proxy(p)} in the environment: only http:// proxies "
                            "are supported (https registries are reached through them with CONNECT)")
    return p


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts a host, as curl, Go and requests read it: ``*``; a name, which
    also covers its subdomains (a leading dot or ``*.`` allowed); an IP address; a CIDR block
    (``10.0.0.0/8``, common in Kubernetes); any of them with ``:port`` to exempt one port only."""
    import ipaddress
    host = host.strip("[]").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        want_port = None
        if entry.startswith("["):  # [v6]:port
            addr, _, rest = entry[1:].partition("]")
            entry, want_port = addr, rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            entry, want_port = entry.split(":")
        if want_port is not None and want_port != str(port):
            continue
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = (entry[2:] if entry.startswith("*.") else entry.lstrip(".")).rstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _tunnel_refused(proxy: urllib.parse.SplitResult, host: str, port: int, what: str) -> Exception:
    """The proxy answered CONNECT with an error: permanent, and named (a 407 with its fix)."""
    from ..errors import RegistryError
    answer = what.split(":", 1)[-1].strip()[:200]
    msg = f"the proxy {redact_proxy(proxy)} refused a tunnel to {host}:{port} ({answer})"
    if answer.startswith("407"):
        msg += ("; it wants credentials: " + ("check the ones in the proxy URL" if proxy.username else
                "put them in the proxy URL (http://user:password@host:port)"))
    return RegistryError(msg)


def redact_proxy(p: urllib.parse.SplitResult) -> str:
    return f"{p.scheme}://{p.hostname or ''}" + (f":{p.port}" if p.port else "")


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    s = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return s[:200]


def _permanent_tls(e: ssl.SSLError) -> bool:
    """A TLS alert about certificates: the peer will say the same on every try."""
    r = (getattr(e, "reason", None) or str(e)).upper()
    return "ALERT" in r and ("CERTIFICATE" in r or "UNKNOWN_CA" in r)


def _tls_reason(e: ssl.SSLError) -> str:
    return (getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e) or "TLS error")[:200]

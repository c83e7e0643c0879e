"""HTTP/1.1 on sockets: pooled connections, proxies, TLS and streamed bodies.

This is the layer under :class:`~ollama_oci.transport.http.RegistryClient`. It sends one
request and hands back a streaming response; retries, redirects and auth live above it.

Why not requests (docs/design.md): importing it costs ~70 ms at every start of the CLI
(more than the rest of a no-op push together), its ``REQUESTS_CA_BUNDLE`` silently
overrides an explicit ``verify``, and it cannot hand a file to the kernel.  Why not
``http.client``: with the ``email`` parser and ``ssl`` it imports, it cost a plain-http CLI
run ~20 ms more than this module's own message framing (status line, bounded headers,
Content-Length, chunked, read-to-close; what a registry and object storage send).  Here:

* an upload of a file region goes out with ``sendfile(2)`` on plain connections (the bytes
  never enter Python), and in 1 MiB reads with ``sendall`` over TLS;
* connections are kept alive per (scheme, host, port, proxy) and checked before reuse;
* ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` are honoured (``CONNECT``
  tunnels for https, absolute-form requests for http, credentials in the proxy URL);
* requests are written whole (a target or header value that could split one is refused), and
  responses parsed within bounds: 64 KiB per header line, 100 headers, up to 8 interim 1xx;
* TLS (``ssl`` is imported only for https): the system trust store (``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR`` honoured by OpenSSL) plus the bundles in ``REQUESTS_CA_BUNDLE`` and
  ``CURL_CA_BUNDLE`` plus any CA files given, or no verification; a client certificate;
* network failures become :class:`NetworkError` (temporary) and certificate or handshake
  failures :class:`TLSError` (permanent), so the caller's retry policy has two cases only.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import sys
import threading
import urllib.parse
import zlib
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Optional, Union

if TYPE_CHECKING:
    import ssl  # imported when first needed: plain http never loads it

__all__ = ["HTTP", "Response", "FileRegion", "NetworkError", "TLSError", "Headers"]

#: bytes read or sent per call when streaming through Python
BLOCK = 1 << 20
#: a response body left unread up to this size is drained so its connection can be reused
_DRAIN_MAX = 64 << 10
#: idle connections kept per destination
_POOL_MAX = 32
#: bytes handed to one sendfile call (progress is reported between calls)
_SENDFILE_SLICE = 8 << 20
#: what a server may send before the body: one line, and how many header lines
_MAXLINE = 64 << 10
_MAXHEADERS = 100
#: interim (1xx) responses skipped before the final one
_MAXINTERIM = 8


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
            if not _is_tls(sock) and _is_regular_file(f):
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


def _is_tls(sock) -> bool:
    ssl = sys.modules.get("ssl")  # nothing is TLS before ssl was imported (plain http never imports it)
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def _is_ssl_error(e: BaseException) -> bool:
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(e, ssl.SSLError)


def _is_regular_file(f) -> bool:
    try:
        import stat
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


Body = Union[None, bytes, FileRegion]


class _ProtocolError(Exception):
    """The server broke HTTP/1.1 (a bad status line, too many or too long headers, a body cut short)."""


class _Stale(Exception):
    """The connection was closed before any response byte came."""


class _Conn:
    """One HTTP/1.1 connection: its socket (TLS-wrapped for https) and the bytes received but
    not yet consumed.  Bodies are read straight from the socket once that buffer is empty."""

    __slots__ = ("sock", "_buf", "_pos")

    def __init__(self, sock: socket.socket):
        self.sock: Optional[socket.socket] = sock
        self._buf = bytearray()
        self._pos = 0

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def idle_clean(self) -> bool:
        """Nothing left over from the last exchange, and the server has not closed or spoken since."""
        if self.sock is None or self._pos < len(self._buf):
            return False
        try:
            p = select.poll()
            p.register(self.sock, select.POLLIN)
            return not p.poll(0)
        except (OSError, ValueError):
            return False

    def readline(self) -> bytes:
        """One line, its ending included; what there is at EOF (``b""`` when nothing)."""
        buf = self._buf
        while True:
            i = buf.find(b"\n", self._pos)
            if i >= 0:
                if i - self._pos >= _MAXLINE:
                    raise _ProtocolError("a header line over 64 KiB")
                line = bytes(buf[self._pos:i + 1])
                self._pos = i + 1
                return line
            if len(buf) - self._pos > _MAXLINE:
                raise _ProtocolError("a header line over 64 KiB")
            if self._pos:
                del buf[:self._pos]
                self._pos = 0
            data = self.sock.recv(_MAXLINE)
            if not data:
                line = bytes(buf)
                buf.clear()
                return line
            buf += data

    def read_some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes (``b""`` at EOF): what is buffered first, else one ``recv``."""
        buf = self._buf
        if self._pos < len(buf):
            out = bytes(buf[self._pos:self._pos + n])
            self._pos += len(out)
            if self._pos == len(buf):
                buf.clear()
                self._pos = 0
            return out
        return self.sock.recv(n)


def _read_head(conn: _Conn) -> tuple[int, str, str, list[tuple[str, str]]]:
    """Status line and headers of the next final response (a few 1xx interim responses skipped)."""
    for _ in range(_MAXINTERIM + 1):
        try:
            line = conn.readline()
        except ConnectionResetError:
            line = b""  # reset before a byte of the answer: as good as closed
        if not line:
            raise _Stale()
        try:
            version, status_s, *rest = line.decode("iso-8859-1").rstrip("\r\n").split(None, 2)
            status = int(status_s)
        except ValueError:
            raise _ProtocolError(f"not an HTTP status line: {line[:60]!r}") from None
        if not version.startswith("HTTP/") or not 100 <= status <= 999 or len(status_s) != 3:
            raise _ProtocolError(f"not an HTTP status line: {line[:60]!r}")
        items: list[tuple[str, str]] = []
        while True:
            h = conn.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise _ProtocolError("the connection closed inside the response headers")
            if len(items) >= _MAXHEADERS:
                raise _ProtocolError(f"more than {_MAXHEADERS} response headers")
            text = h.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and items:  # an obsolete folded continuation line
                k, v = items[-1]
                items[-1] = (k, f"{v} {text.strip()}")
                continue
            k, sep, v = text.partition(":")
            if sep and k and k == k.strip():
                items.append((k, v.strip()))
        if 100 <= status < 200:
            continue  # 100 Continue and friends: the real answer follows
        return status, (rest[0] if rest else ""), version, items
    raise _ProtocolError(f"more than {_MAXINTERIM} interim (1xx) responses")


class Response:
    """A response whose body is read as it is needed; :meth:`close` returns the connection."""

    def __init__(self, conn: _Conn, method: str, url: str, release: Callable[[bool], None]):
        status, reason, version, items = _read_head(conn)
        self._conn = conn
        self._release = release
        self._closed = False
        self.url = url
        self.status_code = status
        self.reason = reason
        self.headers = h = Headers(items)
        conn_tokens = (h.get("Connection") or "").lower()
        self._will_close = "close" in conn_tokens or (version == "HTTP/1.0" and "keep-alive" not in conn_tokens)
        # body framing (RFC 9112 §6.3): none, chunked, a length, or until the server closes
        self._chunked = False
        self._chunk_left = 0
        self._left: Optional[int] = None
        self._eof = False
        if method == "HEAD" or status in (204, 304):
            self._eof = True
        elif "chunked" in (h.get("Transfer-Encoding") or "").lower():
            self._chunked = True
        else:
            cl = h.get("Content-Length")
            try:
                values = {int(v) for v in cl.split(",")} if cl is not None else set()
            except ValueError:
                values = set()
            if len(values) == 1 and min(values) >= 0:
                self._left = values.pop()
                self._eof = self._left == 0
            else:  # no usable length: the body ends when the connection does
                self._will_close = True
        enc = (h.get("Content-Encoding") or "").strip().lower()
        # we ask for identity; a server that compresses anyway is still understood
        self._dec = (zlib.decompressobj(16 + zlib.MAX_WBITS) if enc in ("gzip", "x-gzip") else
                     zlib.decompressobj() if enc == "deflate" else None)
        self._decoded = bytearray()   # decoded bytes not yet returned
        self._decoded_eof = False

    def _raw(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body as sent (``b""`` at its end); never reads past it."""
        if self._eof:
            return b""
        conn = self._conn
        if self._chunked:
            if self._chunk_left == 0:
                line = conn.readline()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _ProtocolError("a bad chunk size line") from None
                if size < 0:
                    raise _ProtocolError("a bad chunk size line")
                if size == 0:
                    for _ in range(_MAXHEADERS + 1):  # trailers, up to the blank line
                        t = conn.readline()
                        if t in (b"\r\n", b"\n", b""):
                            break
                    else:
                        raise _ProtocolError("too many trailer lines")
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = conn.read_some(min(n, self._chunk_left))
            if not data:
                raise _ProtocolError("the body ended inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0 and conn.readline() not in (b"\r\n", b"\n"):
                raise _ProtocolError("a chunk not followed by CRLF")
            return data
        if self._left is None:
            data = conn.read_some(n)
            if not data:
                self._eof = True
            return data
        data = conn.read_some(min(n, self._left))
        if not data:
            raise _ProtocolError(f"the body ended {self._left} bytes short of its Content-Length")
        self._left -= len(data)
        self._eof = self._left == 0
        return data

    def _raw_full(self, n: int) -> bytes:
        first = self._raw(n)
        if len(first) == n or not first:
            return first
        parts, got = [first], len(first)
        while got < n:
            b = self._raw(n - got)
            if not b:
                break
            parts.append(b)
            got += len(b)
        return b"".join(parts)

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
                return self._raw_full(n)
            return self._read_decoded(n)
        except (OSError, _ProtocolError, ValueError, zlib.error) as e:
            self._will_close = True
            raise NetworkError(f"reading the response failed: {_reason(e)}") from None

    def _read_decoded(self, n: int) -> bytes:
        # decompress at most what is asked for (a small body cannot expand without bound in memory)
        buf, dec = self._decoded, self._dec
        while len(buf) < n and not self._decoded_eof:
            src = dec.unconsumed_tail or self._raw(BLOCK)
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
        """Done with the response: a small unread remainder is drained so the connection is reused."""
        if self._closed:
            return
        self._closed = True
        reusable = False
        if not self._will_close:
            try:
                if not self._eof and (self._chunked or (self._left or 0) <= _DRAIN_MAX):
                    budget = _DRAIN_MAX
                    while budget > 0 and not self._eof:
                        budget -= len(self._raw(budget)) or 1
                reusable = self._eof
            except Exception:
                reusable = False
        self._release(reusable)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                self._closed = True
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
        self._lazy = False   # the context looks the system's CAs up in its hashed directory only
        self._idle: dict[tuple, list[_Conn]] = {}
        self._lock = threading.Lock()

    # -- TLS ------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS configuration, made on first use.

        The system's trust is looked up lazily when OpenSSL's CA directory is hashed (Debian,
        Ubuntu, Alpine: ``/etc/ssl/certs``): parsing the whole bundle file costs ~20 ms at every
        start of the CLI, a sixth of an unchanged pull over https. If a certificate check then
        fails, the bundle file is loaded as well and the connection tried once more
        (:meth:`_widen_trust`), so what is trusted is exactly the system's default.  A
        ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` naming that same bundle counts as the default.
        """
        with self._lock:
            if self._ctx is None:
                self._ctx = self._make_context(lazy=True)
            return self._ctx

    def _make_context(self, lazy: bool) -> ssl.SSLContext:
        import ssl  # only https needs it (its import is a tenth of a plain-http CLI run's start)
        try:
            if not self.verify:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                # the default trust, plus what was given: as docker and podman add a
                # registry's CAs to the system's (a private registry may redirect to S3)
                cafile, capath, hashed = _system_trust()
                self._lazy = lazy and hashed
                if self._lazy:  # the directory alone: OpenSSL reads a CA file when a chain needs it
                    ctx = ssl.create_default_context(capath=capath)
                else:  # OpenSSL's default: bundle file and directory (and a platform's stores)
                    ctx = ssl.create_default_context()
                # the system bundle named again (as CI images and corporate setups do) is not re-read
                _add_env_bundles(ctx, skip={os.path.realpath(cafile)} if cafile else set())
                for path in self.cafiles:
                    ctx.load_verify_locations(cafile=path)
            if self.cert:
                certfile, keyfile = self.cert if isinstance(self.cert, tuple) else (self.cert, None)
                ctx.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as e:
            raise TLSError(f"cannot load the TLS files ({e}); check --ca-file, --cert and --key "
                           "(and the registry's certs.d directory)") from None
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _widen_trust(self, failed: ssl.SSLContext) -> bool:
        """A certificate check failed with ``failed``: whether a try with the whole system bundle
        loaded is worth making (it is made the context for every later connection)."""
        with self._lock:
            if self._ctx is not failed:
                return True  # another connection widened it meanwhile
            if not self._lazy:
                return False
            self._ctx = self._make_context(lazy=False)
            return True

    # -- connections ------------------------------------------------------------------------------
    def _connect(self, scheme: str, host: str, port: int, proxy: Optional[urllib.parse.SplitResult],
                 timeout: float, _widened: bool = False) -> _Conn:
        """A new connection to the registry (through the proxy, if any), TLS started for https.

        Errors: TLSError (handshake), RegistryError (the proxy refused a tunnel), NetworkError."""
        where = (proxy.hostname, proxy.port or 80) if proxy is not None else (host, port)
        try:
            # an ASCII name as bytes: getaddrinfo would otherwise load the IDNA codec for nothing
            sock = socket.create_connection((where[0].encode() if where[0].isascii() else where[0], where[1]),
                                            timeout=timeout)
        except OSError as e:
            what = f"the proxy {redact_proxy(proxy)}" if proxy is not None else f"{host}:{port}"
            raise NetworkError(f"cannot connect to {what}: {_reason(e)}") from None
        conn = _Conn(sock)
        ctx = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if proxy is not None:
                    self._tunnel(conn, proxy, host, port)
                # the registry's certificate and name are checked, inside the tunnel if there is one
                ctx = self.ssl_context()
                conn.sock = ctx.wrap_socket(sock, server_hostname=host)  # _tunnel left no bytes behind
        except BaseException as e:
            conn.close()  # the plain socket (wrap_socket takes it over only when it succeeds)
            if isinstance(e, (TLSError, NetworkError)) or not isinstance(e, Exception):
                raise
            if _is_ssl_error(e):
                if (ctx is not None and getattr(e, "verify_code", None) is not None and not _widened
                        and self._widen_trust(ctx)):
                    return self._connect(scheme, host, port, proxy, timeout, _widened=True)
                raise TLSError(_tls_reason(e)) from None
            if isinstance(e, (OSError, _ProtocolError, _Stale)):
                raise NetworkError(f"cannot connect to {host}:{port}: {_reason(e)}") from None
            raise
        return conn

    @staticmethod
    def _tunnel(conn: _Conn, proxy: urllib.parse.SplitResult, host: str, port: int) -> None:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        for k, v in _proxy_auth(proxy).items():
            head += f"{k}: {v}\r\n"
        conn.sock.sendall((head + "\r\n").encode("latin-1"))
        status, reason, _, _ = _read_head(conn)
        if status != 200:
            raise _tunnel_refused(proxy, host, port, f"{status} {reason}".strip())
        if conn._pos < len(conn._buf):
            raise _ProtocolError("the proxy sent bytes after accepting the tunnel")

    def _take(self, key: tuple) -> Optional[_Conn]:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.idle_clean():
                    return conn
                conn.close()
        return None

    def _give(self, key: tuple, conn: _Conn, reusable: bool) -> None:
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
        authority = f"[{host}]" if ":" in host else host
        if port != (443 if scheme == "https" else 80):
            authority += f":{port}"
        hdrs = {"Host": authority, "Accept-Encoding": "identity"}
        if proxy is not None and scheme == "http":
            target = f"http://{authority}{target}"  # absolute form, for the proxy
            hdrs.update(_proxy_auth(proxy))
        hdrs.update(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))  # type: ignore[arg-type]
        head = _request_head(method, target, hdrs)
        for fresh in (False, True):
            conn = None if fresh else self._take(key)
            reused = conn is not None
            if conn is None:
                conn = self._connect(scheme, host, port, proxy, timeout[0])
            conn.sock.settimeout(timeout[1])
            try:
                resp = self._exchange(conn, method, url, head, body, self._releaser(key, conn))
            except _Stale:
                conn.close()
                if reused and not isinstance(body, FileRegion):
                    continue  # a kept-alive connection the server had closed: once more on a new one
                # a file body is not replayed here: the caller's retry makes a fresh one (and rolls
                # back its progress)
                raise NetworkError(f"{host}:{port} closed the connection") from None
            except (OSError, _ProtocolError) as e:
                conn.close()
                if _is_ssl_error(e):
                    if _permanent_tls(e):  # e.g. TLS 1.3: a missing client certificate is refused here
                        raise TLSError(_tls_reason(e)) from None
                    raise NetworkError(f"TLS connection to {host}:{port} failed: {_tls_reason(e)}") from None
                raise NetworkError(f"request to {host}:{port} failed: {_reason(e)}") from None
            except BaseException:
                conn.close()
                raise
            return resp
        raise NetworkError(f"{host}:{port} keeps closing connections")  # pragma: no cover

    def _releaser(self, key: tuple, conn: _Conn) -> Callable[[bool], None]:
        def release(reusable: bool) -> None:
            self._give(key, conn, reusable)
        return release

    @staticmethod
    def _exchange(conn: _Conn, method: str, url: str, head: bytes, body: Body,
                  release: Callable[[bool], None]) -> Response:
        started = False
        try:
            if isinstance(body, (bytes, bytearray)):
                conn.sock.sendall(head + body)  # small bodies go out with the headers
            else:
                conn.sock.sendall(head)
                started = True
                if body is not None:
                    body.send_to(conn.sock)
        except (BrokenPipeError, ConnectionResetError):
            # the server may have answered early (401, 413) and closed: read what it said
            if not started:
                raise _Stale() from None
            try:
                return Response(conn, method, url, release)
            except (OSError, _ProtocolError, _Stale):
                raise NetworkError("the server closed the connection during the upload") from None
        return Response(conn, method, url, release)


def _request_head(method: str, target: str, headers: dict) -> bytes:
    """The request line and headers.  Targets and values can come from a server (a redirect, a
    token): one that could split the request (control characters) is refused, permanently."""
    from ..errors import RegistryError
    if not target or any(c <= " " or c == "\x7f" for c in target):
        raise RegistryError(f"refusing a request target with control characters or spaces: {target[:60]!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    for k, v in headers.items():
        v = str(v)
        if not k or any(c <= " " or c == ":" for c in k) or any(c in v for c in "\r\n\x00"):
            raise RegistryError(f"refusing to send an invalid {k[:40]!r} header (control characters)")
        lines.append(f"{k}: {v}")
    lines.append("\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise RegistryError("refusing to send a request line or header that is not Latin-1 text") from None


def _system_trust() -> tuple[Optional[str], Optional[str], bool]:
    """OpenSSL's default trust as it resolves it (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured):
    (bundle file, CA directory, whether the directory may stand in for the bundle until a chain
    fails: it is hashed, as on Debian, Ubuntu and Alpine, not Fedora, macOS or Windows; and the
    bundle is the system's own, not one ``SSL_CERT_FILE`` names for CAs the directory lacks)."""
    import ssl
    paths = ssl.get_default_verify_paths()
    own = paths.cafile is None or (paths.openssl_cafile is not None and
                                   os.path.realpath(paths.cafile) == os.path.realpath(paths.openssl_cafile))
    if paths.capath and own:
        try:
            with os.scandir(paths.capath) as it:
                for e in it:  # OpenSSL's by-directory lookup wants <subject hash>.<n> names
                    n, dot, k = e.name.partition(".")
                    if dot and len(n) == 8 and k.isdigit() and all(c in "0123456789abcdef" for c in n):
                        return paths.cafile, paths.capath, True
        except OSError:
            pass
    return paths.cafile, paths.capath, False


#: CA bundles users already point other HTTP clients at (requests, curl); trusted in addition
#: to the system store (OpenSSL itself honours SSL_CERT_FILE and SSL_CERT_DIR)
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _add_env_bundles(ctx: ssl.SSLContext, skip: set) -> None:
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


def _tunnel_refused(proxy: urllib.parse.SplitResult, host: str, port: int, answer: str) -> Exception:
    """The proxy answered CONNECT with an error (``answer``: its status and reason): permanent, and
    named (a 407 with its fix)."""
    from ..errors import RegistryError
    answer = answer.strip()[:200]
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

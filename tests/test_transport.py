"""The HTTP layer on its own (urllib3 underneath), against real sockets and a local HTTP server.

The registry tests drive it end to end; these pin what a registry does not exercise on
demand: file bodies streamed in blocks (and a source that shrinks), compressed responses read
in bounded pieces, kept-alive connections reused and a stale one replaced, malformed answers,
values that could split a request, and how proxies are chosen from the environment.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import threading

import pytest

from ollama_oci.errors import InvalidInput
from ollama_oci.transport import proxy as proxies
from ollama_oci.transport.session import HTTP, FileBody, NetworkError


@pytest.fixture
def blob(tmp_path):
    data = os.urandom(3 << 20) + b"tail"
    p = tmp_path / "blob"
    p.write_bytes(data)
    return p, data


def test_file_body_reads_exactly_the_region_in_bounded_blocks(blob):
    p, data = blob
    ticks = []
    body = FileBody(lambda: open(p, "rb"), 12345, len(data) - 12345 - 7, ticks.append)
    got = []
    while True:
        b = body.read(1 << 20)
        if not b:
            break
        assert len(b) <= 1 << 20
        got.append(b)
    assert b"".join(got) == data[12345:-7]
    assert sum(ticks) == len(body) and len(ticks) == len(got)


def test_file_body_refuses_a_source_shorter_than_announced(blob):
    p, data = blob
    body = FileBody(lambda: open(p, "rb"), 0, len(data) + 10)
    with pytest.raises(InvalidInput, match="changed while being uploaded"):
        while body.read(1 << 20):
            pass


def test_file_body_is_uploaded_whole_with_its_length():
    got = {}

    def handler(h):
        n = int(h.headers.get("Content-Length") or 0)
        got["te"] = h.headers.get("Transfer-Encoding")
        got["body"] = h.rfile.read(n)
        _reply(h, b"")
    srv = _Server(handler)
    data = os.urandom(5 << 20)
    import io
    try:
        with HTTP().request("PUT", srv.url + "/up", body=FileBody(lambda: io.BytesIO(data), 3, len(data) - 3)) as r:
            assert r.status_code == 200
        assert got == {"te": None, "body": data[3:]}  # Content-Length, never chunked encoding
    finally:
        srv.close()


class _Server:
    """A local HTTP/1.1 server; counts the TCP connections it accepted."""

    def __init__(self, handler):
        self.connections = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                outer.connections += 1
                super().setup()

            def log_message(self, *a):
                pass

            def do_GET(self):
                handler(self)
            do_PUT = do_HEAD = do_GET

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(h, body: bytes, headers=(), status=200):
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def test_kept_alive_connection_is_reused_and_a_stale_one_replaced():
    def handler(h):
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        if h.path == "/close":
            h.close_connection = True  # answer, then close the (kept-alive) connection
        _reply(h, b"ok:" + body)
    srv = _Server(handler)
    try:
        client = HTTP()
        for i in range(5):
            with client.request("PUT", f"{srv.url}/x", body=b"%d" % i) as r:
                assert (r.status_code, r.read()) == (200, b"ok:%d" % i)
        with client.request("HEAD", f"{srv.url}/x") as r:
            assert r.status_code == 200 and r.read() == b""
        assert srv.connections == 1
        with client.request("GET", f"{srv.url}/close") as r:
            assert r.read() == b"ok:"
        with client.request("GET", f"{srv.url}/x") as r:  # the pooled connection is dead: a new one
            assert r.read() == b"ok:"
        assert srv.connections == 2
    finally:
        srv.close()


def test_compressed_response_is_decoded_in_bounded_reads():
    payload = b'{"tags": [' + b",".join(b'"t%d"' % i for i in range(50000)) + b"]}"

    def handler(h):
        _reply(h, gzip.compress(payload), [("Content-Encoding", "gzip"), ("Content-Type", "application/json")])
    srv = _Server(handler)
    try:
        client = HTTP()
        with client.request("GET", srv.url + "/") as r:
            first = r.read(1000)
            assert first == payload[:1000]  # never more than asked, even though the wire held more
            assert first + r.read() == payload
        with client.request("GET", srv.url + "/") as r:
            assert len(r.json()["tags"]) == 50000
        with client.request("GET", srv.url + "/") as r, pytest.raises(ValueError, match="larger"):
            r.json(limit=1000)
        with client.request("GET", srv.url + "/") as r:
            assert r.headers.get("content-type") == "application/json" and "CONTENT-ENCODING" in r.headers
    finally:
        srv.close()


def test_connection_refused_on_loopback_is_unreachable_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError, match=f"refused by 127.0.0.1:{port}") as e:
        HTTP().request("GET", f"http://127.0.0.1:{port}/", timeout=(2, 2))
    assert e.value.unreachable


def test_a_name_that_does_not_resolve_is_unreachable():
    with pytest.raises(NetworkError, match="cannot resolve") as e:
        HTTP().request("GET", "http://no-such-host.invalid/", timeout=(2, 2))
    assert e.value.unreachable


def test_proxy_choice_from_the_environment(monkeypatch):
    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    assert proxies.proxy_for("https", "registry.example", 443) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal,10.1.2.3:5000")
    p = proxies.proxy_for("https", "registry.example", 443)
    assert (p.hostname, p.port, p.username, p.password) == ("proxy.corp", 3128, "user", "p%40ss")
    assert proxies.proxy_for("http", "registry.example", 80) is None       # no HTTP_PROXY set
    assert proxies.proxy_for("https", "localhost", 5000) is None
    assert proxies.proxy_for("https", "ml.internal", 443) is None
    assert proxies.proxy_for("https", "10.1.2.3", 5000) is None
    assert proxies.proxy_for("https", "10.1.2.3", 443) is not None      # NO_PROXY named another port
    for no_proxy, host, port, bypass in [
            ("10.0.0.0/8", "10.96.0.1", 443, True), ("10.0.0.0/8", "11.0.0.1", 443, False),
            ("10.96.0.0/12,.svc.cluster.local", "registry.ml.svc.cluster.local", 5000, True),
            ("*.corp.example", "reg.corp.example", 443, True), ("corp.example", "notcorp.example", 443, False),
            ("fd00::/8", "fd12::1", 443, True), ("[::1]:5000", "::1", 5000, True), ("[::1]:5000", "::1", 443, False),
            ("*", "anything", 1, True), ("", "anything", 1, False), ("registry.example.", "registry.example", 1, True)]:
        assert proxies.bypass_proxy(host, port, no_proxy) is bypass, (no_proxy, host, port)
    monkeypatch.setenv("no_proxy", "10.0.0.0/8")
    monkeypatch.delenv("NO_PROXY")
    assert proxies.proxy_for("https", "10.1.2.3", 443) is None  # lower case, and CIDR, from the environment
    monkeypatch.setenv("ALL_PROXY", "proxy2:8080")
    assert proxies.proxy_for("http", "registry.example", 80).hostname == "proxy2"
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.corp:1080")
    from ollama_oci.errors import RegistryError
    with pytest.raises(RegistryError, match="unsupported proxy URL socks5://proxy.corp:1080"):  # permanent
        proxies.proxy_for("https", "registry.example", 443)
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.corp:3129")  # TLS to the proxy itself is fine
    assert proxies.proxy_for("https", "registry.example", 443).scheme == "https"


def test_retry_after_from_an_untrusted_server_never_raises():
    from ollama_oci.transport.http import RegistryClient, TransportOptions

    class R:
        def __init__(self, v):
            self.headers = {"Retry-After": v}
    c = RegistryClient("registry.example", TransportOptions(backoff=0.5, max_backoff=30))
    assert c._delay(0, R("7")) == 7
    assert c._delay(0, R("1e999")) == 30                          # capped
    assert c._delay(0, R("Wed, 21 Oct 2015 07:28:00 GMT")) == 0    # a date in the past: no wait
    for junk in ("soon", "nan", "Wed, 99 Foo 2015 99:99:99 GMT", ""):
        assert 0.25 <= c._delay(0, R(junk)) <= 0.75               # unreadable: the usual backoff


def test_a_bad_url_from_a_server_is_refused_not_crashed_on():
    from ollama_oci.errors import RegistryError
    for url in ("http://host:99999/x", "ftp://host/x", "/relative", "http://[::1/x"):
        with pytest.raises(RegistryError, match="invalid or non-HTTP URL"):
            HTTP().request("GET", url)


def test_certs_d_lookup(tmp_path):
    from ollama_oci.transport.http import certs_d_files
    a, b = tmp_path / "a" / "reg.example:5000", tmp_path / "b" / "reg.example:5000"
    os.makedirs(a)
    os.makedirs(b)
    for p in (a / "ca.crt", a / "lonely.cert", b / "extra.crt", b / "me.cert", b / "me.key", b / "notes.txt"):
        p.write_text("x")
    cas, client = certs_d_files("reg.example:5000", [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "none")])
    assert cas == [str(a / "ca.crt"), str(b / "extra.crt")]          # every CA, in directory order
    assert client == (str(b / "me.cert"), str(b / "me.key"))           # a .cert needs its .key
    assert certs_d_files("reg.example:5000/../..", [str(tmp_path / "a")]) == ([], None)
    assert certs_d_files("other:1", [str(tmp_path / "a")]) == ([], None)


class _Canned:
    """A raw TCP server answering each request with canned bytes: framing a stock server
    does not produce on demand (chunks with extensions and trailers, interim 100s, bodies
    ended by closing, truncation, oversized heads).  Records every request head it got."""

    def __init__(self, answers):
        self.answers = list(answers)       # (bytes, close_after) per request, in order
        self.heads: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with c:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        d = c.recv(65536)
                        if not d:
                            break
                        buf += d
                    if b"\r\n\r\n" not in buf:
                        break
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    self.heads.append(head)
                    answer, close = self.answers.pop(0)
                    try:
                        c.sendall(answer)
                    except OSError:  # the client gave up mid-answer (what some tests want)
                        break
                    if close:
                        break

    def close(self):
        self.sock.close()


def test_response_framing_the_registry_does_not_exercise():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Folded: a\r\n b\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    until_close = b"HTTP/1.0 200 OK\r\n\r\nthe body ends when the connection does"
    srv = _Canned([(chunked, False), (interim, False), (until_close, True)])
    try:
        client = HTTP()
        with client.request("GET", srv.url + "/a") as r:
            assert (r.status_code, r.read()) == (200, b"hello world")
            assert r.headers["x-folded"].split() == ["a", "b"]  # an obsolete folded line is one header
        with client.request("PUT", srv.url + "/b", body=b"xy") as r:
            assert (r.status_code, r.read()) == (201, b"ok")  # the interim 100 is skipped
        with client.request("GET", srv.url + "/c") as r:
            assert r.read() == b"the body ends when the connection does"
        assert srv.connections == 1  # chunked and sized bodies kept the connection alive
        assert srv.heads[0].startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nContent-Length: 2" in srv.heads[1]
    finally:
        srv.close()


@pytest.mark.parametrize("answer, when", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "read"),                 # body cut short
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "read"),         # bad chunk size
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "request"),                                       # not HTTP
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "request"),                 # too many headers
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (70 << 10) + b"\r\n\r\n", "request"),          # a header line > 64 KiB
], ids=["short-body", "bad-chunk", "not-http", "101-headers", "long-line"])
def test_a_broken_response_is_a_network_error(answer, when):
    srv = _Canned([(answer, True)])
    try:
        with pytest.raises(NetworkError):
            with HTTP().request("GET", srv.url + "/", timeout=(2, 2)) as r:
                assert when == "read"
                r.read()
    finally:
        srv.close()


def test_values_that_could_split_a_request_are_refused_before_sending():
    from ollama_oci.errors import RegistryError
    srv = _Canned([(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True)])
    try:
        client = HTTP()
        for url, headers in [(srv.url + "/x", {"Authorization": "Bearer t\r\nX-Evil: 1"}),
                             (srv.url + "/x", {"Authorization": "Bearer \u20ac"})]:
            with pytest.raises(RegistryError, match="refusing"):
                client.request("GET", url, headers)
        assert srv.heads == []  # nothing went out
        # a target with spaces or line breaks (a server's redirect) goes out percent-encoded, never split
        with client.request("GET", srv.url + "/a b\r\nX-Evil: 1") as r:
            assert r.status_code == 200
        assert len(srv.heads) == 1 and b"\r\nX-Evil" not in srv.heads[0]
        assert srv.heads[0].split(b"\r\n")[0] == b"GET /a%20b%0D%0AX-Evil:%201 HTTP/1.1"
    finally:
        srv.close()


def test_a_header_folded_over_many_lines_is_refused_quickly():
    """One header continued over thousands of lines (obsolete folding): each line counts against
    the bound of 100 header lines, so it is refused after ~100 of them, not accumulated (the old
    hand-written client took 120 MB and 95 s)."""
    import time
    answer = b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n" + b" b\r\n" * 200000 + b"Content-Length: 0\r\n\r\n"
    srv = _Canned([(answer, True)])
    try:
        t0 = time.monotonic()
        with pytest.raises(NetworkError):
            HTTP().request("GET", srv.url + "/", timeout=(2, 2))
        assert time.monotonic() - t0 < 5
    finally:
        srv.close()

"""Real registries for the tests: Debian's docker-registry (Docker distribution) on 127.0.0.1.

Variants (what the registry issue asks for):
* ``plain``: HTTP, anonymous.
* ``tls``: HTTPS with a self-signed CA the tests make, htpasswd Basic auth.
* ``token``: HTTP, distribution's ``auth.token`` pointing at a token service the tests run.

The token service lives in :class:`Front`, a small server the tests control that
sits in front of a registry: it issues JWTs (after checking Basic credentials or
an ollama Ed25519 signature), forwards everything else to the real registry, and
can inject faults (429/503 with Retry-After, connection resets, throttling) or
redirect blob GETs to a second host (127.0.0.2) that records whether an
``Authorization`` header reached it.  It is also a forward proxy: absolute-form
requests for http, CONNECT tunnels for https (optionally demanding credentials).  The faults are the only fake here: they
stand for what cloud registries, proxies and object storage do, which cannot run
on this machine.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Optional

REGISTRY_BIN = shutil.which("docker-registry")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port}")


# -- certificates --------------------------------------------------------------------------------

def make_ca_and_cert(directory: str, names=("127.0.0.1", "localhost"), *,
                     client: bool = False) -> tuple[str, str, str]:
    """A self-signed CA and a server certificate for ``names``; returns (ca.pem, cert.pem, key.pem).

    ``client``: also a client certificate from the same CA, in client.pem and client-key.pem.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ollama-oci test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    if client:
        from cryptography.x509.oid import ExtendedKeyUsageOID
        ckey = ec.generate_private_key(ec.SECP256R1())
        ccert = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ollama-oci test client")]))
                 .issuer_name(ca_name).public_key(ckey.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                 .sign(ca_key, hashes.SHA256()))
        with open(os.path.join(directory, "client.pem"), "wb") as f:
            f.write(ccert.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(directory, "client-key.pem"), "wb") as f:
            f.write(ckey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return tuple(paths)


class TokenSigner:
    """Signs registry JWTs (ES256) with a self-signed certificate the registry trusts (x5c header)."""

    def __init__(self, directory: str, issuer: str = "ollama-oci-test-issuer"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = os.path.join(directory, "token-ca.pem")
        with open(self.bundle, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issuer = issuer
        self.x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def token(self, service: str, subject: str, access: list[dict], ttl: int = 300) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).decode().rstrip("=")
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": service, "exp": now + ttl, "nbf": now - 10,
                  "iat": now, "jti": base64.b16encode(os.urandom(8)).decode(), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# -- the registry ----------------------------------------------------------------------------------

@dataclass
class Registry:
    """One docker-registry process."""

    workdir: str
    variant: str = "plain"           # plain, tls, token, mtls (client certificates, no password)
    users: dict = field(default_factory=lambda: {"alice": "s3cret-pass"})
    token_realm: Optional[str] = None
    signer: Optional[TokenSigner] = None
    port: int = 0
    proc: Optional[subprocess.Popen] = None
    bind: str = "127.0.0.1"          # or "::1"
    access_log: bool = False         # distribution's own access log (registry.log), to count requests

    def __post_init__(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.storage = os.path.join(self.workdir, "storage")
        self.port = self.port or free_port(self.bind)
        self.ca = None
        if self.variant == "mtls":
            self.ca, self.cert, self.key = make_ca_and_cert(self.workdir, client=True)
            self.client_cert = os.path.join(self.workdir, "client.pem")
            self.client_key = os.path.join(self.workdir, "client-key.pem")
        if self.variant == "tls":
            self.ca, self.cert, self.key = make_ca_and_cert(self.workdir)
            import bcrypt
            with open(os.path.join(self.workdir, "htpasswd"), "w") as f:
                for u, p in self.users.items():
                    f.write(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")

    @property
    def host(self) -> str:
        return f"[{self.bind}]:{self.port}" if ":" in self.bind else f"{self.bind}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.variant in ("tls", "mtls") else "http"

    def config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:",
                 f"    disabled: {'false' if self.access_log else 'true'}", "storage:",
                 "  filesystem:", f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true",
                 "  maintenance:", "    uploadpurging:", "      enabled: false", "http:",
                 f"  addr: \"{self.host}\"", "  secret: ollama-oci-test-secret"]
        if self.variant == "tls":
            lines += ["  tls:", f"    certificate: {self.cert}", f"    key: {self.key}",
                      "auth:", "  htpasswd:", "    realm: ollama-oci-test",
                      f"    path: {os.path.join(self.workdir, 'htpasswd')}"]
        elif self.variant == "mtls":
            lines += ["  tls:", f"    certificate: {self.cert}", f"    key: {self.key}", "    clientcas:",
                      f"      - {self.ca}"]
        elif self.variant == "token":
            assert self.token_realm and self.signer
            lines += ["auth:", "  token:", f"    realm: {self.token_realm}", "    service: ollama-oci-test",
                      f"    issuer: {self.signer.issuer}", f"    rootcertbundle: {self.signer.bundle}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "Registry":
        cfg = os.path.join(self.workdir, "config.yml")
        with open(cfg, "w") as f:
            f.write(self.config())
        log = open(os.path.join(self.workdir, "registry.log"), "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", cfg], stdout=log, stderr=log,
                                     start_new_session=True)
        _wait_port(self.bind, self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    stop = kill

    def log_lines(self) -> list[str]:
        with open(os.path.join(self.workdir, "registry.log"), errors="replace") as f:
            return f.read().splitlines()

    def blob_data_path(self, digest: str) -> str:
        h = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", h[:2], h, "data")


# -- the front server: token service + fault-injecting proxy + redirecting CDN ---------------------------

def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between two sockets until either side closes."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select(timeout=30):
                data = key.fileobj.recv(1 << 16)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        pass
    finally:
        sel.close()
        b.close()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Fault:
    """Inject ``action`` into the next ``times`` requests that ``match(method, path)``."""

    match: Callable[[str, str], bool]
    action: str                     # "429", "503", "reset", "redirect"
    times: int = 1
    retry_after: Optional[str] = "1"


class Front:
    """Token service and proxy in front of a registry (see the module docstring)."""

    def __init__(self, upstream: Optional[Registry] = None, *, signer: Optional[TokenSigner] = None,
                 users: Optional[dict] = None, ed25519_keys: Optional[list] = None, host: str = "127.0.0.1",
                 cdn_host: str = "127.0.0.2", tls: Optional[tuple[str, str]] = None):
        self.upstream = upstream
        self.signer = signer
        self.users = users or {}
        self.ed25519_keys = ed25519_keys or []   # base64 ssh public key blobs that may sign
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, Optional[str]]] = []    # (method, path, Authorization)
        self.cdn_log: list[tuple[str, Optional[str], Optional[str]]] = []   # (path, Authorization, Range)
        self.throttle: Optional[float] = None    # bytes per second for blob bodies, per connection
        self.link_rate: Optional[float] = None   # bytes per second for blob bodies, shared: one slow link
        self._link_next = 0.0
        self.ignore_ranges = False               # drop Range headers on the way to the registry
        # a cloud registry's upload limits (GHCR refuses PATCH bodies over 4 MiB with 416)
        self.max_patch_body: Optional[int] = None
        self.upload_bytes = 0                    # request body bytes forwarded to upload sessions
        self.upload_requests: list[tuple[str, int, int]] = []   # (method, body length, status)
        # store-and-forward upload bodies, as nginx (proxy_request_buffering, its default) and cloud load
        # balancers do: a chunk whose client died half-way never reaches the registry
        self.buffer_uploads = False
        self.blob_bytes_served = 0
        self.blob_gets_inflight = 0              # blob GETs being answered right now, and the most at once
        self.max_blob_gets_inflight = 0
        self.token_requests: list[dict] = []
        self.proxied: list[tuple[str, str]] = []  # requests that came in proxy form (absolute URL)
        self.proxy_auth: Optional[str] = None     # Proxy-Authorization a CONNECT must carry, if set
        self.port = free_port(host)
        self.host = host
        self.server = _Server((host, self.port), self._handler())
        if tls is not None:  # (certificate, key): clients speak TLS to the front itself (an https:// proxy)
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            # the handshake happens in each handler's thread, not in the accepting one
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.cdn_host = cdn_host
        self.cdn_port = free_port(cdn_host)
        self.cdn = _Server((cdn_host, self.cdn_port), self._cdn_handler())
        for s in (self.server, self.cdn):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def _pace(self, n: int) -> None:
        """Hold a response until a link of ``link_rate`` shared by every connection has carried ``n``
        more bytes (each chunk takes its turn on one timeline)."""
        with self.lock:
            start = max(time.monotonic(), self._link_next)
            self._link_next = start + n / self.link_rate
            until = self._link_next
        time.sleep(max(0.0, until - time.monotonic()))

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def realm(self) -> str:
        return f"http://{self.addr}/token"

    def close(self) -> None:
        for s in (self.server, self.cdn):
            s.shutdown()
            s.server_close()

    def add_fault(self, match, action: str, times: int = 1, retry_after: Optional[str] = "1") -> None:
        with self.lock:
            self.faults.append(Fault(match, action, times, retry_after))

    def _take_fault(self, method: str, path: str) -> Optional[Fault]:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.match(method, path):
                    f.times -= 1
                    return f
        return None

    # -- token service ------------------------------------------------------------------------
    def _token(self, h) -> None:
        u = urllib.parse.urlsplit(h.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        auth = h.headers.get("Authorization", "")
        subject = "anonymous"
        self.token_requests.append({"path": h.path, "authorization": auth})
        ok_push = False
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(user) != pw:
                return self._send(h, 401, b'{"details":"bad credentials"}')
            subject, ok_push = user, True
        elif auth and ":" in auth and self.ed25519_keys:
            # ollama's scheme: "<pub>:<sig>" over "GET,<full url>,<base64(hex(sha256(empty)))>"
            pub, _, sig = auth.partition(":")
            if pub not in self.ed25519_keys:
                return self._send(h, 401, b'{"error":"unknown key"}')
            url = f"http://{h.headers.get('Host')}{h.path}"
            z = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            blob = base64.b64decode(pub)
            (n,) = struct.unpack(">I", blob[:4])
            keytype = blob[4:4 + n]
            (m,) = struct.unpack(">I", blob[4 + n:8 + n])
            raw = blob[8 + n:8 + n + m]
            try:
                assert keytype == b"ssh-ed25519" and m == 32
                Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(sig), f"GET,{url},{z}".encode())
            except (InvalidSignature, AssertionError, ValueError):
                return self._send(h, 401, b'{"error":"bad signature"}')
            for k in ("ts", "nonce", "service"):
                if k not in q:
                    return self._send(h, 400, f'{{"error":"missing {k}"}}'.encode())
            if abs(int(q["ts"][0]) - time.time()) > 300:
                return self._send(h, 401, b'{"error":"stale ts"}')
            subject, ok_push = "ollama-key", True
        elif auth:
            return self._send(h, 401, b'{"error":"unsupported auth"}')
        access = []
        for scope in q.get("scope", []):
            for item in scope.split(" "):
                parts = item.split(":")
                if len(parts) == 3 and parts[0] == "repository":
                    acts = [a for a in parts[2].split(",") if a == "pull" or (a == "push" and ok_push)]
                    access.append({"type": "repository", "name": parts[1], "actions": acts})
        tok = self.signer.token(q.get("service", [""])[0], subject, access)
        self._send(h, 200, json.dumps({"token": tok, "access_token": tok, "expires_in": 300}).encode(),
                   "application/json")

    @staticmethod
    def _send(h, status: int, body: bytes, ctype: str = "application/json", headers: Optional[dict] = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    # -- proxy -----------------------------------------------------------------------------------
    def _forward(self, h, target_host: str, path: str, strip_auth: bool = False, count_blob: bool = False,
                 rewrite: bool = True, body: Optional[bytes] = None) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        pending = io.BytesIO(body) if body is not None else None
        conn = http.client.HTTPConnection(target_host, timeout=120)
        try:
            conn.putrequest(h.command, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() in ("host", "connection", "keep-alive", "proxy-connection"):
                    continue
                if self.ignore_ranges and k.lower() == "range":
                    continue  # a server that ignores byte ranges answers 200 with the whole blob
                if strip_auth and k.lower() == "authorization":
                    continue
                conn.putheader(k, v)
            conn.putheader("Host", target_host)
            conn.endheaders()
            left = length
            counting = "/blobs/uploads/" in path
            while left > 0:
                chunk = (pending or h.rfile).read(min(1 << 20, left))
                if not chunk:
                    break
                conn.send(chunk)
                left -= len(chunk)
                if counting:
                    with self.lock:
                        self.upload_bytes += len(chunk)
                if self.throttle and pending is None:
                    time.sleep(len(chunk) / self.throttle)
            resp = conn.getresponse()
        except (ConnectionError, OSError):
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "keep-alive", "transfer-encoding"):
                continue
            if rewrite and k.lower() == "location" and self.upstream and self.upstream.host in v:
                v = v.replace(self.upstream.host, self.addr)
            if rewrite and k.lower() == "www-authenticate":
                v = v.replace(self.upstream.host, self.addr) if self.upstream else v
            h.send_header(k, v)
        h.end_headers()
        if h.command == "HEAD":
            resp.close()
            return
        try:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                h.wfile.write(chunk)
                if count_blob:
                    with self.lock:
                        self.blob_bytes_served += len(chunk)
                if self.throttle and count_blob:
                    time.sleep(len(chunk) / self.throttle)
                if self.link_rate and count_blob:
                    self._pace(len(chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            resp.close()
            conn.close()

    def _handler(self):
        front = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                as_proxy = self.path.startswith("http://")
                if as_proxy:  # absolute form: we are being used as a forward proxy
                    u = urllib.parse.urlsplit(self.path)
                    with front.lock:
                        front.proxied.append((self.command, self.path))
                    self.path = u.path + (f"?{u.query}" if u.query else "")
                with front.lock:
                    front.log.append((self.command, self.path, self.headers.get("Authorization")))
                if self.path.startswith("/token"):
                    return front._token(self)
                fault = front._take_fault(self.command, self.path)
                if fault is not None:
                    # drain the body so the client sees our answer, not a broken pipe
                    left = int(self.headers.get("Content-Length") or 0)
                    while left > 0:
                        c = self.rfile.read(min(1 << 20, left))
                        if not c:
                            break
                        left -= len(c)
                    if fault.action == "reset":
                        self.close_connection = True
                        s = self.connection
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        s.close()
                        return
                    if fault.action in ("429", "503", "413"):
                        hdrs = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                        return front._send(self, int(fault.action), b'{"errors":[{"code":"TOOMANYREQUESTS"}]}',
                                           headers=hdrs)
                    if fault.action == "redirect":
                        loc = f"http://{front.cdn_host}:{front.cdn_port}/cdn{self.path}?X-Amz-Signature=secret"
                        return front._send(self, 307, b"", headers={"Location": loc})
                length = int(self.headers.get("Content-Length") or 0)
                is_upload = "/blobs/uploads/" in self.path and self.command in ("PATCH", "PUT", "POST")
                if is_upload and front.max_patch_body is not None and self.command == "PATCH" \
                        and length > front.max_patch_body:
                    left = length
                    while left > 0:
                        c = self.rfile.read(min(1 << 20, left))
                        if not c:
                            break
                        left -= len(c)
                    with front.lock:
                        front.upload_requests.append((self.command, length, 416))
                    return front._send(self, 416, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}')
                if is_upload:
                    with front.lock:
                        front.upload_requests.append((self.command, length, 0))
                body = None
                if is_upload and front.buffer_uploads and length:
                    parts, left = [], length
                    while left > 0:
                        c = self.rfile.read(min(1 << 20, left))
                        if not c:
                            break
                        parts.append(c)
                        left -= len(c)
                        if front.throttle:
                            time.sleep(len(c) / front.throttle)
                    if left:            # the client went away mid-chunk: nothing is forwarded
                        self.close_connection = True
                        return
                    body = b"".join(parts)
                is_blob = "/blobs/sha256:" in self.path and self.command == "GET"
                if is_blob:
                    with front.lock:
                        front.blob_gets_inflight += 1
                        front.max_blob_gets_inflight = max(front.max_blob_gets_inflight, front.blob_gets_inflight)
                try:
                    front._forward(self, front.upstream.host, self.path, count_blob=is_blob, rewrite=not as_proxy,
                                   body=body)
                finally:
                    if is_blob:
                        with front.lock:
                            front.blob_gets_inflight -= 1

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def do_CONNECT(self):  # a forward proxy's tunnel (https registries behind HTTPS_PROXY)
                host, _, port = self.path.rpartition(":")
                with front.lock:
                    front.proxied.append(("CONNECT", self.path))
                if front.proxy_auth and self.headers.get("Proxy-Authorization") != front.proxy_auth:
                    self.close_connection = True
                    return front._send(self, 407, b"", headers={"Proxy-Authenticate": 'Basic realm="proxy"'})
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                except (OSError, ValueError):
                    return front._send(self, 502, b"")
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                _relay(self.connection, upstream)

        return H

    def _cdn_handler(self):
        front = self

        class C(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with front.lock:
                    front.cdn_log.append((self.path, self.headers.get("Authorization"), self.headers.get("Range")))
                # object storage serves without the registry's auth: fetch from the registry with a token
                # of the front's own (anonymous pull works on the plain registry; for auth variants we
                # ask the token service as the front itself)
                path = urllib.parse.urlsplit(self.path).path[len("/cdn"):]
                hdrs = {"Range": self.headers["Range"]} if self.headers.get("Range") else {}
                if front.signer is not None:
                    repo = path.split("/blobs/")[0][len("/v2/"):]
                    tok = front.signer.token("ollama-oci-test", "cdn",
                                             [{"type": "repository", "name": repo, "actions": ["pull"]}])
                    hdrs["Authorization"] = f"Bearer {tok}"
                conn = http.client.HTTPConnection(front.upstream.host, timeout=120)
                conn.request("GET", path, headers=hdrs)
                resp = conn.getresponse()
                body_len = resp.getheader("Content-Length")
                self.send_response(resp.status)
                for k in ("Content-Length", "Content-Range", "Content-Type", "Docker-Content-Digest"):
                    if resp.getheader(k):
                        self.send_header(k, resp.getheader(k))
                self.end_headers()
                try:
                    while True:
                        c = resp.read(1 << 20)
                        if not c:
                            break
                        self.wfile.write(c)
                        with front.lock:
                            front.blob_bytes_served += len(c)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                conn.close()
                _ = body_len

        return C

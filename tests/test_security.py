"""Hostile registries, redirect targets, auth files and stores: credentials go only where they
belong, nothing is written outside the store, and bad input ends in one clear error.

Each loopback server here logs the ``Authorization`` it receives, so a leak is seen, not guessed.
The servers are small fakes of what a registry's neighbours do (object storage behind a redirect,
an upload session on another host, a token service): Docker distribution cannot be made to do
those things on demand.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading

import pytest

from conftest import TINY, run_cli
from ollama_oci import OllamaStore, Recipe, pack
from ollama_oci.errors import AuthError, RegistryError

BLOB = "sha256:" + "a" * 64
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


class Server:
    """A loopback HTTP(S) server answering with ``handler(h) -> (status, headers, body)``; records
    (method, path, Authorization) of every request."""

    def __init__(self, handler, host="127.0.0.1", tls=None, port=0):
        self.seen: list[tuple[str, str, str]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                status, headers, body = handler(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any

        self.httpd = http.server.ThreadingHTTPServer((host, port), H)
        self.httpd.daemon_threads = True
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.addr = f"{host}:{self.httpd.server_address[1]}"

    def auths(self):
        return [a for _, _, a in self.seen if a]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made = []

    def make(handler, **kw):
        s = Server(handler, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def _client(host, **kw):
    from ollama_oci.transport import Credentials, RegistryClient, TransportOptions
    kw.setdefault("max_retries", 0)
    opts = TransportOptions(plain_http=kw.pop("plain_http", True), credentials=Credentials("alice", "s3cret"), **kw)
    return RegistryClient(host, opts)


def _basic_registry(extra):
    """A registry that wants Basic auth, then answers ``extra(h)``."""
    def handler(h):
        if h.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return extra(h)
    return handler


def test_a_redirect_targets_401_is_an_error_and_never_gets_the_registry_password(servers):
    """Object storage behind a redirect asks for a Bearer token of its own: the client must not
    hand the registry's username and password to that realm."""
    cdn = servers(lambda h: (401, {"WWW-Authenticate": f'Bearer realm="http://{cdn.addr}/token"'}, b""),
                  host="127.0.0.2")
    reg = servers(_basic_registry(lambda h: (307, {"Location": f"http://{cdn.addr}/blob?X-Amz-Signature=abc"}, b"")))
    client = _client(reg.addr)
    with pytest.raises(AuthError, match="credentials are not sent to another host") as e:
        client.request("GET", f"/v2/team/m/blobs/{BLOB}", scope="repository:team/m:pull")
    assert "X-Amz-Signature" not in str(e.value)
    assert cdn.auths() == [] and not [p for _, p, _ in cdn.seen if p.startswith("/token")]
    assert BASIC in reg.auths()


def test_an_upload_session_on_another_host_gets_no_credentials(servers):
    """Docker's client does not send registry credentials to an upload Location on another host or
    port; neither do we."""
    upload = servers(lambda h: (202 if h.command == "PATCH" else 201, {"Location": "/upload/1"}, b""),
                     host="127.0.0.2")

    def api(h):
        if h.command == "HEAD":
            return 404, {}, b""
        if h.command == "POST":
            return 202, {"Location": f"http://{upload.addr}/upload/1?state=x"}, b""
        return 201, {}, b""
    reg = servers(_basic_registry(api))
    from ollama_oci.spec import Descriptor
    from ollama_oci.stores.contract import BlobSource
    from ollama_oci.stores.memory import MemoryStore
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import Credentials, TransportOptions
    for chunk in (None, 4):
        upload.seen.clear()
        store = RegistryStore(reg.addr, TransportOptions(plain_http=True, credentials=Credentials("alice", "s3cret"),
                                                         max_retries=0), chunk_size=chunk)
        mem, desc = MemoryStore.of(b"0123456789")
        assert store.repository("team/m").push(desc, BlobSource(mem, desc)) == "uploaded"
        assert upload.seen and upload.auths() == [], upload.seen
    assert isinstance(desc, Descriptor)


def test_a_token_realm_on_plain_http_from_an_https_registry_is_refused(servers, tmp_path):
    from registry_env import make_ca_and_cert
    ca, cert, key = make_ca_and_cert(str(tmp_path))
    token = servers(lambda h: (200, {}, b'{"token": "t"}'))
    reg = servers(lambda h: (401, {"WWW-Authenticate": f'Bearer realm="http://{token.addr}/token",service="r"'}, b"")
                  if not (h.headers.get("Authorization") or "").startswith("Bearer") else (200, {}, b"{}"),
                  tls=(cert, key))
    client = _client(reg.addr, plain_http=False, ca_file=ca)
    with pytest.raises(AuthError, match="plain http"):
        client.request("GET", "/v2/", scope="")
    assert token.seen == []  # not even asked
    # a registry used with --plain-http may name a plain-http token service
    reg2 = servers(lambda h: (401, {"WWW-Authenticate": f'Bearer realm="http://{token.addr}/token"'}, b"")
                   if not (h.headers.get("Authorization") or "").startswith("Bearer") else (200, {}, b"{}"))
    assert _client(reg2.addr).request("GET", "/v2/", scope="").status_code == 200
    assert token.auths() == [BASIC]


def test_https_registry_redirecting_to_plain_http_on_the_same_host_gets_no_password(servers, tmp_path):
    """https://127.0.0.1 (port 443) redirects a blob to http://127.0.0.1/ (port 80): same host, default
    ports, another scheme. The password must not travel in cleartext. Needs the two well-known ports
    on loopback (root, as in CI); skipped where they are taken."""
    from registry_env import make_ca_and_cert
    ca, cert, key = make_ca_and_cert(str(tmp_path))

    def reg_handler(h):
        if h.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 307, {"Location": f"http://127.0.0.1/v2/team/m/blobs/{BLOB}"}, b""
    try:
        plain = servers(lambda h: (200, {}, b""), port=80)
        servers(reg_handler, tls=(cert, key), port=443)
    except OSError:
        pytest.skip("ports 80 and 443 on loopback are not available here")
    resp = _client("127.0.0.1", plain_http=False, ca_file=ca).request("GET", f"/v2/team/m/blobs/{BLOB}",
                                                                      scope="repository:team/m:pull")
    assert resp.status_code == 200
    assert plain.seen and plain.auths() == []  # the plain-http leg got no Authorization


def test_authorization_is_bound_to_scheme_host_and_port():
    """https://h and http://h are two origins (an https registry redirecting to http on the same
    host must not get the password in cleartext), as are two ports of one host. The requests are
    recorded, not sent: a TLS and a plain server cannot share a port here."""
    from ollama_oci.transport.http import RegistryClient, TransportOptions, _origin
    assert _origin("https://reg.example/v2/") != _origin("http://reg.example/v2/")
    assert _origin("https://reg.example/v2/") == _origin("https://REG.example:443/x")
    assert _origin("http://[::1/x") is None

    class Rec:
        def __init__(self, status, headers):
            self.status_code, self.headers, self.url = status, headers, ""

        def close(self):
            pass
    sent = []
    answers = [Rec(307, {"Location": "http://reg.example/v2/x/blobs/y"}), Rec(200, {})]
    c = RegistryClient("reg.example", TransportOptions())

    def send(method, url, headers=None, body=None, timeout=None):
        sent.append((url, (headers or {}).get("Authorization")))
        r = answers.pop(0)
        r.url = url
        return r
    c.send = send
    c._send_following("GET", "https://reg.example/v2/x/blobs/y", {}, BASIC, None, True, None)
    assert sent == [("https://reg.example/v2/x/blobs/y", BASIC), ("http://reg.example/v2/x/blobs/y", None)]


def test_a_malformed_redirect_is_a_clear_error(servers):
    reg = servers(lambda h: (307, {"Location": "http://[::1/broken"}, b""))
    with pytest.raises(RegistryError, match="invalid URL"):
        _client(reg.addr).request("GET", f"/v2/team/m/blobs/{BLOB}")


def test_server_error_bodies_and_reasons_are_printed_safely(servers):
    from ollama_oci.transport.http import error_from
    reg = servers(lambda h: (500, {}, b"\x1b[2Jboom\r\nX-Injected: 1\x00\xff"))
    resp = _client(reg.addr, max_backoff=0).send("GET", f"http://{reg.addr}/v2/")
    msg = str(error_from(resp, "GET /v2/"))
    assert "\x1b" not in msg and "\n" not in msg and "\r" not in msg and "\\x1b" in msg


def test_a_failing_credential_helper_never_logs_its_stdout(tmp_path, monkeypatch, caplog):
    import logging

    from ollama_oci.transport.auth import run_helper
    helper = tmp_path / "docker-credential-leaky"
    helper.write_text("#!/bin/sh\necho 'the-secret-token'\necho 'boom' >&2\nexit 1\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with caplog.at_level(logging.DEBUG, logger="ollama_oci"):
        assert run_helper("leaky", "get", "reg.example") is None
    assert "the-secret-token" not in caplog.text and "boom" in caplog.text


@pytest.mark.parametrize("content", [b"{not json", b'["a list"]', b"[" * 100000 + b"]" * 100000,
                                     b'{"auths": {}, "pad": "' + b"x" * (17 << 20) + b'"}'],
                         ids=["malformed", "not-an-object", "deeply-nested", "over-16MiB"])
def test_login_never_rewrites_a_docker_config_it_cannot_parse(tmp_path, monkeypatch, content):
    from ollama_oci.transport.auth import save_login
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    cfg = tmp_path / "config.json"
    cfg.write_bytes(content)
    with pytest.raises(AuthError, match="left as it is"):
        save_login("reg.example", "alice", "s3cret")
    assert cfg.read_bytes() == content


def test_login_keeps_everything_else_in_a_large_docker_config(tmp_path, monkeypatch):
    from ollama_oci.transport.auth import save_login
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    big = {"auths": {f"r{i}.example": {"auth": "eDp5"} for i in range(30000)}, "proxies": {"default": {}},
           "currentContext": "x"}
    (tmp_path / "config.json").write_text(json.dumps(big))  # well over 1 MiB
    assert os.path.getsize(tmp_path / "config.json") > 1 << 20
    save_login("reg.example", "alice", "s3cret")
    after = json.loads((tmp_path / "config.json").read_text())
    assert len(after["auths"]) == 30001 and after["proxies"] == {"default": {}} and after["currentContext"] == "x"


def test_a_credential_helper_answering_a_list_is_ignored(tmp_path, monkeypatch):
    from ollama_oci.transport.auth import find_credentials
    helper = tmp_path / "docker-credential-odd"
    helper.write_text("#!/bin/sh\necho '[]'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    (tmp_path / "config.json").write_text('{"credHelpers": {"reg.example": "odd"}}')
    assert find_credentials("reg.example") is None


def test_a_symlink_planted_as_the_partial_download_is_refused(tmp_path):
    """Someone who can write into blobs/ plants .partial-<hex> as a symlink to a file of the user's:
    the pull must not truncate, write or chmod that file through it."""
    from ollama_oci.errors import StoreError
    from ollama_oci.stores.contract import BlobSource
    from ollama_oci.stores.memory import MemoryStore
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.chmod(victim, 0o600)
    store = OllamaStore(str(tmp_path / "models"))
    store.prepare()
    mem, desc = MemoryStore.of(b"x" * 1000)
    os.symlink(victim, os.path.join(store.blobs_dir, f".partial-{desc.digest.hex}"))
    with pytest.raises(StoreError, match="symlink"):
        store.push(desc, BlobSource(mem, desc))
    assert victim.read_bytes() == b"precious" and (os.stat(victim).st_mode & 0o777) == 0o600
    assert not store.exists(desc)


def test_verify_reports_a_symlinked_blob_and_the_store_never_follows_it(tmp_path):
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[TINY]), "m", [store], link_mode="copy")
    model = res.manifest.layers[0]
    path = store.blob_path(model.digest)
    real = tmp_path / "elsewhere"
    os.replace(path, real)
    os.symlink(real, path)
    problems = store.verify()[1]
    assert [(p.kind, p.digest) for p in problems] == [("symlink", str(model.digest))]
    assert store.find_blob(model.digest) is None
    cp = run_cli("verify", "--models-dir", store.root)
    assert cp.returncode == 5 and "symlink" in cp.stderr


def test_prune_keeps_a_running_packs_hard_linked_temp_file(tmp_path):
    """A hard link made now keeps its source's old mtime, so age cannot tell a running pack's temp
    file from a leftover: the pack holds a lock on it, and prune leaves locked files alone."""
    import time

    from ollama_oci.fsutil import discard_staged
    src = tmp_path / "old.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 100)
    os.utime(src, (time.time() - 86400, time.time() - 86400))
    store = OllamaStore(str(tmp_path / "models"))
    st = store.stage_file(str(src), link_mode="hardlink")  # what a running pack holds
    assert os.stat(st.tmp).st_mtime < time.time() - 3600
    removed, _ = store.prune(grace=3600)
    assert removed == [] and os.path.exists(st.tmp)
    discard_staged(st)
    leftover = os.path.join(store.blobs_dir, ".tmp-ollama-oci-1-dead")  # a pack that died: no lock
    os.link(src, leftover)
    removed, _ = store.prune(grace=3600)
    assert removed == [leftover] and src.exists()


def test_a_bundle_with_one_bad_name_installs_nothing(tmp_path):
    """The second model's name is invalid: the first must not be installed either."""
    import tarfile
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY], system="a"), "a:1", [store])
    pack(Recipe(files=[TINY], system="b"), "b:1", [store])
    out = tmp_path / "x.tar"
    run_cli("export", "a:1", "b:1", "-o", out, "--models-dir", store.root, check=0)
    bad = tmp_path / "bad.tar"
    with tarfile.open(out) as src, tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "index.json":
                idx = json.loads(data)
                idx["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"] = "../../etc:x"
                data = json.dumps(idx).encode()
                m.size = len(data)
            import io
            dst.addfile(m, io.BytesIO(data))
    cp = run_cli("import", bad, "--models-dir", tmp_path / "dst")
    assert cp.returncode == 3, cp.stderr
    dst = OllamaStore(str(tmp_path / "dst"))
    assert dst.list() == [] and not [f for f in os.listdir(dst.blobs_dir) if f.startswith("sha256-")]


@pytest.mark.parametrize("where", ["manifest", "index"])
def test_deeply_nested_json_in_a_store_is_one_clear_error(tmp_path, where):
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY]), "good:1", [store])
    nested = b"[" * 100000 + b"]" * 100000
    if where == "manifest":
        p = tmp_path / "models" / "manifests" / "registry.ollama.ai" / "library" / "bad"
        p.mkdir(parents=True)
        (p / "1").write_bytes(nested)
        cp = run_cli("list", "--models-dir", store.root, "--json", check=0)  # the bad one is skipped
        assert [m["name"] for m in json.loads(cp.stdout)["models"]] == ["good:1"]
        cp = run_cli("verify", "--models-dir", store.root)
        assert cp.returncode == 5 and "bad:1" in cp.stderr and "internal error" not in cp.stderr
    else:
        layout = tmp_path / "layout"
        layout.mkdir()
        (layout / "index.json").write_bytes(nested)
        cp = run_cli("list", "--oci-layout", layout)
        assert cp.returncode == 3 and "nested too deeply" in cp.stderr


def test_control_characters_from_a_gguf_cannot_forge_output_lines(tmp_path):
    """A GGUF's strings (its name, its keys, a system prompt packed with it) are the author's:
    printed raw, a newline or an escape sequence could forge lines or drive the terminal."""
    import numpy as np
    from gguf import GGUFWriter
    path = tmp_path / "evil.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_string("general.name", "innocent\nerror: forged line\x1b[2J")
    w.add_string("evil.\x1b[31mkey", "v")
    w.add_tensor("token_embd.weight\nfake", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cp = run_cli("inspect", path, "--tensors", check=0)
    assert "\x1b" not in cp.stdout and "\nerror: forged line" not in cp.stdout and "\nfake" not in cp.stdout
    assert "\\x1b" in cp.stdout
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[str(path)], system="hi\n\x1b]0;pwned\x07there"), "evil:1", [store])
    cp = run_cli("show", "evil:1", "--models-dir", store.root, check=0)
    assert "\x1b" not in cp.stdout and "\x07" not in cp.stdout
    cp = run_cli("show", "evil:1", "--modelfile", "--models-dir", store.root, check=0)
    assert "\x1b]0;pwned\x07" in cp.stdout  # to a file or pipe, a Modelfile keeps its bytes


def _limited(limit: int):
    """preexec_fn: an address-space limit, so a regression that holds a bundle in memory fails here
    instead of passing on a large machine."""
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def _run_limited(*args, limit=1 << 30):
    import subprocess
    import sys

    from conftest import REPO
    env = dict(os.environ)
    env.pop("OLLAMA_MODELS", None)
    return subprocess.run([sys.executable, "-m", "ollama_oci.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300, preexec_fn=_limited(limit))


def _header(name: str, size: int, kind: bytes = b"0") -> bytes:
    """A ustar header block (what a hostile tool may write)."""
    h = bytearray(512)
    h[:len(name)] = name.encode()
    h[100:107] = b"0000644"
    h[124:135] = f"{size:011o}".encode()
    h[136:147] = b"00000000000"
    h[156:157] = kind
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:155] = f"{sum(h):06o}\0".encode()
    return bytes(h)


def _zst_bundle(path, pieces):
    """Write a .tar.zst from (bytes | ("zeros", n)) pieces, compressing as it goes (never in memory)."""
    import zstandard
    with open(path, "wb") as raw:
        w = zstandard.ZstdCompressor(level=1).stream_writer(raw)
        for p in pieces:
            if isinstance(p, tuple):
                left = p[1]
                block = b"\0" * (1 << 20)
                while left:
                    w.write(block[:min(left, len(block))])
                    left -= min(left, len(block))
            else:
                w.write(p)
        w.write(b"\0" * 1024)
        w.close()


def _exported(tmp_path):
    """The members of a real one-model bundle: (name, bytes) in order."""
    import tarfile
    store = OllamaStore(str(tmp_path / "src"))
    pack(Recipe(files=[TINY], system="x"), "team/m:1", [store])
    out = tmp_path / "real.tar"
    run_cli("export", "team/m:1", "-o", out, "--models-dir", store.root, check=0)
    with tarfile.open(out) as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def _pad(n):
    return b"\0" * ((512 - n % 512) % 512)


@pytest.mark.slow
def test_a_bundle_of_many_unreferenced_members_imports_in_flat_memory(tmp_path):
    """165 KB of .tar.zst expanding to 1.2 GB of members no model uses: skipped unread, not held."""
    members = _exported(tmp_path)
    pieces = []
    for name, data in members:
        pieces += [_header(name, len(data)), data, _pad(len(data))]
    for i in range(300):
        pieces += [_header(f"blobs/sha256/{i:064x}", 4 << 20), ("zeros", 4 << 20)]
    bundle = tmp_path / "many.tar.zst"
    _zst_bundle(bundle, pieces)
    assert os.path.getsize(bundle) < 1 << 20
    cp = _run_limited("import", bundle, "--models-dir", tmp_path / "dst")
    assert cp.returncode == 0, cp.stderr
    assert [e.name.display for e in OllamaStore(str(tmp_path / "dst")).list()] == ["team/m:1"]


def test_a_bundle_with_a_huge_pax_header_is_refused_at_once(tmp_path):
    bundle = tmp_path / "pax.tar.zst"
    _zst_bundle(bundle, [_header("././@PaxHeader", 1 << 30, b"x"), ("zeros", 1 << 30)])
    cp = _run_limited("import", bundle, "--models-dir", tmp_path / "dst")
    assert cp.returncode == 5 and "PAX header" in cp.stderr, cp.stderr
    assert OllamaStore(str(tmp_path / "dst")).list() == []


def test_a_blob_repeated_in_a_bundle_is_written_once_and_leaves_nothing(tmp_path):
    from gguf_factory import make_big_gguf
    big = tmp_path / "big.gguf"
    make_big_gguf(str(big), 6 << 20)
    store = OllamaStore(str(tmp_path / "src"))
    res = pack(Recipe(files=[str(big)]), "team/m:1", [store])
    weights = res.manifest.layers[0]
    out = tmp_path / "one.tar"
    run_cli("export", "team/m:1", "-o", out, "--models-dir", store.root, check=0)
    import tarfile
    with tarfile.open(out) as t:
        members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
    pieces = []
    for name, data in members:
        times = 20 if name.endswith(weights.digest.hex) else 1
        for _ in range(times):
            pieces += [_header(name, len(data)), data, _pad(len(data))]
    bundle = tmp_path / "repeated.tar.zst"
    _zst_bundle(bundle, pieces)
    cp = run_cli("import", bundle, "--models-dir", tmp_path / "dst", "--json", check=0)
    assert json.loads(cp.stdout)["blobs"] == len(res.manifest.blobs)
    dst = OllamaStore(str(tmp_path / "dst"))
    assert dst.verify()[1] == []
    assert [f for f in os.listdir(dst.blobs_dir) if not f.startswith("sha256-")] == []  # no temp files left


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Answers a blob GET with a large Content-Length, then one byte every ``gap`` seconds (or,
    with gap None, nothing at all)."""
    protocol_version = "HTTP/1.1"
    gap = 0.2
    requests = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        import time
        try:
            for _ in range(200):
                if self.gap is None:
                    time.sleep(10)
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(self.gap)
        except OSError:
            pass


def _trickle_server(gap):
    handler = type("H", (_Trickle,), {"gap": gap, "requests": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


def test_a_trickling_server_is_a_stall_and_the_pull_gives_up_in_bounded_time(tmp_path, monkeypatch):
    """One byte every 0.2 s never trips a socket timeout; the stall rule (too few bytes in a window)
    drops the transfer, and the blob's failure budget ends it."""
    import time

    import ollama_oci.stores.partial as partial
    from ollama_oci.spec import Descriptor
    from ollama_oci.stores.contract import BlobSource
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions
    monkeypatch.setattr(partial, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(partial, "BLOB_TRIES", 2)
    httpd, handler = _trickle_server(0.2)
    try:
        repo = RegistryStore(f"127.0.0.1:{httpd.server_address[1]}",
                             TransportOptions(plain_http=True, max_retries=0)).repository("team/m")
        desc = Descriptor("application/octet-stream", "sha256:" + "b" * 64, 1 << 20)
        store = OllamaStore(str(tmp_path / "models"))
        t0 = time.monotonic()
        with pytest.raises(RegistryError, match="stalled"):
            store.push(desc, BlobSource(repo, desc))
        assert time.monotonic() - t0 < 30 and handler.requests == 3  # the first try and two resumes
        assert not store.exists(desc)
    finally:
        httpd.shutdown()


def test_a_silent_server_times_out_in_seconds(tmp_path):
    import time

    from ollama_oci.transport import TransportOptions
    from ollama_oci.transport.http import RegistryClient
    httpd, handler = _trickle_server(None)
    try:
        c = RegistryClient(f"127.0.0.1:{httpd.server_address[1]}",
                           TransportOptions(plain_http=True, read_timeout=1, max_retries=1, backoff=0))
        resp = c.request("GET", "/v2/x/blobs/" + BLOB)
        t0 = time.monotonic()
        with pytest.raises(Exception, match="did not answer in time|timed out"):
            resp.read_some(1 << 20)
            resp.read_some(1 << 20)
        assert time.monotonic() - t0 < 10
    finally:
        httpd.shutdown()


def test_retries_stop_at_the_retry_budget(servers):
    """A registry answering 503 with Retry-After forever: the request gives up when its budget of
    seconds is spent, not after max_retries waits."""
    import time
    reg = servers(lambda h: (503, {"Retry-After": "1"}, b""))
    c = _client(reg.addr, max_retries=100, retry_budget=2.5)
    t0 = time.monotonic()
    resp = c.request("GET", "/v2/")
    assert resp.status_code == 503 and time.monotonic() - t0 < 6 and len(reg.seen) <= 4


def test_a_blob_larger_than_the_free_disk_is_refused_before_anything_is_allocated(tmp_path):
    """A manifest may claim any size (2**62 bytes): nothing is allocated or downloaded for it."""
    from ollama_oci.errors import StoreError
    from ollama_oci.spec import Descriptor
    from ollama_oci.stores.contract import BlobSource
    from ollama_oci.stores.memory import MemoryStore
    store = OllamaStore(str(tmp_path / "models"))
    desc = Descriptor("application/octet-stream", "sha256:" + "c" * 64, 1 << 62)
    with pytest.raises(StoreError, match="free"):
        store.push(desc, BlobSource(MemoryStore(), desc))
    assert not [f for f in os.listdir(store.blobs_dir) if f.startswith(".partial") and not f.endswith(".lock")]


def _gguf_with_array(path, etype: int, count: int, payload_writer):
    """A GGUF v3 with no tensors and one array value ``hostile`` (written by ``payload_writer(f)``)."""
    import struct
    key = b"hostile"
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                + struct.pack("<IIQ", 9, etype, count))
        payload_writer(f)


def test_inspect_of_a_huge_array_decodes_only_what_it_shows(tmp_path):
    """50 MB of int32s: inspect prints five of them, in a few MB, not a list of 12.5 million."""
    import struct
    path = tmp_path / "huge.gguf"
    n = 12_500_000
    # values outside Python's small-int cache: decoded whole, each would be an object of its own
    _gguf_with_array(path, 5, n, lambda f: f.write(struct.pack("<5i", 1, 2, 3, 4, 5) + b"\x01" * (4 * (n - 5))))
    cp = _run_limited("inspect", path, limit=400 << 20)
    assert cp.returncode == 0, cp.stderr
    assert "hostile = [INT32 x 12500000] [1, 2, 3, 4, 5, ...]" in cp.stdout
    cp = _run_limited("inspect", path, "--json", limit=400 << 20)
    assert cp.returncode == 0 and json.loads(cp.stdout)["metadata"]["hostile"]["head"] == [1, 2, 3, 4, 5] + [0x01010101] * 3


def test_millions_of_nested_empty_arrays_are_refused_at_once(tmp_path):
    """48 MB of empty arrays inside an array (each would be an object): one clear error, no GBs."""
    import struct
    path = tmp_path / "nested.gguf"
    n = 4_000_000
    _gguf_with_array(path, 9, n, lambda f: f.write(struct.pack("<IQ", 5, 0) * n))
    cp = _run_limited("inspect", path, limit=400 << 20)
    assert cp.returncode == 3 and "nested in arrays" in cp.stderr, cp.stderr
    assert cp.stderr.count("\n") == 1


def test_pax_records_are_parsed_in_linear_time(tmp_path):
    """CVE-2024-6232: tarfile's PAX header regex backtracks on crafted records (this Python, 3.11.7,
    is affected). The bundle reader parses records by hand: a crafted header just fails."""
    import time
    crafted = b"0" * 30000 + b" " + b"=" * 30000  # digits then a run the old pattern backtracks over
    bundle = tmp_path / "cve.tar.zst"
    _zst_bundle(bundle, [_header("././@PaxHeader", len(crafted), b"x"), crafted, _pad(len(crafted))])
    t0 = time.monotonic()
    cp = _run_limited("import", bundle, "--models-dir", tmp_path / "dst")
    assert cp.returncode in (3, 5) and "Traceback" not in cp.stderr, cp.stderr
    assert time.monotonic() - t0 < 20


def test_login_goes_where_lookup_looks_first(tmp_path, monkeypatch):
    """Stale credentials in $REGISTRY_AUTH_FILE win at lookup: a login must replace them there (as
    podman does), not write the Docker config behind them; logout clears every file."""
    from ollama_oci.transport.auth import find_credentials, remove_login, save_login
    auth = tmp_path / "auth.json"
    stale = base64.b64encode(b"alice:old").decode()
    auth.write_text(json.dumps({"auths": {"reg.example": {"auth": stale}, "other.example": {"auth": stale}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    assert save_login("reg.example", "alice", "new") == str(auth)
    c = find_credentials("reg.example")
    assert (c.username, c.password) == ("alice", "new")
    assert "other.example" in json.loads(auth.read_text())["auths"]  # the rest kept
    assert remove_login("reg.example") and find_credentials("reg.example") is None
    assert not remove_login("reg.example")


def test_the_ollama_version_claimed_to_ollamas_hosts_is_a_setting(monkeypatch, servers):
    """registry.ollama.ai answers 412 to clients too old for a model: the version we claim is an
    option (and an environment variable), and a 412 says what to do."""
    from ollama_oci.transport.http import OLLAMA_CLIENT_VERSION, RegistryClient, TransportOptions, error_from
    monkeypatch.delenv("OLLAMA_OCI_OLLAMA_VERSION", raising=False)
    assert f"ollama/{OLLAMA_CLIENT_VERSION} " in RegistryClient("registry.ollama.ai").user_agent
    monkeypatch.setenv("OLLAMA_OCI_OLLAMA_VERSION", "v0.40.1")
    assert RegistryClient("registry.ollama.ai").user_agent.startswith("ollama/0.40.1 ")
    assert RegistryClient("registry.ollama.ai", TransportOptions(ollama_version="0.41.0")).user_agent.startswith(
        "ollama/0.41.0 ")
    assert RegistryClient("reg.example").user_agent.startswith("ollama-oci/")  # others: our own name
    with pytest.raises(RegistryError, match="not an Ollama version"):
        RegistryClient("registry.ollama.ai", TransportOptions(ollama_version="latest"))
    reg = servers(lambda h: (412, {}, b'{"errors":[{"code":"PRECONDITION","message":"requires ollama 0.50"}]}'))
    resp = _client(reg.addr).send("GET", f"http://{reg.addr}/v2/")
    assert "--ollama-version" in str(error_from(resp, "GET manifest"))

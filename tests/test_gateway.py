"""``ollama-oci serve``: stock-Ollama pulls and pushes through the gateway, in front of a real Docker
distribution that serves blobs with 200 (which stock Ollama cannot pull from directly).

The client is ``tests/ollama_client.py``: stock Ollama's pull/push, rule by rule (ollama-format.md §12).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import urllib3

pytest.importorskip("aiohttp")

from conftest import REPO, TINY, run_cli  # noqa: E402
from ollama_client import OllamaError, StockOllama, sign_key_pair  # noqa: E402
from ollama_oci import OCILayout, OllamaStore, Recipe, pack, parse_name  # noqa: E402
from registry_env import free_port  # noqa: E402


class Gateway:
    """``ollama-oci serve`` as a real process on a free loopback port."""

    def __init__(self, tmp_path, *args, name: str = "gw", data_dir=None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data_dir = str(data_dir or tmp_path / f"{name}-data")
        self.access_log = str(tmp_path / f"{name}-access.log")
        self.stderr_path = str(tmp_path / f"{name}-stderr.log")
        self.args = args
        self.start()

    def start(self):
        self.stderr = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.pop("OLLAMA_MODELS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_oci.cli", "serve", "--listen", self.host, "--data-dir", self.data_dir,
             "--access-log", self.access_log, *map(str, self.args)],
            stdout=self.stderr, stderr=self.stderr, cwd=REPO, env=env)
        http = urllib3.PoolManager(retries=False)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.log()}")
            try:
                if http.request("GET", f"http://{self.host}/healthz", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway did not start: {self.log()}")

    def log(self) -> str:
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def access(self) -> list[dict]:
        with open(self.access_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self, sig=signal.SIGTERM, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


@pytest.fixture
def gateways(tmp_path):
    made = []

    def make(*args, **kw):
        g = Gateway(tmp_path, *args, name=f"gw{len(made)}", **kw)
        made.append(g)
        return g
    yield make
    for g in made:
        g.stop(signal.SIGKILL)


def _packed(tmp_path, name="team/tiny:1", store=None):
    store = store or OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY], system="You are tiny.", params={"temperature": 0.5}, licenses=["MIT"]),
               name, [store], link_mode="copy")
    return store, res


def _blobs(models_dir) -> dict:
    d = os.path.join(str(models_dir), "blobs")
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in os.listdir(d)}


def _assert_pulled(models_dir, manifest) -> None:
    got = _blobs(models_dir)
    assert set(got) == {d.digest.filename for d in manifest.blobs}
    for f, h in got.items():
        assert f == "sha256-" + h


# -- the basics ---------------------------------------------------------------------------------------

def test_stock_pull_fails_against_distribution_and_works_through_the_gateway(tmp_path, registry_factory, gateways):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    # §12.3: distribution on a filesystem answers the probe with 200 and no Location
    with pytest.raises(OllamaError, match="no Location header in response"):
        StockOllama(reg.host).pull("team/tiny", "1", str(tmp_path / "direct"))
    gw = gateways("--from", reg.host, "--plain-http")
    client = StockOllama(gw.host, part_size_override=1000)   # small parts: several ranged GETs per blob
    raw = client.pull("team/tiny", "1", str(tmp_path / "via-gw"))
    assert raw == res.manifest.to_bytes(newline=False)
    _assert_pulled(tmp_path / "via-gw", res.manifest)
    parts = [h for m, u, h in client.requests if "Range" in h]
    assert parts and all("Authorization" not in h for h in parts)   # §12.4: parts carry no credentials
    # the same pull by ollama-oci and by skopeo through the gateway
    run_cli("pull", f"{gw.host}/team/tiny:1", "--plain-http", "--models-dir", tmp_path / "ours", check=0)
    assert OllamaStore(str(tmp_path / "ours")).verify()[1] == []
    raw2 = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{gw.host}/team/tiny:1"],
                          capture_output=True, check=True).stdout
    assert raw2 == raw


def test_local_sources_layout_models_dir_and_bundles(tmp_path, gateways):
    """One gateway, three local sources routed by prefix; stock pull from each."""
    ollama_dir = tmp_path / "models"
    _, res = _packed(tmp_path, "team/tiny:1", OllamaStore(str(ollama_dir)))
    layout = OCILayout(str(tmp_path / "layout"))
    pack(Recipe(files=[TINY], system="From a layout."), "lay/tiny:2", [layout], link_mode="copy")
    lay_m, lay_raw = layout.get_manifest(parse_name("lay/tiny:2"))
    run_cli("export", "team/tiny:1", "-o", tmp_path / "b.tar.zst", "--models-dir", ollama_dir, check=0)
    run_cli("export", "team/tiny:1", "-o", tmp_path / "b.tar", "--models-dir", ollama_dir, check=0)
    gw = gateways("--from", f"team/=ollama:{ollama_dir}", "--from", f"lay/=oci:{tmp_path / 'layout'}",
                  "--from", f"zst/={tmp_path / 'b.tar.zst'}", "--from", f"tar/={tmp_path / 'b.tar'}")
    c = StockOllama(gw.host)
    raw = c.pull("team/tiny", "1", str(tmp_path / "p1"))
    assert raw == open(OllamaStore(str(ollama_dir)).manifest_path(parse_name("team/tiny:1")), "rb").read()
    _assert_pulled(tmp_path / "p1", res.manifest)
    assert c.pull("lay/tiny", "2", str(tmp_path / "p2")) == lay_raw
    _assert_pulled(tmp_path / "p2", lay_m)
    # a bundle's names are the models it holds; the prefix routes, the whole name is looked up
    with pytest.raises(OllamaError, match="does not exist"):
        c.pull("zst/tiny", "1", str(tmp_path / "p3"))
    # a blob is served only under a repository whose manifest names it
    model = res.manifest.layers[0]
    http = urllib3.PoolManager(retries=False)
    assert http.request("HEAD", f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}").status == 200
    assert http.request("HEAD", f"http://{gw.host}/v2/lay/other/blobs/{model.digest}").status == 404
    assert http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/nope").status == 404
    assert http.request("GET", f"http://{gw.host}/v2/team/../etc/manifests/1").status == 404


def test_bundle_source_serves_the_models_it_holds(tmp_path, gateways):
    ollama_dir = tmp_path / "models"
    _, res = _packed(tmp_path, "team/tiny:1", OllamaStore(str(ollama_dir)))
    for ext in ("tar.zst", "tar"):
        bundle = tmp_path / f"b.{ext}"
        run_cli("export", "team/tiny:1", "-o", bundle, "--models-dir", ollama_dir, check=0)
        gw = gateways("--from", bundle)
        StockOllama(gw.host).pull("team/tiny", "1", str(tmp_path / f"p-{ext}"))
        _assert_pulled(tmp_path / f"p-{ext}", res.manifest)
        gw.stop()
    # a restart does not unpack it again
    gw = gateways("--from", tmp_path / "b.tar", data_dir=tmp_path / "gw3-data")
    stamp = [p for p in (tmp_path / "gw3-data" / "bundles").rglob(".imported-from")]
    assert len(stamp) == 1
    before = stamp[0].stat().st_mtime_ns
    gw.stop()
    gw = gateways("--from", tmp_path / "b.tar", data_dir=tmp_path / "gw3-data")
    assert stamp[0].stat().st_mtime_ns == before
    # one data directory, one gateway: a second one is refused (exit 6) instead of wiping its work
    cp = run_cli("serve", "--from", tmp_path / "b.tar", "--listen", "127.0.0.1:1", "--data-dir", tmp_path / "gw3-data")
    assert cp.returncode == 6 and "in use by another gateway" in cp.stderr
    StockOllama(gw.host).pull("team/tiny", "1", str(tmp_path / "p-again"))


def test_oci_manifests_are_served_in_docker_form_to_ollama(tmp_path, registry_factory, gateways):
    """Ollama asks for Docker schema 2 only; an OCI-form model upstream is re-encoded (new digest),
    and generic clients that accept OCI get the bytes as stored."""
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:oci", "--format", "oci", "--plain-http", "--models-dir",
            src.root, check=0)
    gw = gateways("--from", reg.host, "--plain-http")
    raw = StockOllama(gw.host).pull("team/tiny", "oci", str(tmp_path / "p"))
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw == res.manifest.to_bytes(newline=False)     # the same artifact, as ollama push would send it
    _assert_pulled(tmp_path / "p", res.manifest)
    http = urllib3.PoolManager()
    d = "sha256:" + hashlib.sha256(raw).hexdigest()
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/{d}",
                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.status == 200 and r.data == raw and r.headers["Docker-Content-Digest"] == d
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/oci",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status == 200 and json.loads(r.data)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_generic_clients_read_through_the_gateway(tmp_path, registry_factory, gateways):
    import oras.client
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    cfg = tmp_path / "gw.toml"     # the same as --from HOST --plain-http --cache-size 1GB, as a file
    cfg.write_text(f'[[source]]\nfrom = "{reg.host}"\n[upstream]\nplain_http = true\n[cache]\nmax_size = "1GB"\n')
    gw = gateways("--config", cfg)
    http = urllib3.PoolManager()
    r = http.request("GET", f"http://{gw.host}/v2/")
    assert r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/tags/list")
    assert json.loads(r.data) == {"name": "team/tiny", "tags": ["1"]}
    model = res.manifest.layers[0]
    r = http.request("HEAD", f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}")
    assert r.status == 200 and int(r.headers["Content-Length"]) == model.size
    blob = open(os.path.join(src.root, "blobs", model.digest.filename), "rb").read()
    for _ in range(2):   # uncached (a fill), then cached (sendfile)
        r = http.request("GET", f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}", headers={"Range": "bytes=10-99"})
        assert r.status == 206 and r.data == blob[10:100]
        assert r.headers["Content-Range"] == f"bytes 10-99/{model.size}"
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}")
    assert r.status == 200 and r.data == blob
    client = oras.client.OrasClient(hostname=gw.host, insecure=True)
    files = client.pull(target=f"{gw.host}/team/tiny:1", outdir=str(tmp_path / "oras"))
    got = {"sha256:" + hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files}
    assert got == {str(d.digest) for d in res.manifest.layers}
    sk = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{gw.host}/team/tiny:1"],
                        capture_output=True, check=True).stdout
    assert sk == res.manifest.to_bytes(newline=False)
    r = http.request("GET", f"http://{gw.host}/metrics")
    text = r.data.decode()
    assert "ollama_oci_gateway_cache_hits_total" in text and 'code="206"' in text


# -- auth ---------------------------------------------------------------------------------------------

def _keys(tmp_path):
    rw = sign_key_pair(str(tmp_path / "rw"))
    ro = sign_key_pair(str(tmp_path / "ro"))
    stranger = sign_key_pair(str(tmp_path / "stranger"))
    keys = tmp_path / "authorized_keys"
    keys.write_text(f'# the Ollama servers\nread="*",write="team/" ssh-ed25519 {rw.public_b64} builder\n'
                    f"ssh-ed25519 {ro.public_b64} server-1\n")
    return rw, ro, stranger, keys


def test_auth_ed25519_keys_signed_urls_and_permissions(tmp_path, gateways):
    import base64
    import hmac
    layout_dir = tmp_path / "layout"
    layout = OCILayout(str(layout_dir))
    res = pack(Recipe(files=[TINY], system="secret model"), "team/tiny:1", [layout], link_mode="copy")
    rw, ro, stranger, keys = _keys(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(base64.b64encode(os.urandom(32)))
    gw = gateways("--from", f"oci:{layout_dir}", "--writable", "--authorized-keys", keys, "--secret-file", secret)
    http = urllib3.PoolManager(retries=False)
    # no credentials: 401 with a realm on the gateway's own host:port (§12, ollama v0.14.3+)
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/1")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="http://{gw.host}/token"')
    # a key in the file pulls; a stranger's key is refused at the token endpoint
    c = StockOllama(gw.host, key=ro)
    c.pull("team/tiny", "1", str(tmp_path / "p"))
    _assert_pulled(tmp_path / "p", res.manifest)
    with pytest.raises(OllamaError, match="401"):
        StockOllama(gw.host, key=stranger).pull("team/tiny", "1", str(tmp_path / "p2"))
    with pytest.raises(OllamaError, match="no id_ed25519"):
        StockOllama(gw.host).pull("team/tiny", "1", str(tmp_path / "p3"))
    # a signed token request is good once: the same URL and signature again is a replay
    url, authz = ro.token_request(f"http://{gw.host}/token", "ollama-oci", ["repository:team/tiny:pull"])
    assert http.request("GET", url, headers={"Authorization": authz}).status == 200
    assert http.request("GET", url, headers={"Authorization": authz}).status == 401
    # the blob URL: signed, works without Authorization, refuses tampering and expiry
    model = res.manifest.layers[0]
    direct = c.direct_url(f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}")
    assert "signature=" in direct
    assert http.request("GET", direct, headers={"Range": "bytes=0-3"}).data == b"GGUF"
    assert http.request("GET", direct.replace("team/tiny", "team/other")).status == 401
    assert http.request("GET", direct[:-3] + "AAA").status == 401
    key = secret.read_bytes().strip()

    def signed(exp: int) -> str:
        mac = hmac.new(key, f"blob\nteam/tiny\n{model.digest}\n{exp}".encode(), hashlib.sha256).digest()
        sig = base64.urlsafe_b64encode(mac).decode().rstrip("=")
        return f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}?expires={exp}&signature={sig}"
    assert http.request("GET", signed(int(time.time()) + 60)).status == 200      # the scheme, independently
    assert http.request("GET", signed(int(time.time()) - 1)).status == 401       # expired
    # a read-only key cannot push; the builder's key can, into team/ only
    m, raw = layout.get_manifest(parse_name("team/tiny:1"))
    path = lambda d: os.path.join(str(layout_dir), "blobs", "sha256", d.split(":")[1])  # noqa: E731
    with pytest.raises(OllamaError, match="403"):
        StockOllama(gw.host, key=ro).push("team/copy", "1", raw, path)
    StockOllama(gw.host, key=rw).push("team/copy", "1", raw, path)
    with pytest.raises(OllamaError, match="403"):
        StockOllama(gw.host, key=rw).push("library/copy", "1", raw, path)
    StockOllama(gw.host, key=ro).pull("team/copy", "1", str(tmp_path / "p4"))
    _assert_pulled(tmp_path / "p4", res.manifest)
    # nothing secret in the access log or the server's output
    tokens = {h["Authorization"] for _, _, h in c.requests if "Authorization" in h}
    text = open(gw.access_log).read() + gw.log()
    assert tokens and not any(t.split(" ")[-1] in text for t in tokens)
    assert "signature" not in text and "Authorization" not in text and ro.public_b64 not in text
    assert {e["user"] for e in gw.access() if e["status"] == 200} >= {"server-1", "builder"}


def test_basic_users_for_generic_clients_from_a_config_file(tmp_path, gateways):
    from ollama_oci.gateway.config import hash_password
    layout_dir = tmp_path / "layout"
    res = pack(Recipe(files=[TINY]), "team/tiny:1", [OCILayout(str(layout_dir))], link_mode="copy")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'''
[[source]]
from = "oci:{layout_dir}"

[auth]
anonymous = "none"

[[auth.users]]
name = "ci"
password = "{hash_password('s3cret', rounds=1000)}"
read = ["team/"]
''')
    gw = gateways("--config", cfg)
    cp = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "--creds", "ci:s3cret",
                         f"docker://{gw.host}/team/tiny:1"], capture_output=True)
    assert cp.returncode == 0 and cp.stdout == res.manifest.to_bytes(newline=False)
    cp = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "--creds", "ci:wrong",
                         f"docker://{gw.host}/team/tiny:1"], capture_output=True, text=True)
    assert cp.returncode != 0
    # Basic on each request works too (docker-style clients that skip the token flow)
    import base64
    http = urllib3.PoolManager(retries=False)
    basic = {"Authorization": "Basic " + base64.b64encode(b"ci:s3cret").decode()}
    r = http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/1", headers=basic)
    assert r.status == 200 and r.data == res.manifest.to_bytes(newline=False)
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ci:nope").decode()}
    assert http.request("GET", f"http://{gw.host}/v2/team/tiny/manifests/1", headers=wrong).status == 401
    assert http.request("GET", f"http://{gw.host}/v2/library/x/manifests/1", headers=basic).status == 403
    assert "s3cret" not in open(gw.access_log).read() + gw.log()


# -- pull-through -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_gemma_through_a_pull_through_cache_single_flight(tmp_path, registry_factory, gateways, gemma_path):
    """The Gemma 270M pushed by ollama-oci; 8 stock clients at once through the gateway: upstream serves
    the weights once, every client gets them byte-identical."""
    reg = registry_factory("plain", access_log=True)
    packed = tmp_path / "packed"
    run_cli("pack", gemma_path, "--name", "gemma3:270m", "--models-dir", packed, check=0)
    run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", packed, check=0)
    m, _ = OllamaStore(str(packed)).get_manifest(parse_name("gemma3:270m"))
    weights = m.layers[0]
    gw = gateways("--from", reg.host, "--plain-http", "--cache-size", "2GB")
    errors = []
    pushed = OllamaStore(str(packed)).get_manifest(parse_name("gemma3:270m"))[0].to_bytes(newline=False)

    def one(i):
        try:
            assert StockOllama(gw.host).pull("library/gemma3", "270m", str(tmp_path / f"c{i}")) == pushed
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    for i in range(8):
        _assert_pulled(tmp_path / f"c{i}", m)
    gets = [line for line in reg.log_lines() if f"GET /v2/library/gemma3/blobs/{weights.digest}" in line]
    assert len(gets) == 1, gets
    assert os.path.getsize(os.path.join(gw.data_dir, "cache", "blobs", weights.digest.filename)) == weights.size


def test_a_corrupt_upstream_blob_is_refused_and_not_cached(tmp_path, registry_factory, gateways):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    model = res.manifest.layers[0]
    p = reg.blob_data_path(str(model.digest))
    data = bytearray(open(p, "rb").read())
    data[100] ^= 0xFF                      # same size, one byte flipped in upstream storage
    open(p, "wb").write(bytes(data))
    for cache in (["--cache-size", "1GB"], []):
        gw = gateways("--from", reg.host, "--plain-http", *cache)
        with pytest.raises((OllamaError, urllib3.exceptions.HTTPError)):
            StockOllama(gw.host).pull("team/tiny", "1", str(tmp_path / f"p{len(cache)}"))
        r = urllib3.PoolManager(retries=False).request("GET", f"http://{gw.host}/v2/team/tiny/blobs/{model.digest}",
                                                       preload_content=False)
        with pytest.raises(urllib3.exceptions.HTTPError):
            body = r.read()
            assert len(body) == model.size   # never the whole (corrupt) blob
        cache_dir = os.path.join(gw.data_dir, "cache", "blobs")
        assert not os.path.exists(os.path.join(cache_dir, model.digest.filename))
        if cache:
            assert os.listdir(os.path.join(gw.data_dir, "cache", "tmp")) == []
        metrics = urllib3.PoolManager().request("GET", f"http://{gw.host}/metrics").data.decode()
        assert "ollama_oci_gateway_upstream_errors_total 0" not in metrics
        gw.stop()


# -- push through the gateway -------------------------------------------------------------------------

def test_stock_push_into_a_layout_and_into_the_upstream_registry(tmp_path, registry_factory, gateways):
    src, res = _packed(tmp_path)
    raw = res.manifest.to_bytes(newline=False)
    path = lambda d: os.path.join(src.root, "blobs", d.replace(":", "-"))  # noqa: E731
    # into an OCI layout
    with pytest.raises(OllamaError, match="no id_ed25519"):    # anonymous users read, never write, by default
        StockOllama(gateways("--from", f"oci:{tmp_path / 'l0'}", "--writable").host).push("team/tiny", "1", raw, path)
    gw = gateways("--from", f"oci:{tmp_path / 'layout'}", "--writable", "--anonymous", "write")
    StockOllama(gw.host, part_size_override=700).push("team/tiny", "1", raw, path)   # several PATCH parts
    assert StockOllama(gw.host).pull("team/tiny", "1", str(tmp_path / "back1")) == raw
    _assert_pulled(tmp_path / "back1", res.manifest)
    layout = OCILayout(str(tmp_path / "layout"))
    assert layout.verify()[1] == []
    # into the upstream registry, through the gateway: each PATCH part goes on to the upstream session
    # as it arrives (nothing spooled)
    reg = registry_factory("plain", access_log=True)
    gw2 = gateways("--from", reg.host, "--plain-http", "--writable", "--anonymous", "write")
    StockOllama(gw2.host, part_size_override=4000).push("team/tiny", "2", raw, path)
    model = res.manifest.layers[0]
    patches = [ln for ln in reg.log_lines() if '"PATCH /v2/team/tiny/blobs/uploads/' in ln]
    parts = sum(-(-d.size // 4000) for d in res.manifest.blobs)
    assert len(patches) == parts and model.size > 4000
    assert os.listdir(os.path.join(gw2.data_dir, "uploads")) == []
    run_cli("pull", f"{reg.host}/team/tiny:2", "--plain-http", "--models-dir", tmp_path / "back2", check=0)
    store = OllamaStore(str(tmp_path / "back2"))
    m, got = store.get_manifest(parse_name(f"{reg.host}/team/tiny:2"))
    assert got == raw and store.verify()[1] == []
    http = urllib3.PoolManager(retries=False)
    loc = http.request("POST", f"http://{gw2.host}/v2/team/bad/blobs/uploads/").headers["Location"]
    r = http.request("PATCH", loc, body=b"hello", headers={"Content-Range": "0-4"})
    assert r.status == 202
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    assert http.request("PUT", f"{r.headers['Location']}?digest={wrong}").status == 400
    right = "sha256:" + hashlib.sha256(b"hello").hexdigest()
    for d in (wrong, right):
        assert http.request("HEAD", f"http://{reg.host}/v2/team/bad/blobs/{d}").status == 404
    # ollama-oci push through the gateway too
    run_cli("push", "team/tiny:1", f"{gw2.host}/team/tiny:3", "--plain-http", "--models-dir", src.root, check=0)
    run_cli("pull", f"{reg.host}/team/tiny:3", "--plain-http", "--models-dir", tmp_path / "back3", check=0)
    # a digest that does not match is refused, and a read-only source takes no push
    http = urllib3.PoolManager(retries=False)
    r = http.request("POST", f"http://{gw.host}/v2/team/bad/blobs/uploads/")
    assert r.status == 202
    loc = r.headers["Location"]
    r = http.request("PATCH", loc, body=b"hello", headers={"Content-Range": "0-4"})
    assert r.status == 202 and r.headers["Range"] == "0-4"
    r = http.request("PATCH", loc, body=b"x", headers={"Content-Range": "2-2"})
    assert r.status == 416                                  # out of order
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    r = http.request("PUT", f"{loc}?digest={wrong}")
    assert r.status == 400 and b"DIGEST_INVALID" in r.data
    assert not os.path.exists(os.path.join(str(tmp_path / "layout"), "blobs", "sha256", wrong[7:]))
    assert os.listdir(os.path.join(gw.data_dir, "uploads")) == []
    gw3 = gateways("--from", f"oci:{tmp_path / 'layout'}", "--anonymous", "write")
    with pytest.raises(OllamaError, match="405"):
        StockOllama(gw3.host).push("team/tiny", "9", raw, path)


@pytest.mark.slow
def test_sigterm_during_downloads_leaves_nothing_half_written(tmp_path, registry_factory, gateways, gemma_path):
    reg = registry_factory("plain")
    packed = tmp_path / "packed"
    run_cli("pack", gemma_path, "--name", "gemma3:270m", "--models-dir", packed, check=0)
    run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", packed, check=0)
    m, _ = OllamaStore(str(packed)).get_manifest(parse_name("gemma3:270m"))
    data_dir = tmp_path / "gwdata"
    gw = gateways("--from", reg.host, "--plain-http", "--cache-size", "2GB", data_dir=data_dir)
    tmp = data_dir / "cache" / "tmp"
    threads = [threading.Thread(target=lambda i=i: _quiet(StockOllama(gw.host).pull, "library/gemma3", "270m",
                                                            str(tmp_path / f"c{i}"))) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp.exists() and any(f.stat().st_size > 0 for f in tmp.iterdir())):
        time.sleep(0.005)
    t0 = time.time()
    assert gw.stop(signal.SIGTERM) == 0
    assert time.time() - t0 < 35
    for t in threads:
        t.join(60)
    assert list(tmp.iterdir()) == []
    for f in (data_dir / "cache" / "blobs").iterdir():        # what is cached is whole and right
        assert f.name == "sha256-" + hashlib.sha256(f.read_bytes()).hexdigest()
    gw2 = gateways("--from", reg.host, "--plain-http", "--cache-size", "2GB", data_dir=data_dir)
    StockOllama(gw2.host).pull("library/gemma3", "270m", str(tmp_path / "after"))
    _assert_pulled(tmp_path / "after", m)


def _quiet(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


def test_the_cache_keeps_under_its_cap_least_recently_used_first(tmp_path, registry_factory, gateways):
    reg = registry_factory("plain", access_log=True)
    store = OllamaStore(str(tmp_path / "packed"))
    results = {}
    for i in range(3):   # three models, different weights (a different system prompt is not enough)
        gguf = tmp_path / f"m{i}.gguf"
        gguf.write_bytes(open(TINY, "rb").read() + bytes([i]) * 4096)   # tensor data padding differs
        results[i] = pack(Recipe(files=[str(gguf)]), f"team/m{i}:1", [store], link_mode="copy")
        run_cli("push", f"team/m{i}:1", f"{reg.host}/team/m{i}:1", "--plain-http", "--models-dir", store.root,
                check=0)
    sizes = {i: r.manifest.layers[0].size for i, r in results.items()}
    cap = sizes[0] + sizes[1] + 6000          # room for two models' weights, not three
    gw = gateways("--from", reg.host, "--plain-http", "--cache-size", str(cap))
    c = StockOllama(gw.host)
    for i in (0, 1, 0, 2):                     # 0 is used again after 1, so 1 is the least recent
        c.pull(f"team/m{i}", "1", str(tmp_path / f"p{i}-{time.monotonic_ns()}"))
    cached = set(os.listdir(os.path.join(gw.data_dir, "cache", "blobs")))
    w = {i: r.manifest.layers[0].digest.filename for i, r in results.items()}
    assert w[0] in cached and w[2] in cached and w[1] not in cached
    total = sum(os.path.getsize(os.path.join(gw.data_dir, "cache", "blobs", f)) for f in cached)
    assert total <= cap
    # model 0's weights came from upstream once: its second pull was a cache hit
    gets = [ln for ln in reg.log_lines() if f"GET /v2/team/m0/blobs/{results[0].manifest.layers[0].digest}" in ln]
    assert len(gets) == 1


def test_a_stalled_client_is_cut_off(tmp_path, gateways):
    import socket
    cfg = tmp_path / "gw.toml"
    layout = tmp_path / "layout"
    cfg.write_text(f'client_timeout = 1\n[[source]]\nfrom = "oci:{layout}"\nwritable = true\n'
                   f'[auth]\nanonymous = "write"\n')
    gw = gateways("--config", cfg)
    http = urllib3.PoolManager(retries=False)
    loc = http.request("POST", f"http://{gw.host}/v2/team/x/blobs/uploads/").headers["Location"]
    path = loc.split(gw.host, 1)[1]
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {gw.host}\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
    s.settimeout(10)
    t0 = time.monotonic()
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 8


# -- configuration --------------------------------------------------------------------------------------

def test_config_values_and_their_errors(tmp_path):
    from ollama_oci.errors import InvalidInput, NotFound
    from ollama_oci.gateway.config import (check_password, config_from_dict, hash_password, parse_authorized_keys,
                                           parse_listen, parse_size, parse_source)
    assert parse_size("200GB") == 200 * 10**9 and parse_size("1.5GiB") == 3 << 29 and parse_size(7) == 7
    with pytest.raises(InvalidInput, match="size like"):
        parse_size("lots")
    assert parse_listen("0.0.0.0:5000") == ("0.0.0.0", 5000) and parse_listen(":80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:5000") == ("::1", 5000)
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        parse_listen("nowhere")
    s = parse_source("registry.internal:5000/ml/team")
    assert (s.kind, s.location, s.path) == ("registry", "registry.internal:5000", "ml/team")
    assert parse_source("oci:layout", base_dir="/x").location == "/x/layout"
    assert parse_source("m.tar.zst").kind == "bundle"
    with pytest.raises(InvalidInput, match="oci: or ollama:"):
        parse_source("/srv/layout")
    with pytest.raises(InvalidInput, match="read-only"):
        parse_source("m.tar", writable=True)
    zero = "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    keys = parse_authorized_keys(f'read="a/,b/",write="b/" ssh-ed25519 {zero} builder\n# c\n')
    p = keys[zero]
    assert p.name == "builder" and p.may("pull", "a/x") and p.may("push", "b/y") and not p.may("push", "a/x")
    with pytest.raises(InvalidInput, match=":1: unknown key options"):
        parse_authorized_keys(f'admin="yes" ssh-ed25519 {zero}')
    with pytest.raises(InvalidInput, match="not an ssh-ed25519 public key"):
        parse_authorized_keys("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==")
    h = hash_password("pw", rounds=1000)
    assert check_password("pw", h) and not check_password("px", h) and not check_password("pw", "plain")
    with pytest.raises(InvalidInput, match="unknown keys"):
        config_from_dict({"source": [{"from": "r.example.com"}], "lisen": ":5000"})
    with pytest.raises(InvalidInput, match="at least one"):
        config_from_dict({})
    with pytest.raises(InvalidInput, match="never the password itself"):
        config_from_dict({"source": {"from": "r.example.com"}, "auth": {"users": [{"name": "a", "password": "pw"}]}})
    with pytest.raises(InvalidInput, match="two sources have the prefix"):
        config_from_dict({"source": [{"from": "r.example.com"}, {"from": "s.example.com"}]})
    with pytest.raises(NotFound, match="authorized_keys"):
        config_from_dict({"source": {"from": "r.example.com"}, "auth": {"authorized_keys": str(tmp_path / "no")}})
    cfg = config_from_dict({"source": {"from": "r.example.com"}, "auth": {"users": [{"name": "a", "password": h}]}})
    assert cfg.anonymous == "none"    # users configured: no anonymous access unless asked for
    cp = run_cli("serve", "--config", tmp_path / "missing.toml")
    assert cp.returncode == 4 and "no such gateway config file" in cp.stderr
    cp = run_cli("serve")
    assert cp.returncode == 2 and "--from" in cp.stderr

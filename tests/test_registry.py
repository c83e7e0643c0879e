"""Push and pull through real Docker distribution registries, checked by independent clients."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import TINY, run_cli
from ollama_oci import OCILayout, OllamaStore, Recipe, pack, parse_name
from ollama_oci import copy
from ollama_oci.reference import parse_reference
from ollama_oci.stores.registry import RegistryStore
from ollama_oci.transport import TransportOptions


def _files(store: OllamaStore) -> dict:
    out = {}
    for root, _, files in os.walk(store.root):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, store.root)] = fh.read()
    return out


def _auth_file(tmp_path, host: str):
    """A containers auth.json holding the TLS registry's user (for REGISTRY_AUTH_FILE)."""
    import base64
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"alice:s3cret-pass").decode()}}}))
    return auth


def _packed(tmp_path, name="team/tiny:1"):
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY], system="You are tiny.", params={"temperature": 0.5}, licenses=["MIT"]),
               name, [store], link_mode="copy")
    return store, res


def test_round_trip_plain_http(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    ref = parse_reference(f"{reg.host}/team/tiny:1")
    r1 = copy(src, parse_name("team/tiny:1"), remote, ref)
    assert sorted(b.action for b in r1.blobs) == ["uploaded"] * len(res.manifest.blobs)
    assert r1.bytes_transferred == res.manifest.size
    r2 = copy(src, parse_name("team/tiny:1"), remote, ref)  # unchanged: nothing moves
    assert r2.bytes_transferred == 0 and {b.action for b in r2.blobs} == {"exists"}

    dst = OllamaStore(str(tmp_path / "pulled"))
    r3 = copy(remote, ref, dst, parse_name("team/tiny:1"))
    assert r3.bytes_transferred == res.manifest.size
    r4 = copy(remote, ref, dst, parse_name("team/tiny:1"))
    assert r4.bytes_transferred == 0
    a, b = _files(src), _files(dst)
    blobs = {k: v for k, v in a.items() if k.startswith("blobs/")}
    assert {k: v for k, v in b.items() if k.startswith("blobs/")} == blobs  # every blob byte-identical
    mpath = "manifests/registry.ollama.ai/team/tiny/1"
    # ollama push sends json.Marshal (no trailing newline) and a pull stores what it received
    assert b[mpath] == a[mpath][:-1] == res.manifest.to_bytes(newline=False)
    assert dst.verify()[1] == []


def test_pull_to_name_and_into_oci_layout(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    copy(src, parse_name("team/tiny:1"), remote, parse_reference(f"{reg.host}/team/tiny:1"))
    layout = OCILayout(str(tmp_path / "oci"))
    copy(remote, parse_reference(f"{reg.host}/team/tiny:1"), layout, parse_name("tiny:from-registry"))
    m, raw = layout.get_manifest(parse_name("tiny:from-registry"))
    assert raw == res.manifest.to_bytes(newline=False) and layout.verify()[1] == []
    # and back out of the layout, to another tag: digests preserved
    copy(layout, parse_name("tiny:from-registry"), remote, parse_reference(f"{reg.host}/team/tiny:2"))
    assert remote.manifest_digest(parse_reference(f"{reg.host}/team/tiny:2")) == res.manifest.digest(newline=False)


def test_pull_by_digest_is_verified(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root,
                 "--json", check=0)
    digest = json.loads(cp.stdout)["manifest_digest"]
    cp = run_cli("pull", f"{reg.host}/team/tiny@{digest}", "--name", "pinned:1", "--plain-http", "--models-dir",
                 tmp_path / "pulled", "--json", check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == digest
    wrong = "sha256:" + "0" * 64
    cp = run_cli("pull", f"{reg.host}/team/tiny@{wrong}", "--name", "x", "--plain-http", "--models-dir",
                 tmp_path / "pulled2")
    assert cp.returncode == 4, cp.stderr  # the registry has no such manifest


def test_tls_and_basic_auth_with_login(tmp_path, registry_factory):
    reg = registry_factory("tls")
    src, res = _packed(tmp_path)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"),
           "OLLAMA_MODELS": src.root}
    common = ["--ca-file", reg.ca]
    # no credentials: refused with the auth exit code and a hint
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, env=env)
    assert cp.returncode == 8 and "login" in cp.stderr
    # without our CA, TLS verification fails (a registry error, not a crash)
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", env=env)
    assert cp.returncode == 7, cp.stderr
    # a wrong password
    cp = run_cli("login", reg.host, "-u", "alice", "--password-stdin", *common, env=env, input="nope\n")
    assert cp.returncode == 8
    assert not os.path.exists(tmp_path / "docker" / "config.json") and not os.path.exists(tmp_path / "none.json")
    # with $REGISTRY_AUTH_FILE set the login goes there, as podman's does (lookups read it first)
    cp = run_cli("login", reg.host, "-u", "alice", "--password-stdin", *common, env=env, input="s3cret-pass\n",
                 check=0)
    assert "Login Succeeded" in cp.stdout and "s3cret" not in cp.stdout + cp.stderr
    cfg = json.loads((tmp_path / "none.json").read_text())
    assert reg.host in cfg["auths"] and not os.path.exists(tmp_path / "docker" / "config.json")
    assert oct(os.stat(tmp_path / "none.json").st_mode & 0o777) == "0o600"
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, "--json", env=env, check=0)
    assert json.loads(cp.stdout)["bytes_transferred"] == res.manifest.size
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", *common, "--models-dir", tmp_path / "pulled", "--json",
                 env=env, check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == str(res.manifest.digest(newline=False))
    # --insecure skips verification (still TLS, still authenticated)
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--insecure", "--models-dir", tmp_path / "pulled2", env=env,
                 check=0)
    run_cli("logout", reg.host, env=env, check=0)
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", *common, "--models-dir", tmp_path / "pulled3", env=env)
    assert cp.returncode == 8


def test_ca_bundles_from_the_environment(tmp_path, registry_factory):
    """Without --ca-file, the CA bundles users set for other clients are trusted too."""
    reg = registry_factory("tls")
    src, res = _packed(tmp_path)
    auth = _auth_file(tmp_path, reg.host)
    base = {"REGISTRY_AUTH_FILE": str(auth), "DOCKER_CONFIG": str(tmp_path / "empty"), "OLLAMA_MODELS": src.root,
            "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", env=base)
    assert cp.returncode == 7  # the test CA is in no trust store
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        run_cli("push", "team/tiny:1", f"{reg.host}/team/{var.lower()}:1", env={**base, var: reg.ca}, check=0)
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", env={**base, "REQUESTS_CA_BUNDLE": str(auth)})
    assert cp.returncode == 7 and "REQUESTS_CA_BUNDLE" in cp.stderr  # named, with the fix
    # --ca-file adds to that trust (as docker's certs.d does), it does not replace it
    from registry_env import make_ca_and_cert
    os.makedirs(tmp_path / "other")
    other_ca = make_ca_and_cert(str(tmp_path / "other"))[0]
    run_cli("push", "team/tiny:1", f"{reg.host}/team/added:1", "--ca-file", other_ca,
            env={**base, "REQUESTS_CA_BUNDLE": reg.ca}, check=0)


def test_system_trust_from_openssls_defaults(tmp_path, registry_factory, monkeypatch):
    """The default trust is OpenSSL's: a CA in the hashed directory named by SSL_CERT_DIR, or in
    the bundle named by SSL_CERT_FILE, verifies the registry; a CA in neither is refused with a
    TLSError (never retried)."""
    from ollama_oci.transport.session import HTTP, TLSError
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command (to hash a CA directory) is not installed")
    reg = registry_factory("tls")
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    with_ca, without_ca = tmp_path / "hashed-with", tmp_path / "hashed-without"
    for d in (with_ca, without_ca):
        d.mkdir()
    h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", reg.ca], capture_output=True, text=True,
                       check=True).stdout.strip()
    shutil.copy(reg.ca, with_ca / f"{h}.0")
    from registry_env import make_ca_and_cert
    os.makedirs(tmp_path / "other")
    shutil.copy(make_ca_and_cert(str(tmp_path / "other"))[0], without_ca / "0123abcd.0")  # a foreign CA
    empty = tmp_path / "empty.pem"
    empty.write_text("")

    def handshake(cert_dir, cert_file):
        monkeypatch.setenv("SSL_CERT_DIR", str(cert_dir))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        with HTTP().request("GET", f"https://{reg.host}/v2/", timeout=(5, 5)) as r:
            assert r.status_code == 401  # TLS verified; the registry wants credentials

    handshake(with_ca, empty)        # found in the hashed directory
    handshake(without_ca, reg.ca)    # found in the bundle file
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(without_ca))
    with pytest.raises(TLSError, match="unable to get local issuer certificate"):  # trusted nowhere
        HTTP().request("GET", f"https://{reg.host}/v2/", timeout=(5, 5))


def test_registry_at_an_ipv6_address(tmp_path, registry_factory):
    """A registry reached by an IPv6 literal (``[::1]:PORT``): brackets in the reference, the Host
    header and the connection."""
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    reg = registry_factory("plain", bind="::1")
    src, res = _packed(tmp_path)
    ref = f"{reg.host}/team/tiny:1"
    assert ref.startswith("[::1]:")
    run_cli("push", "team/tiny:1", ref, "--plain-http", "--models-dir", src.root, check=0)
    run_cli("pull", ref, "--plain-http", "--models-dir", tmp_path / "pulled", "--name", "back:1", check=0)
    back = OllamaStore(str(tmp_path / "pulled"))
    assert back.read_manifest_bytes(parse_name("back:1"))[0] == res.manifest.to_bytes(newline=False)


def test_tls_files_from_certs_d(tmp_path, registry_factory):
    """A registry's certs.d directory, as docker and podman keep it: its CA and client certificate, no flags."""
    import shutil as sh
    reg = registry_factory("mtls")
    src, res = _packed(tmp_path)
    d = tmp_path / "home" / ".config" / "containers" / "certs.d" / reg.host
    os.makedirs(d)
    env = {"HOME": str(tmp_path / "home"), "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    sh.copy(reg.ca, d / "ca.crt")
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--models-dir", src.root, env=env)
    assert cp.returncode == 7 and "--cert" in cp.stderr  # the CA is trusted now; the client cert is missing
    sh.copy(reg.client_cert, d / "me.cert")
    sh.copy(reg.client_key, d / "me.key")
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--models-dir", src.root, env=env, check=0)
    run_cli("pull", f"{reg.host}/team/tiny:1", "--models-dir", tmp_path / "pulled", env=env, check=0)
    assert OllamaStore(str(tmp_path / "pulled")).verify()[1] == []


def test_mutual_tls_with_a_client_certificate(tmp_path, registry_factory):
    """A registry that admits only client certificates from its CA (distribution's tls.clientcas)."""
    reg = registry_factory("mtls")
    src, res = _packed(tmp_path)
    common = ["--ca-file", reg.ca]
    # no client certificate: refused at once (a TLS alert is not retried), with the fix named
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, "--models-dir", src.root)
    assert cp.returncode == 7 and "--cert" in cp.stderr, cp.stderr
    mine = ["--cert", reg.client_cert, "--key", reg.client_key]
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, *mine, "--models-dir", src.root,
                 "--json", check=0)
    assert json.loads(cp.stdout)["bytes_transferred"] == res.manifest.size
    run_cli("pull", f"{reg.host}/team/tiny:1", *common, *mine, "--models-dir", tmp_path / "pulled", check=0)
    assert OllamaStore(str(tmp_path / "pulled")).verify()[1] == []
    # a certificate from another CA is refused the same way
    from registry_env import make_ca_and_cert
    os.makedirs(tmp_path / "other")
    make_ca_and_cert(str(tmp_path / "other"), client=True)
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", *common, "--cert", tmp_path / "other" / "client.pem",
                 "--key", tmp_path / "other" / "client-key.pem", "--models-dir", tmp_path / "p2")
    assert cp.returncode == 7 and "TLS" in cp.stderr


def test_credentials_from_containers_auth_file(tmp_path, registry_factory):
    reg = registry_factory("tls")
    src, res = _packed(tmp_path)
    auth = _auth_file(tmp_path, reg.host)
    env = {"REGISTRY_AUTH_FILE": str(auth), "DOCKER_CONFIG": str(tmp_path / "empty"), "OLLAMA_MODELS": src.root}
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, env=env, check=0)


def test_credential_helper(tmp_path, registry_factory):
    """credHelpers run docker-credential-<name> get, as docker does."""
    reg = registry_factory("tls")
    src, res = _packed(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-testhelper"
    helper.write_text("#!/bin/sh\nread server\n"
                      "echo \"$server\" >> \"$(dirname \"$0\")/asked\"\n"
                      "echo '{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"s3cret-pass\"}'\n")
    helper.chmod(0o755)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "testhelper"}}))
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"),
           "PATH": f"{bindir}:{os.environ['PATH']}", "OLLAMA_MODELS": src.root}
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, env=env, check=0)
    assert reg.host in (bindir / "asked").read_text()


def test_token_auth(tmp_path, registry_factory):
    reg, front = registry_factory("token")
    src, res = _packed(tmp_path)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"),
           "OLLAMA_MODELS": src.root}
    # anonymous tokens grant pull only: a push is refused
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", env=env)
    assert cp.returncode == 8, cp.stderr
    front.token_requests.clear()
    front.log.clear()
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "-u", "alice",
                 "--password-stdin", env=env, input="s3cret-pass\n", check=0)
    assert "s3cret" not in cp.stdout + cp.stderr
    # one token for the push scope, shared by the parallel blob uploads
    assert len(front.token_requests) == 1, [t["path"] for t in front.token_requests]
    assert front.token_requests[0]["authorization"].startswith("Basic ")
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", tmp_path / "pulled",
                 "--json", env=env, check=0)  # anonymous pull
    assert json.loads(cp.stdout)["bytes_transferred"] == res.manifest.size
    assert any("scope=repository%3Ateam%2Ftiny%3Apull" in t["path"] for t in front.token_requests)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_agrees(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{reg.host}/team/tiny:1"],
                         capture_output=True, check=True).stdout
    assert raw == res.manifest.to_bytes(newline=False)
    # skopeo (containers/image, every version) parses a Docker schema 2 manifest only with Docker's
    # own layer media types, so it cannot copy ollama's form anywhere; if a later one can, its copy
    # must carry every digest
    sk = tmp_path / "skopeo-docker-form"
    cp = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.host}/team/tiny:1",
                         f"oci:{sk}:x"], capture_output=True, text=True)
    if cp.returncode != 0:
        assert "unsupported docker v2s2 media type" in cp.stderr and "application/vnd.ollama.image." in cp.stderr
    else:
        for d in res.manifest.blobs:
            assert hashlib.sha256((sk / "blobs" / "sha256" / d.digest.hex).read_bytes()).hexdigest() == d.digest.hex
    # the OCI form of the same artifact skopeo copies, verifying every blob digest
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:oci", "--format", "oci", "--plain-http", "--models-dir",
            src.root, check=0)
    out = tmp_path / "skopeo-oci"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.host}/team/tiny:oci",
                    f"oci:{out}:x"], capture_output=True, check=True)
    for d in res.manifest.blobs:
        assert hashlib.sha256((out / "blobs" / "sha256" / d.digest.hex).read_bytes()).hexdigest() == d.digest.hex
    # and we pull what skopeo pushed (it re-uploaded every blob from its own layout)
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{out}:x",
                    f"docker://{reg.host}/skopeo/pushed:1"], capture_output=True, check=True)
    run_cli("pull", f"{reg.host}/skopeo/pushed:1", "--plain-http", "--models-dir", tmp_path / "pulled",
                 "--json", check=0)
    store = OllamaStore(str(tmp_path / "pulled"))
    assert store.verify()[1] == []
    m, _ = store.get_manifest(parse_name(f"{reg.host}/skopeo/pushed:1"))
    assert [d.digest for d in m.blobs] == [d.digest for d in res.manifest.blobs]
    assert store.get_config(m).model_family == "llama"


def test_ollamas_own_client_gets_the_default_form_and_not_the_oci_one(tmp_path, registry_factory):
    """Why push defaults to Docker schema 2: ollama asks for it alone, and distribution holds to that."""
    from ollama_oci.transport.session import HTTP
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    for tag, extra in (("1", []), ("oci", ["--format", "oci"])):
        run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:{tag}", "--plain-http", "--models-dir", src.root,
                *extra, check=0)
    ollama_accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}  # server/images.go
    http = HTTP()
    with http.request("GET", f"http://{reg.host}/v2/team/tiny/manifests/1", ollama_accept) as r:
        assert r.status_code == 200 and r.read() == res.manifest.to_bytes(newline=False)
    with http.request("GET", f"http://{reg.host}/v2/team/tiny/manifests/oci", ollama_accept) as r:
        assert r.status_code == 404 and b"does not support OCI manifests" in r.read()
    # ollama-oci itself takes either
    cp = run_cli("pull", f"{reg.host}/team/tiny:oci", "--plain-http", "--models-dir", tmp_path / "p", "--json",
                 check=0)
    assert json.loads(cp.stdout)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_oras_py_pulls_what_we_pushed(tmp_path, registry_factory):
    import oras.client
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    client = oras.client.OrasClient(hostname=reg.host, insecure=True)
    files = client.pull(target=f"{reg.host}/team/tiny:1", outdir=str(tmp_path / "oras"))
    got = {}
    for f in files:
        with open(f, "rb") as fh:
            got[os.path.basename(f)] = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    assert got == {str(d.digest): str(d.digest) for d in res.manifest.layers}


@pytest.mark.slow
def test_gemma_round_trip_into_empty_ollama_models(tmp_path, registry_factory, gemma_path):
    """Pack the real Gemma 270M, push it, pull it into an empty OLLAMA_MODELS: byte-identical."""
    reg = registry_factory("plain")
    packed = tmp_path / "packed"
    run_cli("pack", gemma_path, "--name", "gemma3:270m", "-p", "temperature=1", "--models-dir", packed, check=0)
    cp = run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", packed,
                 "--json", check=0)
    assert json.loads(cp.stdout)["bytes_transferred"] > 253_000_000
    cp = run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", packed,
                 "--json", check=0)
    assert json.loads(cp.stdout)["bytes_transferred"] == 0  # unchanged: no blob bytes move
    pulled = tmp_path / "empty-ollama-models"
    cp = run_cli("pull", f"{reg.host}/library/gemma3:270m", "--name", "gemma3:270m", "--plain-http", "--json",
                 env={"OLLAMA_MODELS": str(pulled)}, check=0)
    cp = run_cli("pull", f"{reg.host}/library/gemma3:270m", "--name", "gemma3:270m", "--plain-http", "--json",
                 env={"OLLAMA_MODELS": str(pulled)}, check=0)
    assert json.loads(cp.stdout)["bytes_transferred"] == 0
    a, b = _files(OllamaStore(str(packed))), _files(OllamaStore(str(pulled)))
    assert {k for k in b if k.startswith("blobs/")} == {k for k in a if k.startswith("blobs/")}
    for k in a:
        if k.startswith("blobs/"):
            assert a[k] == b[k], k
    m = "manifests/registry.ollama.ai/library/gemma3/270m"
    assert b[m] + b"\n" == a[m]  # the bytes `ollama push` sends; ollama stores the pulled bytes as received


def test_proxy_from_environment_and_no_proxy(tmp_path, registry_factory):
    reg, front = registry_factory("plain", front=True)  # the front doubles as a forward proxy
    src, res = _packed(tmp_path)
    env = {"HTTP_PROXY": f"http://{front.addr}", "http_proxy": f"http://{front.addr}", "NO_PROXY": "",
           "no_proxy": ""}
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, env=env,
            check=0)
    assert front.proxied and all(reg.host in url for _, url in front.proxied)
    front.proxied.clear()
    env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", tmp_path / "pulled", env=env, check=0)
    assert front.proxied == []  # NO_PROXY honoured


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
def test_https_registry_through_a_connect_proxy(tmp_path, registry_factory, proxy_scheme):
    """HTTPS_PROXY: the client tunnels with CONNECT and checks the registry's certificate inside the
    tunnel; the proxy itself may be reached over http or over TLS (an https:// proxy URL)."""
    import base64

    from registry_env import Front
    reg = registry_factory("tls")
    # only its forward-proxy side is used; as an https proxy it shows the registry's own certificate
    proxy = Front(tls=(reg.cert, reg.key) if proxy_scheme == "https" else None)
    try:
        src, res = _packed(tmp_path)
        auth = _auth_file(tmp_path, reg.host)
        purl = f"{proxy_scheme}://{proxy.addr}"
        env = {"HTTPS_PROXY": purl, "https_proxy": purl, "NO_PROXY": "",
               "no_proxy": "", "REGISTRY_AUTH_FILE": str(auth), "DOCKER_CONFIG": str(tmp_path / "empty")}
        run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, "--models-dir", src.root,
                env=env, check=0)
        run_cli("pull", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, "--models-dir", tmp_path / "pulled",
                env=env, check=0)
        assert proxy.proxied and all(p == ("CONNECT", reg.host) for p in proxy.proxied)
        store = OllamaStore(str(tmp_path / "pulled"))
        assert store.verify()[1] == []
        # through the tunnel the registry's certificate is still checked: without our CA, refused
        cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--models-dir", tmp_path / "pulled2", env=env)
        assert cp.returncode == 7 and "--ca-file" in cp.stderr
        # a proxy that wants credentials: refused at once (no retries), with the fix; then given in the URL
        proxy.proxy_auth = "Basic " + base64.b64encode(b"squid:p@ss").decode()
        proxy.proxied.clear()
        cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, "--models-dir", tmp_path / "p3", env=env)
        assert cp.returncode == 7 and "407" in cp.stderr and "http://user:password@host:port" in cp.stderr
        assert len(proxy.proxied) == 1
        wrong = f"{proxy_scheme}://squid:hunter2@{proxy.addr}"
        cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, "--models-dir", tmp_path / "p4",
                     env={**env, "HTTPS_PROXY": wrong, "https_proxy": wrong})
        assert cp.returncode == 7 and "check the ones in the proxy URL" in cp.stderr
        assert "hunter2" not in cp.stdout + cp.stderr
        creds = f"{proxy_scheme}://squid:p%40ss@{proxy.addr}"
        run_cli("pull", f"{reg.host}/team/tiny:1", "--ca-file", reg.ca, "--models-dir", tmp_path / "p5",
                env={**env, "HTTPS_PROXY": creds, "https_proxy": creds}, check=0)
    finally:
        proxy.close()


def test_copy_within_a_registry_mounts(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    cp = run_cli("copy", f"{reg.host}/team/tiny:1", f"{reg.host}/other/tiny:1", "--plain-http", "--json", check=0)
    doc = json.loads(cp.stdout)
    assert {b["action"] for b in doc["blobs"]} == {"mounted"} and doc["bytes_transferred"] == 0


def test_the_same_blob_pushed_twice_at_once_is_uploaded_once(tmp_path, registry_factory):
    """Two tags sharing weights, copied at once (a mirror run): the second upload waits for the first
    and finds the blob there, instead of sending it again (and racing Docker distribution's link file)."""
    import threading
    import time

    from ollama_oci.digest import digest_bytes
    from ollama_oci.spec import Descriptor
    reg = registry_factory("plain")
    data = os.urandom(1 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    desc = Descriptor("application/vnd.ollama.image.model", digest_bytes(data), len(data))
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    opened = []

    def slow_opener():  # the first upload is still going when the second call starts
        opened.append(1)
        time.sleep(0.3)
        return open(path, "rb")
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.push_blob("team/shared", desc, slow_opener)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exists", "uploaded"] and len(opened) == 1
    assert store.has_blob("team/shared", desc.digest, desc.size)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_oci_layout_entry_written_by_skopeo_under_the_long_name(tmp_path, registry_factory):
    """skopeo (and oras) name a layout entry by the long form, registry.ollama.ai/library/tiny:1.
    That is the same model as our tiny:1: a re-pack replaces it (it used to stay, and be served),
    rm keeps every blob another entry uses, and verify stays clean."""
    reg = registry_factory("plain")
    v1 = OllamaStore(str(tmp_path / "v1"))
    pack(Recipe(files=[TINY], system="first"), "tiny:1", [v1], link_mode="copy")
    run_cli("push", "tiny:1", f"{reg.host}/library/tiny:1", "--format", "oci", "--plain-http",
            "--models-dir", v1.root, check=0)
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.host}/library/tiny:1",
                    f"oci:{layout}:registry.ollama.ai/library/tiny:1"], capture_output=True, check=True)
    lay = OCILayout(str(layout))
    assert lay.get_config(lay.get_manifest(parse_name("tiny:1"))[0]).model_format == "gguf"
    res = pack(Recipe(files=[TINY], system="second"), "tiny:1", [lay], link_mode="copy")
    pack(Recipe(files=[TINY], system="other"), "other:1", [lay], link_mode="copy")  # shares the weights
    index = json.loads((layout / "index.json").read_text())
    names = [e["annotations"]["org.opencontainers.image.ref.name"] for e in index["manifests"]]
    assert sorted(names) == ["other:1", "tiny:1"]  # the long-named entry was replaced, not kept beside
    m, _ = lay.get_manifest(parse_name("registry.ollama.ai/library/tiny:1"))
    assert m.to_bytes(newline=False) == res.manifest.to_bytes(newline=False)  # the new model is served
    assert lay.verify()[1] == []
    run_cli("rm", "tiny:1", "--oci-layout", layout, check=0)
    assert [e.name.display for e in lay.list()] == ["other:1"]
    assert lay.verify()[1] == []  # the shared weights are still there


def test_pull_by_digest_takes_the_name_given(tmp_path, registry_factory):
    """A digest-pinned pull installs under the name the user gives, or the tag written with the
    digest; never silently as :latest."""
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root,
                 "--json", check=0)
    digest = json.loads(cp.stdout)["manifest_digest"]
    models = tmp_path / "p"
    cp = run_cli("pull", f"{reg.host}/team/tiny@{digest}", "--plain-http", "--models-dir", models)
    assert cp.returncode == 2 and "--name" in cp.stderr
    run_cli("pull", f"{reg.host}/team/tiny@{digest}", "--name", "pinned:1", "--plain-http", "--models-dir", models,
            check=0)
    run_cli("pull", f"{reg.host}/team/tiny:1@{digest}", "--plain-http", "--models-dir", models, check=0)
    names = sorted(e.name.display for e in OllamaStore(str(models)).list())
    assert names == [f"{reg.host}/team/tiny:1", "pinned:1"]


def test_pull_verify_refetches_a_damaged_blob_a_plain_pull_trusts(tmp_path, registry_factory):
    """A kept volume whose blob was damaged (same size): a plain pull trusts its presence; --verify
    re-hashes what is there and fetches the damaged blob again."""
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    models = tmp_path / "kept"
    run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", models, check=0)
    store = OllamaStore(str(models))
    blob = store.find_blob(res.manifest.layers[0].digest)
    data = bytearray(open(blob, "rb").read())
    data[100] ^= 0xFF
    open(blob, "wb").write(bytes(data))
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", models, "--json", check=0)
    assert json.loads(cp.stdout)["unchanged"] and store.verify()[1] != []
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", models, "--verify", "--json",
                 check=0)
    actions = {b["digest"]: b["action"] for b in json.loads(cp.stdout)["blobs"]}
    assert actions[str(res.manifest.layers[0].digest)] == "downloaded"
    assert set(actions.values()) == {"downloaded", "verified"}
    assert store.verify()[1] == []


def test_pack_names_the_id_and_the_registry_digest(tmp_path, registry_factory):
    """The ID (`list`) and the digest a registry will hold differ by the manifest's trailing
    newline; pack --json names both, and a pull pinned to the registry digest works."""
    reg = registry_factory("plain")
    models = tmp_path / "m"
    doc = json.loads(run_cli("pack", TINY, "--name", "t:1", "--models-dir", models, "--json", check=0).stdout)
    assert doc["manifest_digest"] != doc["registry_digest"]
    cp = run_cli("push", "t:1", f"{reg.host}/team/t:1", "--plain-http", "--models-dir", models, "--json", check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == doc["registry_digest"]
    run_cli("pull", f"{reg.host}/team/t@{doc['registry_digest']}", "--name", "pinned:1", "--plain-http",
            "--models-dir", tmp_path / "p", check=0)


def test_dry_runs_tags_aliases_version_and_completion(tmp_path, registry_factory):
    """The conventions of docker, oras, crane and ollama: --dry-run, tags, cp/ls, version, completion."""
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root,
                 "--dry-run", "--json", check=0)
    doc = json.loads(cp.stdout)
    assert doc["dry_run"] and {b["action"] for b in doc["blobs"]} == {"missing"}
    assert doc["bytes_to_transfer"] == res.manifest.size
    assert run_cli("tags", f"{reg.host}/team/tiny", "--plain-http").returncode == 4   # nothing was pushed
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:2", "--plain-http", "--models-dir", src.root, check=0)
    assert run_cli("tags", f"{reg.host}/team/tiny", "--plain-http", check=0).stdout.split() == ["1", "2"]
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", tmp_path / "p", "--dry-run",
                 check=0)
    assert "would move" in cp.stdout and not (tmp_path / "p" / "manifests").exists()
    cp = run_cli("cp", f"{reg.host}/team/tiny:1", f"ollama:team/tiny:1", "--plain-http", "--models-dir", src.root,
                 "--dry-run", check=0)
    assert "unchanged" in cp.stdout or "0 of" in cp.stdout
    assert "team/tiny:1" in run_cli("ls", "--models-dir", src.root, check=0).stdout
    ver = json.loads(run_cli("version", "--json", check=0).stdout)
    assert ver["version"] and "urllib3" in ver["libraries"]
    assert "_OLLAMA_OCI_COMPLETE" in run_cli("completion", "bash", check=0).stdout


def test_authfile_option_and_the_username_prompt(tmp_path, registry_factory):
    reg = registry_factory("tls")
    src, res = _packed(tmp_path)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "default.json"),
           "OLLAMA_MODELS": src.root}
    auth = tmp_path / "ci-auth.json"
    common = ["--ca-file", reg.ca]
    # without a terminal, login cannot ask for the user name: a usage error that says -u
    cp = run_cli("login", reg.host, "--password-stdin", *common, env=env, input="s3cret-pass\n")
    assert cp.returncode == 2 and "-u" in cp.stderr
    run_cli("login", reg.host, "-u", "alice", "--password-stdin", "--authfile", auth, *common, env=env,
            input="s3cret-pass\n", check=0)
    assert reg.host in json.loads(auth.read_text())["auths"] and not (tmp_path / "default.json").exists()
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, env=env)
    assert cp.returncode == 8                               # the default places hold no login
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", *common, "--authfile", auth, env=env, check=0)
    run_cli("logout", reg.host, "--authfile", auth, env=env, check=0)
    assert reg.host not in json.loads(auth.read_text()).get("auths", {})


def test_verify_repair_fetches_only_the_damaged_blob(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    model = res.manifest.layers[0]
    path = src.blob_path(model.digest)
    data = bytearray(open(path, "rb").read())
    data[200] ^= 0xFF
    os.chmod(path, 0o644)
    open(path, "wb").write(bytes(data))             # same size: only a re-hash sees it
    assert run_cli("verify", "--models-dir", src.root).returncode == 5
    cp = run_cli("verify", "team/tiny:1", "--repair", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir",
                 src.root, "--json", check=0)
    doc = json.loads(cp.stdout)
    assert doc["ok"] and doc["repaired"] == [str(model.digest)]
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == model.digest.hex
    run_cli("verify", "--models-dir", src.root, check=0)


def test_inspect_and_rm_a_remote_model(tmp_path, registry_factory):
    reg = registry_factory("plain")
    src, res = _packed(tmp_path)
    run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", src.root, check=0)
    doc = json.loads(run_cli("inspect", f"{reg.host}/team/tiny:1", "--plain-http", "--json", check=0).stdout)
    assert doc["format"] == "Ollama model" and "ollama" in doc["runtimes"]
    assert doc["digest"] == str(res.manifest.digest(newline=False))
    assert [layer["digest"] for layer in doc["layers"]] == [str(d.digest) for d in res.manifest.layers]
    assert doc["config"]["model_family"] == "llama"
    text = run_cli("inspect", f"{reg.host}/team/tiny:1", "--plain-http", check=0).stdout
    assert "Ollama model" in text and "application/vnd.ollama.image.model" in text
    run_cli("rm", "--remote", f"{reg.host}/team/tiny:1", "--plain-http", check=0)
    assert run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", tmp_path / "x").returncode == 4

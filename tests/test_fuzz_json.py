"""Every JSON the tool reads from outside, fuzzed: manifests, configs, token answers, tag lists,
OCI ``index.json`` files, bundle indexes and Docker/containers auth files. Random shapes, types
and depths may only ever end in the library's own errors (or a clean result), never a crash."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollama_oci.errors import OllamaOCIError

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["sha256:" + "a" * 64, "application/vnd.ollama.image.model", "sha256:../x",
                                     "application/vnd.docker.distribution.manifest.v2+json", "layers", "config"]))
KEYS = st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "digest", "size", "manifests",
                        "annotations", "org.opencontainers.image.ref.name", "auths", "auth", "credHelpers",
                        "credsStore", "token", "access_token", "expires_in", "tags", "model_format", "from",
                        "identitytoken", "username", "password", "x"])
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(KEYS, st.text(max_size=5)), inner,
                                                                       max_size=5)), max_leaves=30)
documents = st.one_of(values.map(lambda v: json.dumps(v).encode()),
                      st.integers(min_value=1, max_value=50000).map(lambda d: b"[" * d + b"]" * d),
                      st.integers(min_value=1, max_value=50000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
                      st.binary(max_size=64))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_ours(fn, *a):
    try:
        return fn(*a)
    except OllamaOCIError:
        return None


@FUZZ
@given(documents)
def test_manifests_and_configs(data):
    from ollama_oci.spec import Config, Manifest, parse_manifest
    m = _only_ours(parse_manifest, data)
    assert m is None or (isinstance(m, Manifest) and all(isinstance(d.size, int) and d.size >= 0 for d in m.blobs))
    c = _only_ours(Config.from_json, data)
    assert c is None or isinstance(c, Config)


@FUZZ
@given(values)
def test_token_answers(body):
    from ollama_oci.transport.http import token_from
    got = token_from(body)
    assert got is None or (isinstance(got[0], str) and 1 <= got[1] <= 86400)


@FUZZ
@given(documents)
def test_oci_layout_index(tmp_path_factory, data):
    from ollama_oci import OCILayout
    d = tmp_path_factory.mktemp("layout")
    (d / "index.json").write_bytes(data)
    lay = OCILayout(str(d))
    entries = _only_ours(lay.list)
    assert entries is None or isinstance(entries, list)
    names = _only_ours(lay.names)
    assert names is None or isinstance(names, list)
    pruned = _only_ours(lay.prune)
    assert pruned is None or pruned == ([], 0)  # nothing in the layout's blobs to prune


@FUZZ
@given(values)
def test_bundle_index(index):
    from ollama_oci.bundle import _select
    for names in (None, ["a:1"]):
        chosen = _only_ours(_select, index, names, "x.tar")
        assert chosen is None or (chosen and all(isinstance(r, str) and isinstance(d, str) for r, d in chosen))


@FUZZ
@given(documents)
def test_docker_and_containers_auth_files(tmp_path_factory, data):
    from ollama_oci.transport.auth import find_credentials, remove_login, save_login
    d = tmp_path_factory.mktemp("auth")
    (d / "config.json").write_bytes(data)
    (d / "auth.json").write_bytes(data)
    old = {k: os.environ.get(k) for k in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "PATH")}
    os.environ.update(DOCKER_CONFIG=str(d), REGISTRY_AUTH_FILE=str(d / "auth.json"), PATH="/nonexistent")
    try:
        c = _only_ours(find_credentials, "reg.example", "team/m")
        assert c is None or isinstance(c.username, str)
        _only_ours(save_login, "reg.example", "alice", "pw")
        _only_ours(remove_login, "reg.example")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("body", [b"[]", b'{"tags": {"a": 1}}', b'{"tags": [1, "ok", null]}', b"[" * 50000])
def test_tag_lists(body, tmp_path):
    """A registry's tag list of any shape: tags that are strings, or one clear error."""
    import http.server
    import threading

    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        store = RegistryStore(f"127.0.0.1:{httpd.server_address[1]}", TransportOptions(plain_http=True))
        tags = _only_ours(store.list_tags, "team/m")
        assert tags is None or all(isinstance(t, str) for t in tags)
    finally:
        httpd.shutdown()

"""ModelPack and Docker model artifacts pulled as Ollama models, the weight blob shared (issue 13).

The artifacts are built here, in a real Docker distribution, as ../shared/docs/model-formats.md §1.7
and §2.9 describe them (ModelPack: OCI manifest, artifactType, weight/doc/weight.config layers with
org.cncf.model.filepath; Docker v0.1: gguf.v3 and license layers)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import TINY, assert_ollama_loads, run_cli
from ollama_oci import OllamaStore, parse_name
from ollama_oci.digest import digest_bytes
from ollama_oci.reference import parse_reference
from ollama_oci.spec import Descriptor
from ollama_oci.stores.registry import RegistryStore
from ollama_oci.transport import TransportOptions

LICENSE = b"Apache License 2.0 (test)\n"
JINJA = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _blob(store, repo, data: bytes, mt="application/octet-stream") -> dict:
    d = Descriptor(mt, digest_bytes(data), len(data))
    import io
    store.push_blob(repo, d, lambda offset=0: io.BytesIO(data[offset:]))
    return {"mediaType": mt, "digest": str(d.digest), "size": d.size}


def _weight(store, repo, mt) -> dict:
    data = open(TINY, "rb").read()
    return _blob(store, repo, data, mt)


def _modelpack(store, repo, tag="1", *, paths=("tiny.gguf", "LICENSE", "chat_template.jinja"), config=None,
               config_size=None):
    w = _weight(store, repo, "application/vnd.cncf.model.weight.v1.raw")
    lic = _blob(store, repo, LICENSE, "application/vnd.cncf.model.doc.v1.raw")
    tpl = _blob(store, repo, JINJA.encode(), "application/vnd.cncf.model.weight.config.v1.raw")
    for layer, p in zip((w, lic, tpl), paths):
        layer["annotations"] = {"org.cncf.model.filepath": p}
    cfg = config if config is not None else json.dumps(
        {"descriptor": {"name": "tiny", "createdAt": "2026-01-01T00:00:00Z"}, "config": {"format": "gguf"},
         "modelfs": {"type": "layers", "diffIds": [w["digest"], lic["digest"], tpl["digest"]]}}).encode()
    c = _blob(store, repo, cfg, "application/vnd.cncf.model.config.v1+json")
    if config_size is not None:   # a descriptor that claims another size (distribution does not check it)
        c["size"] = config_size
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "artifactType": "application/vnd.cncf.model.manifest.v1+json", "config": c, "layers": [w, lic, tpl]}
    store.put_manifest_raw(parse_reference(f"{store.registry}/{repo}:{tag}"), json.dumps(m).encode(),
                           "application/vnd.oci.image.manifest.v1+json")
    return w, lic, tpl


def _docker_v01(store, repo, tag="1"):
    w = _weight(store, repo, "application/vnd.docker.ai.gguf.v3")
    lic = _blob(store, repo, LICENSE, "application/vnd.docker.ai.license")
    cfg = json.dumps({"config": {"format": "gguf"}, "descriptor": {},
                      "rootfs": {"type": "rootfs", "diff_ids": [w["digest"], lic["digest"]]}}).encode()
    c = _blob(store, repo, cfg, "application/vnd.docker.ai.model.config.v0.1+json")
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c,
         "layers": [w, lic]}
    store.put_manifest_raw(parse_reference(f"{store.registry}/{repo}:{tag}"), json.dumps(m).encode(),
                           "application/vnd.oci.image.manifest.v1+json")
    return w, lic


def test_modelpack_and_docker_artifacts_pull_as_ollama_models(tmp_path, registry_factory):
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    w, lic, tpl = _modelpack(store, "mp/tiny")
    dw, dlic = _docker_v01(store, "dmr/tiny")
    doc = json.loads(run_cli("inspect", f"{reg.host}/mp/tiny:1", "--plain-http", "--json", check=0).stdout)
    assert doc["format"] == "CNCF ModelPack"
    for ref, name in ((f"{reg.host}/mp/tiny:1", "tiny:mp"), (f"{reg.host}/dmr/tiny:1", "tiny:dmr")):
        cp = run_cli("pull", ref, "--name", name, "--plain-http", "--models-dir", tmp_path / "m", "--json", check=0)
        report = json.loads(cp.stdout)
        assert report["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    ollama = OllamaStore(str(tmp_path / "m"))
    assert ollama.verify()[1] == []
    hexdigest = hashlib.sha256(open(TINY, "rb").read()).hexdigest()
    for name in ("tiny:mp", "tiny:dmr"):
        assert_ollama_loads(tmp_path / "m", name)
        m, _ = ollama.get_manifest(parse_name(name))
        kinds = [layer.kind for layer in m.layers]
        assert kinds[0] == "model" and str(m.layers[0].digest) == "sha256:" + hexdigest   # the same weight blob
        assert "license" in kinds and "template" in kinds and "params" in kinds
        lic_layer = next(layer for layer in m.layers if layer.kind == "license")
        assert str(lic_layer.digest) == lic["digest"] == dlic["digest"]                     # the same license blob
        cfg = ollama.get_config(m)
        assert cfg.model_format == "gguf" and cfg.model_family == "llama"                  # from the GGUF header
    # the ModelPack's own Jinja template became the Go template
    m, _ = ollama.get_manifest(parse_name("tiny:mp"))
    tmpl = open(ollama.blob_path(next(layer for layer in m.layers if layer.kind == "template").digest)).read()
    assert "<|user|>" in tmpl and "{{ .Content }}" in tmpl


@pytest.mark.parametrize("case, error", [
    ("escape", "leaves the model"), ("absolute", "leaves the model"), ("duplicate", "two layers claim"),
    ("config-not-json", "config is not a JSON object"), ("config-too-big", "more than the"),
    ("config-of-1-gb", "more than the"),
])
def test_hostile_artifacts_are_refused_and_nothing_is_visible(tmp_path, registry_factory, case, error):
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    kw = {"escape": {"paths": ("../tiny.gguf", "LICENSE", "t.jinja")},
          "absolute": {"paths": ("/etc/tiny.gguf", "LICENSE", "t.jinja")},
          "duplicate": {"paths": ("tiny.gguf", "tiny.gguf", "t.jinja")},
          "config-not-json": {"config": b"not json"},
          "config-too-big": {"config": b"{" + b" " * (1 << 20) + b"}"},
          # a 1 GB config as its descriptor announces it: refused by the size, before a byte is read
          "config-of-1-gb": {"config_size": 1_000_000_000}}[case]
    _modelpack(store, "mp/bad", **kw)
    cp = run_cli("pull", f"{reg.host}/mp/bad:1", "--name", "bad:1", "--plain-http", "--models-dir", tmp_path / "m")
    assert cp.returncode == 3 and error in cp.stderr, cp.stderr
    assert not (tmp_path / "m").exists() or not [p for p in (tmp_path / "m").rglob("*") if p.is_file()]


def test_the_header_read_grows_until_the_gguf_header_parses(tmp_path, registry_factory, monkeypatch):
    """The library call, with a first read far smaller than the header: range reads grow fourfold."""
    from ollama_oci import bridge
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    w, _, _ = _modelpack(store, "mp/tiny")
    monkeypatch.setattr(bridge, "HEADER_START", 512)
    reads = []
    from ollama_oci.stores.registry import Repository
    real = Repository.fetch

    def counted(self, desc, offset=0, length=None):
        if str(desc.digest) == w["digest"] and length is not None:
            reads.append(length)
        return real(self, desc, offset, length)
    monkeypatch.setattr(Repository, "fetch", counted)
    ollama = OllamaStore(str(tmp_path / "m"))
    bridge.pull_any(store, parse_reference(f"{reg.host}/mp/tiny:1"), ollama, parse_name("tiny:1"))
    assert reads[:3] == [512, 2048, 8192]
    assert ollama.verify()[1] == []


def test_registry_to_registry_conversion_mounts_the_weight(tmp_path, registry_factory):
    """copy --to-ollama inside one registry: the Ollama model's weight is mounted from the ModelPack's
    repository, no weight byte uploaded (counted at a loopback proxy in front of the registry)."""
    reg, front = registry_factory("plain", front=True)
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    w, _, _ = _modelpack(store, "mp/tiny")
    cp = run_cli("copy", f"{front.addr}/mp/tiny:1", f"{front.addr}/ollama/tiny:1", "--to-ollama", "--plain-http",
                 "--json", check=0)
    doc = json.loads(cp.stdout)
    weight = next(b for b in doc["blobs"] if b["digest"] == w["digest"])
    assert weight["action"] == "mounted" and front.upload_bytes < w["size"]
    run_cli("pull", f"{reg.host}/ollama/tiny:1", "--plain-http", "--models-dir", tmp_path / "m", check=0)
    m, raw = OllamaStore(str(tmp_path / "m")).get_manifest(parse_name(f"{reg.host}/ollama/tiny:1"))
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert str(m.layers[0].digest) == w["digest"]


def _single_file_tar(name: str, data: bytes) -> bytes:
    """A one-file tar as llmman build writes one (mode, mtime, uid and gid set, as the spec asks)."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = len(data), 0o644, 1767225600, 0, 0
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("form", ["tar", "tar+gzip", "tar+zstd"])
def test_a_tar_wrapped_weight_is_unpacked_into_a_blob_of_its_own(tmp_path, registry_factory, form):
    """ModelPack weight.v1.tar (+gzip, +zstd), as llmman build writes: the GGUF inside becomes the model
    layer under its own digest (streamed, verified); a damaged one is refused with no model visible."""
    import gzip
    import zstandard
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    gguf = open(TINY, "rb").read()
    tar = _single_file_tar("tiny.gguf", gguf)
    body = {"tar": tar, "tar+gzip": gzip.compress(tar, mtime=0),
            "tar+zstd": zstandard.ZstdCompressor().compress(tar)}[form]
    mt = f"application/vnd.cncf.model.weight.v1.{form}"

    def artifact(repo, blob):
        w = _blob(store, repo, blob, mt)
        w["annotations"] = {"org.cncf.model.filepath": "tiny.gguf"}
        cfg = json.dumps({"descriptor": {"createdAt": "2026-01-01T00:00:00Z"}, "config": {"format": "gguf"},
                          "modelfs": {"type": "layers", "diffIds": [w["digest"]]}}).encode()
        c = _blob(store, repo, cfg, "application/vnd.cncf.model.config.v1+json")
        m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "artifactType": "application/vnd.cncf.model.manifest.v1+json", "config": c, "layers": [w]}
        store.put_manifest_raw(parse_reference(f"{reg.host}/{repo}:1"), json.dumps(m).encode(),
                               "application/vnd.oci.image.manifest.v1+json")

    artifact("llmman/tiny", body)
    run_cli("pull", f"{reg.host}/llmman/tiny:1", "--name", "tiny:1", "--plain-http", "--models-dir",
            tmp_path / "m", check=0)
    ollama = OllamaStore(str(tmp_path / "m"))
    m, _ = ollama.get_manifest(parse_name("tiny:1"))
    assert m.layers[0].kind == "model" and m.layers[0].digest.hex == hashlib.sha256(gguf).hexdigest()
    assert ollama.verify()[1] == [] and ollama.get_config(m).model_family == "llama"
    assert_ollama_loads(tmp_path / "m", "tiny:1")
    # registry to registry: the unwrapped GGUF is uploaded (a new blob), the model is complete there
    run_cli("copy", f"{reg.host}/llmman/tiny:1", f"{reg.host}/ollama/tiny:1", "--to-ollama", "--plain-http", check=0)
    run_cli("pull", f"{reg.host}/ollama/tiny:1", "--plain-http", "--models-dir", tmp_path / "m2", check=0)
    assert OllamaStore(str(tmp_path / "m2")).verify()[1] == []
    # a tar cut short inside the GGUF (a valid blob of a broken archive): refused, no model
    cut = tar[:len(tar) // 2]
    artifact("llmman/cut", {"tar": cut, "tar+gzip": gzip.compress(cut, mtime=0),
                            "tar+zstd": zstandard.ZstdCompressor().compress(cut)}[form])
    cp = run_cli("pull", f"{reg.host}/llmman/cut:1", "--name", "cut:1", "--plain-http", "--models-dir",
                 tmp_path / "m3")
    assert cp.returncode == 3 and "damaged or not a tar" in cp.stderr, cp.stderr
    assert OllamaStore(str(tmp_path / "m3")).list() == []


def test_docker_artifacts_with_a_projector_and_v02_annotations(tmp_path, registry_factory):
    """Docker v0.1 with a GGUF and an mmproj (the projector layer), and a v0.2 artifact (layer per file,
    org.cncf.model.filepath annotations, a Jinja template layer), each pulled as an Ollama model."""
    import struct
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))

    def kv(key: bytes, value: bytes) -> bytes:
        return struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(value)) + value
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv(b"general.architecture", b"clip") + kv(b"general.type", b"mmproj")
    mmproj = head + b"\0" * (-len(head) % 32)
    w = _weight(store, "dmr/vision", "application/vnd.docker.ai.gguf.v3")
    p = _blob(store, "dmr/vision", mmproj, "application/vnd.docker.ai.mmproj")
    cfg = json.dumps({"config": {"format": "gguf"}, "descriptor": {},
                      "rootfs": {"type": "rootfs", "diff_ids": [w["digest"], p["digest"]]}}).encode()
    c = _blob(store, "dmr/vision", cfg, "application/vnd.docker.ai.model.config.v0.1+json")
    store.put_manifest_raw(parse_reference(f"{reg.host}/dmr/vision:1"), json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c,
         "layers": [w, p]}).encode(), "application/vnd.oci.image.manifest.v1+json")
    # v0.2: every layer annotated with its file path (model-formats.md §2.5)
    meta = {"mode": 420, "uid": 0, "gid": 0, "mtime": "2026-01-01T00:00:00Z", "typeflag": 0}
    w2 = _weight(store, "dmr/v2", "application/vnd.docker.ai.gguf.v3")
    t2 = _blob(store, "dmr/v2", JINJA.encode(), "application/vnd.docker.ai.chat.template.jinja")
    l2 = _blob(store, "dmr/v2", LICENSE, "application/vnd.docker.ai.license")
    for layer, path in ((w2, "tiny.gguf"), (t2, "template.jinja"), (l2, "LICENSE")):
        layer["annotations"] = {"org.cncf.model.filepath": path, "org.cncf.model.file.mediatype.untested": "false",
                                "org.cncf.model.file.metadata+json": json.dumps(dict(meta, name=path,
                                                                                     size=layer["size"]))}
    cfg2 = json.dumps({"config": {"format": "gguf", "architecture": "llama", "parameters": "8.32K"},
                       "descriptor": {"created": "2026-01-01T00:00:00Z"},
                       "rootfs": {"type": "rootfs", "diff_ids": [w2["digest"], t2["digest"], l2["digest"]]}}).encode()
    c2 = _blob(store, "dmr/v2", cfg2, "application/vnd.docker.ai.model.config.v0.2+json")
    store.put_manifest_raw(parse_reference(f"{reg.host}/dmr/v2:1"), json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c2,
         "layers": [w2, t2, l2]}).encode(), "application/vnd.oci.image.manifest.v1+json")
    doc = json.loads(run_cli("inspect", f"{reg.host}/dmr/v2:1", "--plain-http", "--json", check=0).stdout)
    assert "Docker" in doc["format"]
    for ref, name in ((f"{reg.host}/dmr/vision:1", "vision:1"), (f"{reg.host}/dmr/v2:1", "v2:1")):
        run_cli("pull", ref, "--name", name, "--plain-http", "--models-dir", tmp_path / "m", check=0)
    ollama = OllamaStore(str(tmp_path / "m"))
    assert ollama.verify()[1] == []
    assert_ollama_loads(tmp_path / "m", "vision:1")
    assert_ollama_loads(tmp_path / "m", "v2:1")
    m, _ = ollama.get_manifest(parse_name("vision:1"))
    assert [(x.kind, str(x.digest)) for x in m.layers[:2]] == [("model", w["digest"]), ("projector", p["digest"])]
    assert tuple(ollama.get_config(m).model_families) == ("llama",)   # v0.30+: model layers only, as pack writes
    m2, _ = ollama.get_manifest(parse_name("v2:1"))
    kinds = [x.kind for x in m2.layers]
    assert str(m2.layers[0].digest) == w2["digest"] and "template" in kinds and "license" in kinds
    tmpl = open(ollama.blob_path(next(x for x in m2.layers if x.kind == "template").digest)).read()
    assert "<|user|>" in tmpl


def test_split_weights_are_merged_as_pack_merges_them(tmp_path, registry_factory):
    """A ModelPack artifact whose weight is a split GGUF set (layers out of order: the headers decide):
    pulled as one model blob, byte for byte what `pack` of the same shards writes."""
    from gguf_factory import split_like_llama_cpp
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    shards = split_like_llama_cpp(TINY, str(tmp_path / "tiny"), 2)
    local = OllamaStore(str(tmp_path / "local"))
    run_cli("pack", shards[0], "--name", "tiny:split", "--models-dir", local.root, check=0)
    want = local.get_manifest(parse_name("tiny:split"))[0].layers[0]
    layers = []
    for p in reversed(shards):
        w = _blob(store, "mp/split", open(p, "rb").read(), "application/vnd.cncf.model.weight.v1.raw")
        w["annotations"] = {"org.cncf.model.filepath": p.rsplit("/", 1)[1]}
        layers.append(w)
    cfg = json.dumps({"descriptor": {}, "config": {"format": "gguf"},
                      "modelfs": {"type": "layers", "diffIds": [x["digest"] for x in layers]}}).encode()
    c = _blob(store, "mp/split", cfg, "application/vnd.cncf.model.config.v1+json")
    store.put_manifest_raw(parse_reference(f"{reg.host}/mp/split:1"), json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "artifactType": "application/vnd.cncf.model.manifest.v1+json", "config": c, "layers": layers}).encode(),
        "application/vnd.oci.image.manifest.v1+json")
    run_cli("pull", f"{reg.host}/mp/split:1", "--name", "tiny:1", "--plain-http", "--models-dir", tmp_path / "m",
            check=0)
    ollama = OllamaStore(str(tmp_path / "m"))
    m, _ = ollama.get_manifest(parse_name("tiny:1"))
    assert m.layers[0].kind == "model" and m.layers[0].digest == want.digest and m.layers[0].size == want.size
    assert ollama.verify()[1] == [] and ollama.get_config(m).model_family == "llama"
    assert_ollama_loads(tmp_path / "m", "tiny:1")
    assert not [p for p in (tmp_path / "m").rglob("*") if "split" in p.name]    # the work directory is gone
    # registry to registry: the merged blob is uploaded once, the model is whole there
    run_cli("copy", f"{reg.host}/mp/split:1", f"{reg.host}/ollama/split:1", "--to-ollama", "--plain-http", check=0)
    run_cli("pull", f"{reg.host}/ollama/split:1", "--plain-http", "--models-dir", tmp_path / "m2", check=0)
    m2, _ = OllamaStore(str(tmp_path / "m2")).get_manifest(parse_name(f"{reg.host}/ollama/split:1"))
    assert m2.layers[0].digest == want.digest


def test_params_apply_to_a_conversion_and_never_to_an_ollama_copy(tmp_path, registry_factory):
    """--param on pull/copy of a ModelPack artifact goes into the Ollama model (typed as pack types it;
    an explicit stop replaces the derived one); on an Ollama model it is refused (a copy is byte for byte)."""
    reg = registry_factory("plain")
    store = RegistryStore(reg.host, TransportOptions(plain_http=True))
    _modelpack(store, "mp/tiny")
    run_cli("pull", f"{reg.host}/mp/tiny:1", "--name", "tiny:1", "-p", "num_ctx=8192", "-p", "stop=<|end|>",
            "--plain-http", "--models-dir", tmp_path / "m", check=0)
    ollama = OllamaStore(str(tmp_path / "m"))
    m, _ = ollama.get_manifest(parse_name("tiny:1"))
    params = json.loads(open(ollama.blob_path(m.layers_of("application/vnd.ollama.image.params")[0].digest)).read())
    assert params == {"stop": ["<|end|>"], "num_ctx": 8192}
    assert_ollama_loads(tmp_path / "m", "tiny:1")
    cp = run_cli("pull", f"{reg.host}/mp/tiny:1", "--name", "tiny:2", "-p", "temprature=0.1", "--plain-http",
                 "--models-dir", tmp_path / "m")
    assert cp.returncode == 3 and "temprature" in cp.stderr
    run_cli("push", "tiny:1", f"{reg.host}/ollama/tiny:1", "--plain-http", "--models-dir", tmp_path / "m", check=0)
    cp = run_cli("pull", f"{reg.host}/ollama/tiny:1", "-p", "num_ctx=2", "--plain-http", "--models-dir",
                 tmp_path / "m2")
    assert cp.returncode == 3 and "--param applies only to ModelPack" in cp.stderr
    # copy --to-ollama takes them too, into a registry
    run_cli("copy", f"{reg.host}/mp/tiny:1", f"{reg.host}/ollama/tiny:2", "--to-ollama", "-p", "top_k=5",
            "--plain-http", check=0)
    run_cli("pull", f"{reg.host}/ollama/tiny:2", "--plain-http", "--models-dir", tmp_path / "m3", check=0)
    m3, _ = OllamaStore(str(tmp_path / "m3")).get_manifest(parse_name(f"{reg.host}/ollama/tiny:2"))
    p3 = json.loads(open(OllamaStore(str(tmp_path / "m3")).blob_path(
        m3.layers_of("application/vnd.ollama.image.params")[0].digest)).read())
    assert p3["top_k"] == 5 and p3["stop"]


def test_a_mirror_plan_converts_modelpack_sources(tmp_path, registry_factory):
    """to_ollama in a mirror plan: a ModelPack source becomes an Ollama model at the target registry."""
    a = registry_factory("plain")
    b = registry_factory("plain")
    store = RegistryStore(a.host, TransportOptions(plain_http=True))
    w, _, _ = _modelpack(store, "mp/tiny")
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
[source]
registry = "{a.host}"
plain_http = true
[target]
registry = "{b.host}"
plain_http = true
[[models]]
name = "mp/tiny:1"
to_ollama = true
""")
    doc = json.loads(run_cli("mirror", plan, "--json", check=0).stdout)
    assert [m["status"] for m in doc["models"]] == ["copied"]
    run_cli("pull", f"{b.host}/mp/tiny:1", "--name", "tiny:1", "--plain-http", "--models-dir", tmp_path / "m",
            check=0)
    m, raw = OllamaStore(str(tmp_path / "m")).get_manifest(parse_name("tiny:1"))
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert str(m.layers[0].digest) == w["digest"]
    assert_ollama_loads(tmp_path / "m", "tiny:1")

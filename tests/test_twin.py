"""Ollama models published as CNCF ModelPack and Docker model twins, the weight blob shared (issue 13).

ModelPack configs are checked against model-spec's own schema (tests/schemas/, Draft 2020-12 with
date-time asserted); the registry is a real Docker distribution, the proxy in front of it
(tests/registry_env.Front) only counts what is uploaded; skopeo is the independent client."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import TINY, assert_ollama_loads, run_cli
from ollama_oci import OCILayout, OllamaStore, Recipe, pack, parse_name
from ollama_oci.errors import InvalidInput
from ollama_oci.twin import copy_as, make_twin, twin_reference

HERE = os.path.dirname(os.path.abspath(__file__))
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("rfc3339_validator")   # without it jsonschema does not assert date-time
    with open(os.path.join(HERE, "schemas", "modelpack-config-schema.json")) as f:
        schema = json.load(f)
    v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    # the validator is the real thing: it refuses what the spec's own tests refuse
    good = {"descriptor": {}, "config": {}, "modelfs": {"type": "layers", "diffIds": ["sha256:" + "a" * 64]}}
    assert v.is_valid(good)
    for bad in ({**good, "descriptor": {"createdAt": "2026-01-02T03:04:05"}},      # no offset
                {**good, "descriptor": {"name": ""}},
                {**good, "config": {"capabilities": {"embedding": True}}},
                {**good, "modelfs": {"type": "layers", "diffIds": []}},
                {**good, "rootfs": {}}):
        assert not v.is_valid(bad), bad
    return v


def _model(tmp_path, **kw):
    layout = OCILayout(str(tmp_path / "src"))
    recipe = Recipe(files=[TINY], system="be brief", licenses=["MIT", "Apache-2.0"],
                    params={"temperature": 0.5, "num_ctx": 8192}, **kw)
    res = pack(recipe, "team/tiny:1", [layout])
    return layout, res


def test_modelpack_twin_follows_the_spec(tmp_path, validator):
    layout, res = _model(tmp_path)
    twin = make_twin(layout, parse_name("team/tiny:1"), "modelpack", created=WHEN)
    m = json.loads(twin.manifest)
    cfg = json.loads(twin.config)
    validator.validate(cfg)
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert m["config"]["digest"] == "sha256:" + hashlib.sha256(twin.config).hexdigest()
    assert m["config"]["size"] == len(twin.config)
    # the Ollama model's blobs, byte for byte, as .raw layers with their file paths
    ollama = {d.kind: d for d in res.manifest.layers}
    licenses = [d for d in res.manifest.layers if d.kind == "license"]
    assert [(x["mediaType"], x["digest"], x["annotations"]["org.cncf.model.filepath"]) for x in m["layers"]] == [
        ("application/vnd.cncf.model.weight.v1.raw", str(ollama["model"].digest), "tiny.gguf"),
        ("application/vnd.cncf.model.doc.v1.raw", str(licenses[0].digest), "LICENSE"),
        ("application/vnd.cncf.model.doc.v1.raw", str(licenses[1].digest), "LICENSE-2")]
    for x in m["layers"]:
        meta = json.loads(x["annotations"]["org.cncf.model.file.metadata+json"])
        assert meta["size"] == x["size"] and meta["mode"] == 0o644 and meta["mtime"] == "2026-01-02T03:04:05Z"
        assert x["annotations"]["org.cncf.model.file.mediatype.untested"] == "false"
    # diffIds 1:1 with the layers, in order (raw layers: the digest); facts from the GGUF header
    assert cfg["modelfs"] == {"type": "layers", "diffIds": [x["digest"] for x in m["layers"]]}
    assert cfg["descriptor"] == {"name": "tiny", "family": "llama", "createdAt": "2026-01-02T03:04:05Z"}
    assert cfg["config"] == {"format": "gguf", "architecture": "llama", "paramSize": "8.3K", "quantization": "Q8_0"}
    # what has no slot is reported, and the Go template is not put where Jinja goes
    assert {k for k, _, _ in twin.not_carried} == {"template", "system", "params"}
    assert not any(x["mediaType"].endswith("weight.config.v1.raw") for x in m["layers"])
    # no empty values anywhere
    assert "\"\"" not in twin.config.decode() and "{}" not in twin.config.decode()


def test_docker_twin_follows_model_runner(tmp_path):
    layout, res = _model(tmp_path)
    twin = make_twin(layout, parse_name("team/tiny:1"), "docker", created=WHEN)
    m, cfg = json.loads(twin.manifest), json.loads(twin.config)
    assert "artifactType" not in m
    assert m["config"]["mediaType"] == "application/vnd.docker.ai.model.config.v0.1+json"
    assert [x["mediaType"] for x in m["layers"]] == ["application/vnd.docker.ai.gguf.v3",
                                                    "application/vnd.docker.ai.license",
                                                    "application/vnd.docker.ai.license"]
    assert cfg["rootfs"] == {"type": "rootfs", "diff_ids": [x["digest"] for x in m["layers"]]}
    assert cfg["descriptor"] == {"created": "2026-01-02T03:04:05Z"}
    # snake_case only: a camelCase key or a modelfs object would make DMR read it as ModelPack
    assert not {"createdAt", "paramSize"} & (set(cfg["descriptor"]) | set(cfg["config"])) and "modelfs" not in cfg
    assert cfg["config"]["format"] == "gguf" and cfg["config"]["architecture"] == "llama"
    assert cfg["config"]["parameters"] == "8.32K" and cfg["config"]["quantization"] == "MOSTLY_Q8_0"
    assert cfg["config"]["context_size"] == 8192             # num_ctx, the one parameter with a home
    params = [why for k, _, why in twin.not_carried if k == "params"]
    assert params and "temperature" in params[0] and "num_ctx" not in params[0].split("not carried:")[1]


def test_a_projector_follows_the_model_and_says_mmproj(tmp_path, validator):
    import struct
    proj = tmp_path / "mmproj.gguf"   # a GGUF Ollama takes for a projector: general.type = "mmproj"

    def kv(key: bytes, value: bytes) -> bytes:
        return struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(value)) + value
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv(b"general.architecture", b"clip") + kv(b"general.type", b"mmproj")
    proj.write_bytes(head + b"\0" * (-len(head) % 32))
    layout = OCILayout(str(tmp_path / "src"))
    pack(Recipe(files=[TINY, str(proj)]), "team/vision:1", [layout])
    for fmt, mt in (("modelpack", "application/vnd.cncf.model.weight.v1.raw"),
                    ("docker", "application/vnd.docker.ai.mmproj")):
        twin = make_twin(layout, parse_name("team/vision:1"), fmt, created=WHEN)
        layers = json.loads(twin.manifest)["layers"]
        assert layers[1]["mediaType"] == mt and "mmproj" in layers[1]["annotations"]["org.cncf.model.filepath"]
        if fmt == "modelpack":
            cfg = json.loads(twin.config)
            validator.validate(cfg)
            assert cfg["config"]["capabilities"] == {"inputTypes": ["text", "image"], "outputTypes": ["text"]}


def test_twin_names_and_bad_input():
    assert twin_reference("r.example:5000/ml/gemma3:270m", "modelpack") == "r.example:5000/ml/gemma3:270m-modelpack"
    assert twin_reference("r.example/ml/gemma3:270m", "docker", "{repository}-{format}:{tag}") == \
        "r.example/ml/gemma3-docker:270m"
    with pytest.raises(InvalidInput):
        twin_reference("r.example/ml/gemma3:270m", "modelpack", "{repository}:{tag}")   # its own tag
    with pytest.raises(InvalidInput):
        twin_reference("r.example/ml/gemma3:270m", "modelpack", "{repo}:{tag}")
    with pytest.raises(InvalidInput):
        make_twin(None, None, "safetensors")


def test_copy_as_into_a_layout_and_back(tmp_path, validator):
    """copy --as modelpack into an OCI layout: the twin shares the blob files' digests; the bridge reads
    it back as an Ollama model with the same weight."""
    layout, res = _model(tmp_path)
    cp = run_cli("copy", f"oci:{tmp_path / 'src'}:team/tiny:1", f"oci:{tmp_path / 'twin'}:team/tiny:1-modelpack",
                 "--as", "modelpack", "--json", check=0)
    assert "not carried into the modelpack twin: system" in cp.stderr
    doc = json.loads(cp.stdout)
    out = OCILayout(str(tmp_path / "twin"))
    raw, mt = out.fetch_manifest(parse_name("team/tiny:1-modelpack"))
    assert mt == "application/vnd.oci.image.manifest.v1+json" and doc["manifest_digest"] == \
        "sha256:" + hashlib.sha256(raw).hexdigest()
    m = json.loads(raw)
    with open(os.path.join(out.root, "blobs", "sha256", m["config"]["digest"][7:]), "rb") as f:
        validator.validate(json.loads(f.read()))
    model = res.manifest.layers_of("application/vnd.ollama.image.model")[0]
    assert m["layers"][0]["digest"] == str(model.digest)
    # and back: the bridge turns the twin into an Ollama model around the same weight
    run_cli("copy", f"oci:{tmp_path / 'twin'}:team/tiny:1-modelpack", f"oci:{tmp_path / 'back'}:team/tiny:1",
            "--to-ollama", check=0)
    back, _ = OCILayout(str(tmp_path / "back")).get_manifest(parse_name("team/tiny:1"))
    assert back.layers_of("application/vnd.ollama.image.model")[0].digest == model.digest
    # a twin never goes into the Ollama store
    cp = run_cli("copy", f"oci:{tmp_path / 'src'}:team/tiny:1", "ollama:x", "--as", "modelpack",
                 "--models-dir", tmp_path / "m")
    assert cp.returncode != 0 and "twin goes to a registry or an OCI layout" in cp.stderr


@pytest.mark.slow
def test_gemma_pushed_with_twins_uploads_the_weight_once(tmp_path, registry_factory, gemma_path, validator):
    """The Gemma model pushed with a ModelPack and a Docker twin: the weight goes up once (counted at a
    loopback proxy in front of the registry); pulling the twin back gives the same weight digest;
    skopeo copies the twin's OCI manifest, verifying every blob."""
    reg, front = registry_factory("plain", front=True)
    models = tmp_path / "models"
    run_cli("pack", gemma_path, "--name", "gemma3:270m", "--models-dir", models, "-q", check=0)
    m, _ = OllamaStore(str(models)).get_manifest(parse_name("gemma3:270m"))
    weight = m.layers_of("application/vnd.ollama.image.model")[0]
    assert str(weight.digest).startswith("sha256:a5fd3b62")
    cp = run_cli("push", "gemma3:270m", f"{front.addr}/ml/gemma3:270m", "--also", "modelpack", "--also", "docker",
                 "--plain-http", "--models-dir", models, "--json", check=0)
    doc = json.loads(cp.stdout)
    assert [t["destination"] for t in doc["twins"]] == [f"{front.addr}/ml/gemma3:270m-modelpack",
                                                        f"{front.addr}/ml/gemma3:270m-docker"]
    for t in doc["twins"]:
        w = next(b for b in t["blobs"] if b["digest"] == str(weight.digest))
        assert w["action"] == "exists" and w["transferred"] == 0
    # one upload of the weight's bytes in all (plus the small blobs)
    assert weight.size <= front.upload_bytes < weight.size + (1 << 20), front.upload_bytes
    # a parallel repository: the weight is mounted, no weight byte goes up
    front.upload_bytes = 0
    cp = run_cli("push", "gemma3:270m", f"{front.addr}/ml/gemma3:270m", "--also", "modelpack", "--twin-name",
                 "{repository}-{format}:{tag}", "--plain-http", "--models-dir", models, "--json", check=0)
    [t] = json.loads(cp.stdout)["twins"]
    assert t["destination"] == f"{front.addr}/ml/gemma3-modelpack:270m"
    assert next(b for b in t["blobs"] if b["digest"] == str(weight.digest))["action"] == "mounted"
    assert front.upload_bytes < (1 << 20)
    # the twin copied back into an Ollama store: the same weight digest, a config from the GGUF header
    run_cli("copy", f"{reg.host}/ml/gemma3:270m-modelpack", f"ollama:{reg.host}/ml/gemma3:270m-modelpack",
            "--plain-http", "--models-dir", tmp_path / "back", "-q", check=0)
    store = OllamaStore(str(tmp_path / "back"))
    bm, _ = store.get_manifest(parse_name(f"{reg.host}/ml/gemma3:270m-modelpack"))
    assert bm.layers_of("application/vnd.ollama.image.model")[0].digest == weight.digest
    assert store.get_config(bm).model_family == "gemma3" and store.verify()[1] == []
    assert_ollama_loads(tmp_path / "back", f"{reg.host}/ml/gemma3:270m-modelpack")
    # the registry holds a ModelPack config that passes the spec's schema
    raw = run_cli("inspect", f"{reg.host}/ml/gemma3:270m-modelpack", "--plain-http", "--json", check=0).stdout
    assert "modelpack" in raw.lower()
    if shutil.which("skopeo"):
        out = tmp_path / "skopeo"
        subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.host}/ml/gemma3:270m-modelpack",
                        f"oci:{out}:x"], capture_output=True, check=True)
        idx = json.loads((out / "index.json").read_text())
        tm = json.loads((out / "blobs" / "sha256" / idx["manifests"][0]["digest"][7:]).read_text())
        assert tm["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
        validator.validate(json.loads((out / "blobs" / "sha256" / tm["config"]["digest"][7:]).read_text()))
        assert tm["layers"][0]["digest"] == str(weight.digest)
        assert hashlib.sha256((out / "blobs" / "sha256" / weight.digest.hex).read_bytes()).hexdigest() == \
            weight.digest.hex


def test_library_copy_as_returns_the_twin(tmp_path):
    layout, _ = _model(tmp_path)
    dst = OCILayout(str(tmp_path / "dst"))
    twin, report = copy_as(layout, parse_name("team/tiny:1"), dst, parse_name("team/tiny:1-docker"), "docker",
                           created=WHEN)
    assert report.manifest_digest == twin.manifest_digest
    raw, _ = dst.fetch_manifest(parse_name("team/tiny:1-docker"))
    assert raw == twin.manifest


def test_mirror_plan_publishes_twins(tmp_path, registry_factory, validator):
    """A mirror plan's `also` publishes a twin beside each mirrored model, from the target's copy."""
    a = registry_factory("plain")
    b, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[TINY], system="one"), "tiny:1", [store])
    run_cli("push", "tiny:1", f"{a.host}/team/tiny:1", "--plain-http", "--models-dir", store.root, check=0)
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
also = ["modelpack"]
twin_name = "{{repository}}-{{format}}:{{tag}}"
[source]
registry = "{a.host}"
plain_http = true
[target]
registry = "{front.addr}"
plain_http = true
[[models]]
name = "team/tiny:1"
also = ["modelpack", "docker"]
""")
    doc = json.loads(run_cli("mirror", plan, "--dry-run", "--json", check=0).stdout)
    assert [t["status"] for t in doc["models"][0]["twins"]] == ["would-publish", "would-publish"]
    doc = json.loads(run_cli("mirror", plan, "--json", check=0).stdout)
    [m] = doc["models"]
    assert [t["target"] for t in m["twins"]] == [f"{front.addr}/team/tiny-modelpack:1", f"{front.addr}/team/tiny-docker:1"]
    model = res.manifest.layers_of("application/vnd.ollama.image.model")[0]
    assert front.upload_bytes < 2 * model.size      # the weight went up once; the twins mounted it
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions
    from ollama_oci.reference import parse_reference
    remote = RegistryStore(b.host, TransportOptions(plain_http=True))
    raw, _ = remote.get_manifest_raw(parse_reference(f"{b.host}/team/tiny-modelpack:1"))
    tm = json.loads(raw)
    assert tm["layers"][0]["digest"] == str(model.digest)
    from ollama_oci.spec import Descriptor
    cfg = Descriptor(tm["config"]["mediaType"], tm["config"]["digest"], tm["config"]["size"])
    with remote.repository("team/tiny-modelpack").fetch(cfg) as f:
        validator.validate(json.loads(f.read()))
    with pytest.raises(InvalidInput):
        from ollama_oci.mirror import load_plan
        bad = tmp_path / "bad.toml"
        bad.write_text(plan.read_text().replace('also = ["modelpack"]', 'also = ["safetensors"]'))
        load_plan(str(bad))


def test_pack_tags_twins_in_an_oci_layout(tmp_path, validator):
    cp = run_cli("pack", TINY, "--name", "team/tiny:1", "--oci-layout", tmp_path / "lay", "--also", "modelpack",
                 "--also", "docker", "--json", check=0)
    doc = json.loads(cp.stdout)
    assert [(t["name"], t["format"]) for t in doc["twins"]] == [("team/tiny:1-modelpack", "modelpack"),
                                                                ("team/tiny:1-docker", "docker")]
    lay = OCILayout(str(tmp_path / "lay"))
    m, _ = lay.get_manifest(parse_name("team/tiny:1"))
    raw, mt = lay.fetch_manifest(parse_name("team/tiny:1-modelpack"))
    tm = json.loads(raw)
    assert mt == "application/vnd.oci.image.manifest.v1+json" and tm["layers"][0]["digest"] == str(m.layers[0].digest)
    with open(os.path.join(lay.root, "blobs", "sha256", tm["config"]["digest"][7:]), "rb") as f:
        validator.validate(json.load(f))
    cp = run_cli("pack", TINY, "--name", "x", "--models-dir", tmp_path / "m", "--also", "modelpack")
    assert cp.returncode == 2 and "--oci-layout" in cp.stderr

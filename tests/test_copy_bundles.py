"""copy between every pair of store kinds, offline bundles, mirror plans."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import pytest

from conftest import TINY, run_cli
from ollama_oci import OCILayout, OllamaStore, Recipe, pack, parse_name
from ollama_oci.reference import parse_reference
from ollama_oci.stores.registry import RegistryStore
from ollama_oci.transport import TransportOptions

KINDS = ["ollama", "oci", "registry", "bundle"]


@pytest.fixture
def canonical(tmp_path):
    """The model in registry form (what every non-ollama store must hold byte for byte)."""
    layout = OCILayout(str(tmp_path / "canonical"))
    res = pack(Recipe(files=[TINY], system="hi", licenses=["MIT"], params={"top_k": 3.0}), "team/tiny:1", [layout])
    blobs = {}
    for d in res.manifest.blobs:
        with layout.open_blob(d.digest) as f:
            blobs[str(d.digest)] = f.read()
    return layout, res.manifest.to_bytes(newline=False), blobs


def _endpoint(kind, tmp_path, reg, tag):
    if kind == "ollama":
        return f"ollama:team/tiny:{tag}", {"OLLAMA_MODELS": str(tmp_path / f"ollama-{tag}")}
    if kind == "oci":
        return f"oci:{tmp_path / f'oci-{tag}'}:team/tiny:{tag}", {}
    if kind == "registry":
        return f"{reg.host}/team/tiny:{tag}", {}
    return f"{tmp_path / f'bundle-{tag}.tar.zst'}:team/tiny:{tag}", {}


def _read(kind, tmp_path, reg, tag):
    """(manifest bytes, {digest: bytes}) as the destination holds them, read back independently."""
    name = parse_name(f"team/tiny:{tag}")
    if kind in ("ollama", "oci"):
        store = OllamaStore(str(tmp_path / f"ollama-{tag}")) if kind == "ollama" else OCILayout(str(tmp_path / f"oci-{tag}"))
        m, raw = store.get_manifest(name)
        return raw, {str(d.digest): open(store.find_blob(d.digest), "rb").read() for d in m.blobs}
    if kind == "registry":
        remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
        ref = parse_reference(f"{reg.host}/team/tiny:{tag}")
        raw, _ = remote.get_manifest_raw(ref)
        from ollama_oci import parse_manifest
        out = {}
        for d in parse_manifest(raw).blobs:
            with remote.repository(ref.repository).fetch(d) as f:
                out[str(d.digest)] = f.read()
        return raw, out
    import zstandard
    with open(tmp_path / f"bundle-{tag}.tar.zst", "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    import io
    tf = tarfile.open(fileobj=io.BytesIO(data))
    index = json.loads(tf.extractfile("index.json").read())
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == name.display
    files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.name.startswith("blobs/")}
    raw = files.pop(f"blobs/sha256/{entry['digest'][7:]}")
    return raw, {"sha256:" + k.rsplit("/", 1)[1]: v for k, v in files.items()}


@pytest.mark.parametrize("src_kind,dst_kind", [(a, b) for a in KINDS for b in KINDS if not (a == b == "bundle")])
def test_copy_between_every_pair_of_store_kinds(tmp_path, registry_factory, canonical, src_kind, dst_kind):
    reg = registry_factory("plain")
    layout, manifest, blobs = canonical
    src, env1 = _endpoint(src_kind, tmp_path, reg, "src")
    dst, env2 = _endpoint(dst_kind, tmp_path, reg, "dst")
    env = {**env1, **env2}
    if src_kind == "ollama" and dst_kind == "ollama":
        env = {"OLLAMA_MODELS": str(tmp_path / "ollama-src")}
    # put the model at the source
    run_cli("copy", f"oci:{layout.root}:team/tiny:1", src, "--plain-http", env={**env1}, check=0)
    run_cli("copy", src, dst, "--plain-http", "--json", env=env, check=0)
    if src_kind == "ollama" and dst_kind == "ollama":  # one store, a new name: compare that one
        store = OllamaStore(str(tmp_path / "ollama-src"))
        m, raw = store.get_manifest(parse_name("team/tiny:dst"))
        got = {str(d.digest): open(store.find_blob(d.digest), "rb").read() for d in m.blobs}
    else:
        raw, got = _read(dst_kind, tmp_path, reg, "dst")
    assert got == blobs
    assert raw == manifest  # digests preserved across every hop


def test_second_copy_is_a_manifest_check(tmp_path, registry_factory, canonical):
    reg = registry_factory("plain")
    layout, manifest, blobs = canonical
    run_cli("copy", f"oci:{layout.root}:team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", check=0)
    cp = run_cli("copy", f"oci:{layout.root}:team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--json",
                 check=0)
    doc = json.loads(cp.stdout)
    assert doc["unchanged"] is True and doc["bytes_transferred"] == 0


def test_bundle_with_several_models_shares_blobs(tmp_path):
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY], system="a"), "a", [store])
    pack(Recipe(files=[TINY], system="b"), "b", [store])
    out = tmp_path / "two.tar"
    cp = run_cli("export", "a", "b", "-o", out, "--models-dir", store.root, "--json", check=0)
    doc = json.loads(cp.stdout)
    assert [m["name"] for m in doc["models"]] == ["a:latest", "b:latest"]
    names = [m.name for m in tarfile.open(out).getmembers()]
    gguf = next(d for d in store.get_manifest(parse_name("a"))[0].layers if d.kind == "model")
    assert names.count(f"blobs/sha256/{gguf.digest.hex}") == 1  # shared blob stored once
    # the index and both manifests lead, so an import knows every model before the first blob
    assert names[:2] == ["oci-layout", "index.json"]
    manifests = [f"blobs/sha256/{m['manifest_digest'][7:]}" for m in doc["models"]]
    assert names[2:4] == manifests and len(names) == len(set(names))
    # and the same bundle bytes again: exports are reproducible
    run_cli("export", "a", "b", "-o", tmp_path / "again.tar", "--models-dir", store.root, check=0)
    assert (tmp_path / "again.tar").read_bytes() == out.read_bytes()


def test_bundle_import_push_and_flipped_byte(tmp_path, registry_factory):
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[TINY], system="hello"), "team/tiny:1", [store])
    bundle = tmp_path / "tiny.tar.zst"
    run_cli("export", "team/tiny:1", "-o", bundle, "--models-dir", store.root, check=0)
    # import into an empty store, then push it to a registry: the original digests
    empty = tmp_path / "empty"
    run_cli("import", bundle, "--models-dir", empty, check=0)
    assert OllamaStore(str(empty)).verify()[1] == []
    cp = run_cli("push", "team/tiny:1", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", empty, "--json",
                 check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == str(res.manifest.digest(newline=False))
    # straight from the bundle into a registry (another namespace)
    cp = run_cli("import", bundle, "--to", f"{reg.host}/mirror", "--plain-http", "--json", check=0)
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    assert remote.manifest_digest(parse_reference(f"{reg.host}/mirror/tiny:1")) == res.manifest.digest(newline=False)
    # a plain tar with a flipped byte inside the GGUF: refused, nothing installed
    plain = tmp_path / "tiny.tar"
    run_cli("export", "team/tiny:1", "-o", plain, "--models-dir", store.root, check=0)
    data = bytearray(plain.read_bytes())
    gguf_at = data.find(b"GGUF")
    data[gguf_at + 5000] ^= 0x01
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    target = tmp_path / "target"
    cp = run_cli("import", bad, "--models-dir", target)
    assert cp.returncode == 5, cp.stderr
    t = OllamaStore(str(target))
    assert t.list() == [] and not any(n.startswith("sha256-") for n in os.listdir(target / "blobs"))
    assert not [n for n in os.listdir(target / "blobs") if n.startswith(".tmp")]
    # a flipped byte in the compressed bundle is refused too
    z = bytearray(bundle.read_bytes())
    z[len(z) // 2] ^= 0x10
    badz = tmp_path / "bad.tar.zst"
    badz.write_bytes(bytes(z))
    cp = run_cli("import", badz, "--models-dir", tmp_path / "target2")
    assert cp.returncode in (3, 5), cp.stderr
    assert OllamaStore(str(tmp_path / "target2")).list() == []


def test_skopeo_reads_our_bundle(tmp_path):
    import shutil
    import subprocess
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[TINY]), "tiny", [store])
    out = tmp_path / "one.tar"
    run_cli("export", "tiny", "-o", out, "--models-dir", store.root, check=0)
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{out}"], capture_output=True, check=True).stdout
    assert raw == res.manifest.to_bytes(newline=False)


@pytest.mark.slow
def test_mirror_between_two_registries(tmp_path, registry_factory, gemma_path):
    a = registry_factory("plain")
    b = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[gemma_path]), "gemma3:270m", [store])
    pack(Recipe(files=[TINY], system="tiny"), "tiny:1", [store])  # shares no blob with gemma
    for name, ref in (("gemma3:270m", f"{a.host}/library/gemma3:270m"), ("tiny:1", f"{a.host}/library/tiny:1")):
        run_cli("push", name, ref, "--plain-http", "--models-dir", store.root, check=0)
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
concurrency = 2
[source]
registry = "{a.host}"
plain_http = true
[target]
registry = "{b.host}"
namespace = "mirror"
plain_http = true
[[models]]
name = "library/gemma3"
tags = ["270m"]
[[models]]
name = "library/tiny:1"
""")
    cp = run_cli("mirror", plan, "--dry-run", "--json", check=0)
    dry = json.loads(cp.stdout)
    assert {m["status"] for m in dry["models"]} == {"would-copy"}
    assert sum(m["bytes_to_transfer"] for m in dry["models"]) > 253_000_000
    cp = run_cli("mirror", plan, "--json", check=0)
    first = json.loads(cp.stdout)
    assert first["ok"] and first["bytes_transferred"] > 253_000_000
    cp = run_cli("mirror", plan, "--json", check=0)
    second = json.loads(cp.stdout)
    assert second["bytes_transferred"] == 0 and {m["status"] for m in second["models"]} == {"unchanged"}
    remote = RegistryStore(b.host, TransportOptions(plain_http=True))
    src = RegistryStore(a.host, TransportOptions(plain_http=True))
    for repo in ("gemma3:270m", "tiny:1"):
        assert remote.manifest_digest(parse_reference(f"{b.host}/mirror/{repo}")) == \
            src.manifest_digest(parse_reference(f"{a.host}/library/{repo}"))
    # a plan naming one missing model mirrors the others and fails naming it
    plan.write_text(plan.read_text() + '\n[[models]]\nname = "library/missing:1"\n')
    cp = run_cli("mirror", plan, "--json")
    assert cp.returncode == 4
    doc = json.loads(cp.stdout)
    assert [m["status"] for m in doc["models"]] == ["unchanged", "unchanged", "failed"]
    assert "library/missing:1" in cp.stderr


def test_mirror_plan_errors(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text("[source]\nregistry = 'a:1'\n")
    cp = run_cli("mirror", plan)
    assert cp.returncode == 3 and "[target]" in cp.stderr
    plan.write_text("[source]\nregistry = 'a:1'\n[target]\nregistry = 'b:1'\nbogus = 1\n[[models]]\nname='x'\n")
    cp = run_cli("mirror", plan)
    assert cp.returncode == 3 and "bogus" in cp.stderr
    plan.write_text("this is = not [ toml")
    cp = run_cli("mirror", plan)
    assert cp.returncode == 3 and "TOML" in cp.stderr


@pytest.mark.parametrize("zstd", [False, True], ids=["tar", "tar+zstd"])
def test_volume_image_passes_skopeo_and_unpacks_to_a_store(tmp_path, registry_factory, zstd):
    import shutil
    import subprocess
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY], system="a"), "tiny:a", [store])
    pack(Recipe(files=[TINY], system="b"), "team/tiny:b", [store])
    args = ["volume", "tiny:a", "team/tiny:b", "--to", f"{reg.host}/ml/volume:1", "--plain-http", "--models-dir",
            store.root, "--json"] + (["--zstd"] if zstd else [])
    doc = json.loads(run_cli(*args, check=0).stdout)
    # an independent client copies it, verifying every digest (manifest, config, layer)
    out = tmp_path / "skopeo"
    subprocess.run(["skopeo", "copy", "--preserve-digests", "--src-tls-verify=false",
                    f"docker://{reg.host}/ml/volume:1", f"oci:{out}:v"],
                   check=True, capture_output=True)
    idx = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs/sha256" / idx["manifests"][0]["digest"][7:]).read_text())
    [layer] = manifest["layers"]
    assert layer["digest"] == doc["layer_digest"]
    data = (out / "blobs/sha256" / layer["digest"][7:]).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
    if zstd:
        import zstandard
        data = zstandard.ZstdDecompressor().stream_reader(__import__("io").BytesIO(data)).read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == doc["diff_id"]
    cfg = json.loads((out / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    assert cfg["rootfs"]["diff_ids"] == [doc["diff_id"]]
    # the layer unpacked into an empty directory is a store that lists and verifies
    import io
    dest = tmp_path / "unpacked"
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(dest, filter="data")
    cp = run_cli("list", "--models-dir", dest, "--json", check=0)
    assert sorted(m["name"] for m in json.loads(cp.stdout)["models"]) == ["team/tiny:b", "tiny:a"]
    cp = run_cli("verify", "--models-dir", dest, "--json", check=0)
    assert json.loads(cp.stdout)["ok"]
    # the manifests are the store's own bytes, so ollama sees the same model IDs
    assert (dest / "manifests/registry.ollama.ai/library/tiny/a").read_bytes() == \
        (tmp_path / "models/manifests/registry.ollama.ai/library/tiny/a").read_bytes()


def test_mirror_lists_tags_and_one_bad_model_does_not_stop_the_rest(tmp_path, registry_factory):
    a = registry_factory("plain")
    b = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY], system="one"), "tiny:1", [store])
    pack(Recipe(files=[TINY], system="two"), "tiny:2", [store])
    for tag in ("1", "2"):
        run_cli("push", f"tiny:{tag}", f"{a.host}/team/tiny:{tag}", "--plain-http", "--models-dir", store.root,
                check=0)
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
[source]
registry = "{a.host}"
plain_http = true
[target]
registry = "{b.host}"
plain_http = true
[[models]]
name = "team/tiny"
tags = ["*"]
[[models]]
name = "team/absent"
tags = ["*"]
""")
    cp = run_cli("mirror", plan, "--json")
    assert cp.returncode == 4, cp.stderr
    doc = json.loads(cp.stdout)
    by_status = sorted((m["status"], m["source"].rsplit("/", 1)[-1]) for m in doc["models"])
    assert by_status == [("copied", "tiny:1"), ("copied", "tiny:2"), ("failed", "absent")]
    assert "team/absent" in cp.stderr


@pytest.mark.parametrize("index_first", [True, False], ids=["index-first", "index-last"])
def test_bundle_import_into_a_registry_reads_the_bundle_once(tmp_path, registry_factory, monkeypatch, index_first):
    """The index and manifests lead a bundle, so an import into a registry streams each blob
    straight to its repository in one pass; a bundle with the index last (written by earlier
    versions, or by another tool) still imports, with a second pass."""
    import ollama_oci.bundle as bundle_mod
    from ollama_oci.reference import Reference
    from gguf_factory import make_big_gguf
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "models"))
    big = tmp_path / "big.gguf"
    make_big_gguf(str(big), 6 << 20)  # larger than a manifest may be: streamed, not held
    pack(Recipe(files=[str(big)], system="a"), "team/a:1", [store])
    pack(Recipe(files=[str(big)], system="b"), "team/b:1", [store])
    out = tmp_path / "two.tar"
    run_cli("export", "team/a:1", "team/b:1", "-o", out, "--models-dir", store.root, check=0)
    if not index_first:  # the same members, the index moved to the end
        moved = tmp_path / "moved.tar"
        with tarfile.open(out) as src, tarfile.open(moved, "w", format=tarfile.PAX_FORMAT) as dst:
            members = src.getmembers()
            for m in sorted(members, key=lambda m: m.name == "index.json"):
                dst.addfile(m, src.extractfile(m))
        out = moved
    opened = []
    real = bundle_mod._open_tar
    monkeypatch.setattr(bundle_mod, "_open_tar", lambda p: opened.append(p) or real(p))
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    rep = bundle_mod.import_bundle(str(out), remote,
                                   dst_ref_for=lambda n: Reference(reg.host, f"mirror/{n.model}", n.tag))
    assert len(opened) == (1 if index_first else 2)
    assert sorted(m["name"] for m in rep.models) == [f"{reg.host}/mirror/a:1", f"{reg.host}/mirror/b:1"]
    for name in ("a", "b"):
        cp = run_cli("pull", f"{reg.host}/mirror/{name}:1", "--plain-http", "--models-dir", tmp_path / "p", check=0)
    assert OllamaStore(str(tmp_path / "p")).verify()[1] == []


def test_copy_to_a_bundle_written_as_a_relative_path(tmp_path):
    """`copy ollama:NAME ./x.tar.zst` (as `copy --help` shows it): ./ and ../ are paths, not hosts."""
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY]), "m:1", [store])
    import subprocess
    import sys
    from conftest import REPO
    env = dict(os.environ, OLLAMA_MODELS=store.root)
    (tmp_path / "sub").mkdir()
    cp = subprocess.run([sys.executable, "-m", "ollama_oci.cli", "copy", "ollama:m:1", "../x.tar.zst", "--json"],
                        cwd=tmp_path / "sub", env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "x.tar.zst").exists() and json.loads(cp.stdout)["models"][0]["name"] == "m:1"


def test_a_copy_never_modifies_its_source(tmp_path):
    """`copy ollama:m:1 ollama:` (the destination defaults to the source's name, in the same store)
    used to rewrite the model's manifest in its pushed form, changing its ID."""
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY]), "m:1", [store])
    before = store.resolve(parse_name("m:1")).digest
    path = store.manifest_path(parse_name("m:1"))
    raw = open(path, "rb").read()
    cp = run_cli("copy", "ollama:m:1", "ollama:", "--models-dir", store.root, "--json", check=0)
    assert json.loads(cp.stdout)["unchanged"]
    assert store.resolve(parse_name("m:1")).digest == before and open(path, "rb").read() == raw


def test_a_copy_between_model_stores_keeps_the_id(tmp_path):
    """As `ollama cp` does: the manifest file is copied as it is, so `list` shows the same ID for
    the copy, in the same store or another; a registry still gets the pushed form."""
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY]), "m:1", [store])
    src_id = store.resolve(parse_name("m:1")).digest
    run_cli("copy", "ollama:m:1", "ollama:n:1", "--models-dir", store.root, check=0)
    assert store.resolve(parse_name("n:1")).digest == src_id
    other = OllamaStore(str(tmp_path / "other"))
    from ollama_oci import copy
    copy(store, parse_name("m:1"), other, parse_name("m:1"))
    assert other.resolve(parse_name("m:1")).digest == src_id
    assert [e.manifest_digest for e in other.list()] == [src_id]


def test_import_dry_run_says_what_would_move_and_moves_nothing(tmp_path, registry_factory):
    from ollama_oci import OllamaStore, Recipe, pack
    store = OllamaStore(str(tmp_path / "src"))
    res = pack(Recipe(files=[TINY]), "team/tiny:1", [store], link_mode="copy")
    run_cli("export", "team/tiny:1", "-o", tmp_path / "b.tar.zst", "--models-dir", store.root, check=0)
    cp = run_cli("import", tmp_path / "b.tar.zst", "--dry-run", "--json", "--models-dir", tmp_path / "dst", check=0)
    doc = json.loads(cp.stdout)
    assert doc["dry_run"] and doc["bytes_to_transfer"] == res.manifest.size
    assert {b["action"] for b in doc["models"][0]["blobs"]} == {"missing"}
    assert not (tmp_path / "dst").exists() or not any(p.is_file() for p in (tmp_path / "dst").rglob("*"))
    run_cli("import", tmp_path / "b.tar.zst", "--models-dir", tmp_path / "dst", check=0)
    doc = json.loads(run_cli("import", tmp_path / "b.tar.zst", "--dry-run", "--json", "--models-dir",
                             tmp_path / "dst", check=0).stdout)
    assert doc["bytes_to_transfer"] == 0
    reg = registry_factory("plain")
    doc = json.loads(run_cli("import", tmp_path / "b.tar.zst", "--to", reg.host, "--plain-http", "--dry-run",
                             "--json", check=0).stdout)
    assert doc["models"][0]["destination"] == f"{reg.host}/team/tiny:1" and doc["bytes_to_transfer"] > 0


def test_plain_tar_import_copies_ranges_and_refuses_a_truncated_archive(tmp_path, monkeypatch):
    """A `.tar` member is copied by the kernel straight out of the archive (copyhash), hashed as it is
    written; an archive cut short inside that member is refused and nothing becomes visible."""
    from gguf_factory import make_big_gguf
    import ollama_oci.copyhash as copyhash
    big = tmp_path / "big.gguf"
    make_big_gguf(str(big), 9 << 20)
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[str(big)]), "big:1", [store])
    tar = tmp_path / "big.tar"
    run_cli("export", "big:1", "-o", tar, "--models-dir", store.root, check=0)
    ranges = []
    real = copyhash.copy_pieces

    def spy(fd, pieces, **kw):
        pieces = list(pieces)
        ranges.extend(p for p in pieces if isinstance(p, copyhash.Range))
        return real(fd, pieces, **kw)
    monkeypatch.setattr(copyhash, "copy_pieces", spy)
    target = OllamaStore(str(tmp_path / "target"))
    from ollama_oci.bundle import import_bundle
    import_bundle(str(tar), target)
    model = res.manifest.layers_of("application/vnd.ollama.image.model")[0]
    assert [r.length for r in ranges] == [model.size]
    with open(target.find_blob(model.digest), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == model.digest.hex
    assert target.verify()[1] == []
    # cut inside the model blob: refused, nothing installed, no temp file left
    data = tar.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:data.find(b"GGUF") + (4 << 20)])
    cp = run_cli("import", cut, "--models-dir", tmp_path / "t2")
    assert cp.returncode == 5, cp.stderr
    assert "truncated" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    t2 = OllamaStore(str(tmp_path / "t2"))
    assert t2.list() == [] and not [n for n in os.listdir(tmp_path / "t2" / "blobs") if n != ".tmp"]


def test_volume_rebuild_sends_no_layer_and_platforms_make_an_index(tmp_path, registry_factory):
    """The volume layer is reproducible: rebuilding the same models finds it (through this machine's
    cache, or the image already at the reference) and sends none of it (bytes counted at a loopback
    proxy in front of the registry); --platform makes one manifest per platform around the one layer."""
    reg, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY], system="a"), "tiny:a", [store])

    def build(ref, cache, *extra):
        cp = run_cli("volume", "tiny:a", "--to", f"{front.addr}/{ref}", "--plain-http", "--models-dir", store.root,
                     "--json", *extra, env={"XDG_CACHE_HOME": str(tmp_path / cache)}, check=0)
        return json.loads(cp.stdout)
    first = build("ml/vol:1", "c1")
    assert first["layer_action"] == "uploaded" and front.upload_bytes >= first["layer_size"]
    for ref, cache in (("ml/vol:1", "c2"),      # a fresh machine: found through the image at the reference
                       ("ml/vol:2", "c1")):     # another tag: found through this machine's cache
        front.upload_bytes = 0
        again = build(ref, cache)
        assert again["layer_action"] == "exists" and again["layer_digest"] == first["layer_digest"], again
        assert again["diff_id"] == first["diff_id"] and front.upload_bytes < 4096, front.upload_bytes
    assert build("ml/vol:1", "c2")["manifest_digest"] == first["manifest_digest"]     # the same image
    front.upload_bytes = 0
    assert build("ml/vol:1", "c1", "--rebuild")["layer_action"] == "uploaded" and front.upload_bytes > 0
    pack(Recipe(files=[TINY], system="changed"), "tiny:a", [store])
    changed = build("ml/vol:1", "c1")
    assert changed["layer_action"] == "uploaded" and changed["layer_digest"] != first["layer_digest"]
    # two platforms: an index of two manifests sharing the layer, each config saying its platform
    doc = build("ml/vol:multi", "c1", "--platform", "linux/amd64,linux/arm64/v8")
    assert doc["layer_action"] == "exists" and doc["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    raw, mt = remote.get_manifest_raw(parse_reference(f"{reg.host}/ml/vol:multi"))
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                           {"architecture": "arm64", "os": "linux", "variant": "v8"}]
    from ollama_oci.spec import Descriptor
    for entry in index["manifests"]:
        mraw, _ = remote.get_manifest_raw(parse_reference(f"{reg.host}/ml/vol@{entry['digest']}"))
        m = json.loads(mraw)
        assert m["layers"][0]["digest"] == changed["layer_digest"]
        c = m["config"]
        with remote.repository("ml/vol").fetch(Descriptor(c["mediaType"], c["digest"], c["size"])) as f:
            cfg = json.loads(f.read())
        assert (cfg["os"], cfg["architecture"]) == (entry["platform"]["os"], entry["platform"]["architecture"])
    cp = run_cli("volume", "tiny:a", "--to", f"oci:{tmp_path / 'lay'}:vol:1", "--platform", "linux/amd64",
                 "--platform", "linux/arm64", "--models-dir", store.root)
    assert cp.returncode == 3 and "image index" in cp.stderr
    cp = run_cli("volume", "tiny:a", "--to", f"oci:{tmp_path / 'lay'}:vol:1", "--platform", "amd64",
                 "--models-dir", store.root)
    assert cp.returncode == 3 and "OS/ARCH" in cp.stderr


def test_a_compressed_export_reports_the_compression_still_running(tmp_path):
    """`export --level 19`: zstd's workers finish after the last byte is handed over, so that tail is
    reported as a `compress` phase (the bar no longer sits at 100% while they work)."""
    from ollama_oci.bundle import export_bundle
    from gguf_factory import make_big_gguf
    big = tmp_path / "big.gguf"
    make_big_gguf(str(big), 24 << 20)
    store = OllamaStore(str(tmp_path / "m"))
    pack(Recipe(files=[str(big)]), "big:1", [store])
    events = []
    export_bundle(store, [parse_name("big:1")], str(tmp_path / "x.tar.zst"), level=19, progress=events.append)
    phases = [e.phase for e in events]
    assert "transfer" in phases and phases[-1] == "compress"
    first = phases.index("compress")
    assert all(p == "compress" for p in phases[first:])       # after every blob went in
    last = events[-1]
    assert last.total > 0 and last.done == last.total and last.label == "zstd -19"
    run_cli("import", tmp_path / "x.tar.zst", "--models-dir", tmp_path / "back", check=0)
    assert OllamaStore(str(tmp_path / "back")).verify()[1] == []


@pytest.mark.parametrize("size", ["tiny", "2MiB"])
@pytest.mark.parametrize("damage", ["flipped", "short"])
def test_an_export_refuses_a_damaged_store_blob_and_leaves_no_bundle(tmp_path, damage, size):
    """Export verifies every blob it bundles: a store blob damaged in place, or cut short, is refused
    by name and no bundle appears. A small blob is hashed as it is written; one of 1 MiB and more
    goes to the compressor from a map while a background job hashes it (the console script's, started
    before the program loads, or the library's own), checked before the bundle gets its name."""
    from gguf_factory import make_big_gguf

    from ollama_oci.bundle import export_bundle
    from ollama_oci.errors import VerificationError
    store = OllamaStore(str(tmp_path / "models"))
    src = TINY
    if size == "2MiB":
        src = str(tmp_path / "big.gguf")
        make_big_gguf(src, 2 << 20)
    pack(Recipe(files=[src], system="a"), "a", [store])
    if size == "2MiB":
        os.unlink(src)
    gguf = next(d for d in store.get_manifest(parse_name("a"))[0].layers if d.kind == "model")
    path = os.path.join(store.root, "blobs", "sha256-" + gguf.digest.hex)
    data = bytearray(open(path, "rb").read())
    os.unlink(path)          # the store may have hard-linked the fixture: damage a copy of its own
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[-1000:]
    with open(path, "wb") as f:
        f.write(data)
    for out in (tmp_path / "a.tar", tmp_path / "a.tar.zst"):
        cp = run_cli("export", "a", "-o", out, "--models-dir", store.root, check=5)   # 5: verification failed
        assert gguf.digest.hex in cp.stderr, cp.stderr
        assert ("is damaged" if damage == "flipped" else "ended after") in cp.stderr, cp.stderr
        assert os.listdir(tmp_path) == ["models"]       # no bundle, no temp file left behind
        with pytest.raises(VerificationError, match="is damaged" if damage == "flipped" else "ended after"):
            export_bundle(store, [parse_name("a")], str(out))
        assert os.listdir(tmp_path) == ["models"]


def test_a_bundle_whose_last_step_fails_leaves_nothing(tmp_path):
    """A model announced and never copied: commit refuses, and neither the bundle nor its temp file
    stays behind (the writer cleans up after its own commit, not only after its caller's errors)."""
    from ollama_oci.errors import StoreError
    from ollama_oci.stores.bundle import BundleWriter
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[TINY]), "a", [store])
    data, mt = store.fetch_manifest(parse_name("a"))
    for out in ("x.tar", "x.tar.zst"):
        with pytest.raises(StoreError, match="announced but never copied"):
            with BundleWriter(str(tmp_path / out)) as w:
                w.announce([(parse_name("a"), data, mt)])
        assert sorted(os.listdir(tmp_path)) == ["models"]


def test_an_export_shows_a_hash_still_running_when_the_bundle_is_done(tmp_path, monkeypatch):
    """The hash beside the compressor runs at the lowest priority; if it is still running when every
    blob is in (a compressor at a high level can leave it little), the wait is shown as ``hash``
    progress, then the bundle is checked and named as usual."""
    import threading
    import time

    from gguf_factory import make_big_gguf

    from ollama_oci import prehash
    from ollama_oci.bundle import export_bundle
    make_big_gguf(str(tmp_path / "big.gguf"), 2 << 20)
    store = OllamaStore(str(tmp_path / "models"))
    pack(Recipe(files=[str(tmp_path / "big.gguf")]), "big:1", [store])
    def late(path, st):     # the real job, started only once the blob has gone into the bundle
        job = prehash.HashJob(prehash._key(st))

        def run():
            time.sleep(0.3)
            job.run(path, True, True)
        threading.Thread(target=run, daemon=True).start()
        return job
    monkeypatch.setattr(prehash, "beside", late)
    events = []
    export_bundle(store, [parse_name("big:1")], str(tmp_path / "x.tar.zst"), progress=events.append)
    hashed = [e for e in events if e.phase == "hash"]
    assert hashed and hashed[-1].done == hashed[-1].total == os.path.getsize(store.find_blob(
        next(d for d in store.get_manifest(parse_name("big:1"))[0].layers if d.kind == "model").digest))
    run_cli("import", tmp_path / "x.tar.zst", "--models-dir", tmp_path / "back", check=0)
    assert OllamaStore(str(tmp_path / "back")).verify()[1] == []

"""The ollama model store and the OCI layout: writes, listing, removal, verification."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import TINY
from ollama_oci import (InvalidDigest, InvalidName, NotFound, OCILayout, OllamaStore, Recipe, StoreError,
                        VerificationError, pack, parse_digest, parse_name)
from ollama_oci.spec import MT


def _tree(root) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


@pytest.fixture
def store(tmp_path):
    return OllamaStore(str(tmp_path / "models"))


def test_pack_lays_out_the_store_like_ollama(tmp_path, store):
    res = pack(Recipe(files=[TINY], system="Be brief.", params={"temperature": 0.5}), "tiny:q8", [store])
    tree = _tree(store.root)
    assert "manifests/registry.ollama.ai/library/tiny/q8" in tree
    blobs = [t for t in tree if t.startswith("blobs/")]
    assert sorted(blobs) == sorted(f"blobs/{d.digest.filename}" for d in res.manifest.blobs)
    for d in res.manifest.blobs:  # every blob is what the manifest says, readable by an ollama server
        p = store.find_blob(d.digest)
        assert os.path.getsize(p) == d.size
        if d.media_type != MT.MODEL:  # the model blob is a hard link and keeps the source's mode
            assert os.stat(p).st_mode & 0o777 == 0o644 & ~_umask()
    assert [l.kind for l in res.manifest.layers] == ["model", "template", "system", "params"]
    [entry] = store.list()
    assert entry.name == parse_name("tiny:q8") and entry.size == res.manifest.size

def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_auto_link_mode_never_copies_on_one_filesystem(tmp_path):
    from ollama_oci.fsutil import ingest_file
    src = tmp_path / "m.gguf"
    shutil.copy(TINY, src)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    digest, size, method = ingest_file(str(src), str(blobs), lambda d: str(blobs / d.filename))
    assert method in ("reflink", "hardlink")
    blob = blobs / digest.filename
    assert os.path.samefile(blob, src) == (method == "hardlink")
    assert blob.read_bytes() == src.read_bytes() and size == src.stat().st_size
    assert [p.name for p in blobs.iterdir()] == [digest.filename]  # no temp file left behind


def test_link_modes(tmp_path):
    src = tmp_path / "m.gguf"
    shutil.copy(TINY, src)
    for mode in ("hardlink", "copy"):
        st = OllamaStore(str(tmp_path / mode))
        res = pack(Recipe(files=[str(src)]), "m", [st], link_mode=mode)
        blob = st.find_blob(res.manifest.layers[0].digest)
        assert os.path.samefile(blob, src) == (mode == "hardlink")
        assert open(blob, "rb").read() == src.read_bytes()


def test_remove_keeps_shared_blobs(store):
    a = pack(Recipe(files=[TINY], system="A"), "a", [store])
    b = pack(Recipe(files=[TINY], system="B"), "b", [store])
    model_digest = a.manifest.layers[0].digest
    assert b.manifest.layers[0].digest == model_digest
    deleted = store.remove(parse_name("a"))
    assert model_digest not in deleted  # still used by b
    assert a.manifest.config.digest == b.manifest.config.digest  # same facts, same config blob
    assert deleted == [a.manifest.layers_of(MT.SYSTEM)[0].digest]  # only a's system prompt was a's alone
    assert store.has_blob(model_digest)
    assert [e.name.display for e in store.list()] == ["b:latest"]
    assert not os.path.exists(os.path.join(store.manifests_dir, "registry.ollama.ai", "library", "a"))
    deleted = store.remove(parse_name("b"))
    assert model_digest in deleted
    assert _tree(store.root) == []
    with pytest.raises(NotFound):
        store.remove(parse_name("b"))


def test_remove_keeps_blobs_when_another_manifest_is_unreadable(store):
    pack(Recipe(files=[TINY]), "a", [store])
    pack(Recipe(files=[TINY]), "b", [store])
    with open(os.path.join(store.manifests_dir, "registry.ollama.ai/library/b/latest"), "w") as f:
        f.write("{not json")
    warnings = []
    assert store.remove(parse_name("a"), warn=warnings.append) == []
    assert warnings and "b:latest" in warnings[0]


def test_verify_finds_corruption_missing_and_size(store):
    res = pack(Recipe(files=[TINY], system="S"), "m", [store], link_mode="copy")
    entries, problems = store.verify()
    assert [e.name.display for e in entries] == ["m:latest"] and problems == []
    model = store.find_blob(res.manifest.layers[0].digest)
    with open(model, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    _, problems = store.verify()
    assert [(p.kind, p.digest) for p in problems] == [("digest", str(res.manifest.layers[0].digest))]
    _, quick = store.verify(rehash=False)
    assert quick == []  # sizes still match; only a re-hash sees it
    os.unlink(store.find_blob(res.manifest.layers[1].digest))
    with open(model, "ab") as f:
        f.write(b"x")
    _, problems = store.verify()
    assert sorted(p.kind for p in problems) == ["missing", "size"]


def test_old_colon_blob_names_are_read(store):
    res = pack(Recipe(files=[TINY]), "m", [store], link_mode="copy")
    for d in res.manifest.blobs:
        p = store.blob_path(d.digest)
        os.rename(p, os.path.join(store.blobs_dir, "sha256:" + d.digest.hex))
    entries, problems = store.verify()
    assert problems == [] and len(entries) == 1
    assert store.get_config(res.manifest).model_family == "llama"


def test_names_match_existing_spelling_case_insensitively(store):
    pack(Recipe(files=[TINY]), "Team/Tiny:Q8", [store])
    pack(Recipe(files=[TINY], system="x"), "team/tiny:q8", [store])
    assert [e.name.display for e in store.list()] == ["Team/Tiny:Q8"]


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "x\x00y", "modèle", "a" * 81, "/abs", "a/b/c/d"])
def test_bad_names_touch_nothing(tmp_path, bad):
    root = tmp_path / "models"
    with pytest.raises(InvalidName):
        pack(Recipe(files=[TINY]), bad, [OllamaStore(str(root))])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "A" * 64, "sha512:" + "a" * 128, "sha256:" + "a" * 63 + "/",
                                 "sha256-../../etc/passwd", "sha256:" + "a" * 65, "", "sha256:" + "g" * 64])
def test_bad_digests_are_rejected_before_paths(tmp_path, bad):
    store = OllamaStore(str(tmp_path / "models"))
    with pytest.raises(InvalidDigest):
        store.blob_path(bad)
    with pytest.raises(InvalidDigest):
        parse_digest(bad)
    assert not (tmp_path / "models").exists()


def test_manifest_refused_when_a_blob_is_missing(store, tmp_path):
    from ollama_oci import Descriptor, ModelFacts, build_config, build_manifest
    layer = Descriptor(MT.MODEL, "sha256:" + "1" * 64, 10)
    manifest, cblob = build_manifest([layer], build_config([ModelFacts("x", "1", "F16")]))
    store.put_blob_bytes(cblob.data)
    with pytest.raises(StoreError, match="missing"):
        store.put_manifest(parse_name("x"), manifest)
    assert store.list() == []
    with pytest.raises(VerificationError):
        store.put_blob_bytes(b"abc", parse_digest("sha256:" + "2" * 64))


def test_not_a_gguf_touches_nothing(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    from ollama_oci import GGUFError
    with pytest.raises(GGUFError):
        pack(Recipe(files=[str(bad)]), "m", [OllamaStore(str(tmp_path / "models"))])
    assert not (tmp_path / "models").exists()


def test_oci_layout(tmp_path):
    layout = OCILayout(str(tmp_path / "oci"))
    res = pack(Recipe(files=[TINY], licenses=["MIT"]), "team/tiny:1.0", [layout])
    root = tmp_path / "oci"
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads((root / "index.json").read_text())
    [entry] = idx["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "team/tiny:1.0"
    raw = (root / "blobs/sha256" / entry["digest"][7:]).read_bytes()
    assert raw == res.manifest.to_bytes(newline=False)  # registry form: what a push sends
    assert entry["size"] == len(raw) and entry["mediaType"] == MT.MANIFEST
    pack(Recipe(files=[TINY]), "other", [layout])
    pack(Recipe(files=[TINY], licenses=["MIT"]), "team/tiny:1.0", [layout])  # same ref: replaced, not doubled
    assert sorted(e.name.display for e in layout.list()) == ["other:latest", "team/tiny:1.0"]
    assert layout.verify()[1] == []
    layout.remove(parse_name("team/tiny:1.0"))
    assert [e.name.display for e in layout.list()] == ["other:latest"]
    assert not (root / "blobs/sha256" / entry["digest"][7:]).exists()
    assert layout.has_blob(res.manifest.layers[0].digest)  # shared with "other"


def test_pack_into_both_reads_the_gguf_once(tmp_path, monkeypatch):
    import ollama_oci.fsutil as fsutil
    calls = []
    real = fsutil.hash_stream

    src = tmp_path / "m.gguf"
    shutil.copy(TINY, src)

    def counting(f, **kw):  # reads of the GGUF's bytes (the small config and text blobs aside)
        name = getattr(f, "name", "?")
        if isinstance(name, str) and os.path.getsize(name) == src.stat().st_size:
            calls.append(name)
        return real(f, **kw)
    monkeypatch.setattr(fsutil, "hash_stream", counting)
    real_copy = fsutil.copy_pieces

    def counting_copy(fd, pieces, **kw):  # a copy: the kernel writes, the copy is hashed as written
        pieces = list(pieces)
        if sum(p.length for p in pieces) == src.stat().st_size:
            calls.append(pieces[0].name)
        return real_copy(fd, pieces, **kw)
    monkeypatch.setattr(fsutil, "copy_pieces", counting_copy)
    pack(Recipe(files=[str(src)]), "m", [OllamaStore(str(tmp_path / "a")), OCILayout(str(tmp_path / "b"))],
         link_mode="hardlink")
    assert len(calls) == 1
    calls.clear()
    pack(Recipe(files=[str(src)]), "m", [OllamaStore(str(tmp_path / "c")), OCILayout(str(tmp_path / "d"))],
         link_mode="copy")
    assert len(calls) == 2  # a copy is always hashed as it is written: the source once, the copy verified


def test_from_an_existing_model_like_ollama(tmp_path):
    """FROM <model>: inherited layers with from=<base>, replacements, appended licenses, merged params."""
    import json as _json
    from ollama_oci import NotFound, recipe_from_modelfile
    store = OllamaStore(str(tmp_path / "m"))
    base = pack(Recipe(files=[TINY], template="{{ .Prompt }}", system="old", params={"temperature": 0.5, "top_k": 3.0},
                       licenses=["MIT"], messages=[("user", "hi")]), "team/base:1", [store])
    r = recipe_from_modelfile("FROM team/base:1\nSYSTEM new\nPARAMETER top_k 7\nLICENSE Apache-2.0\n", ".")
    child = pack(r, "child:1", [store, OCILayout(str(tmp_path / "oci"))])
    kinds = [(l.kind, l.from_) for l in child.manifest.layers]
    # ollama's order: base layers in place (system replaced and moved), licenses appended, params last
    assert kinds == [("model", "team/base:1"), ("template", "team/base:1"), ("license", "team/base:1"),
                     ("messages", "team/base:1"), ("system", None), ("license", None), ("params", None)]
    params = _json.loads(store.read_blob(child.manifest.layers_of(MT.PARAMS)[0].digest, 1000))
    assert params == {"temperature": 0.5, "top_k": 7}
    assert child.manifest.layers[0].digest == base.manifest.layers[0].digest  # the GGUF is shared, not copied
    assert child.config.model_family == "llama" and child.config.file_type == "Q8_0"
    raw, _ = store.read_manifest_bytes(parse_name("child:1"))
    assert b'"from":"team/base:1"' in raw
    assert OCILayout(str(tmp_path / "oci")).verify()[1] == []  # the base's blobs were carried into the layout
    with pytest.raises(NotFound, match="pull it first"):
        pack(recipe_from_modelfile("FROM nothere:1\n", "."), "x", [store])
    with pytest.raises(Exception, match="cannot be combined"):
        pack(Recipe(files=[TINY], base="team/base:1"), "x", [store])


def test_prune_removes_only_old_unreferenced_blobs_and_leftovers(tmp_path):
    import time as _time
    store = OllamaStore(str(tmp_path / "m"))
    keep = pack(Recipe(files=[TINY], system="keep"), "keep", [store])
    gone = pack(Recipe(files=[TINY], system="gone"), "gone", [store])
    os.unlink(store.manifest_path(parse_name("gone")))  # as after an interrupted rm: its system blob is orphaned
    orphan = store.find_blob(gone.manifest.layers_of(MT.SYSTEM)[0].digest)
    leftovers = [os.path.join(store.blobs_dir, n) for n in
                 (".tmp-ollama-oci-1-abc", ".partial-" + "e" * 64, ".partial-" + "e" * 64 + ".json")]
    for p in leftovers:
        open(p, "wb").write(b"x")
    old = _time.time() - 7200
    for p in leftovers + [orphan]:
        os.utime(p, (old, old))
    fresh = os.path.join(store.blobs_dir, ".tmp-ollama-oci-2-new")  # a pack still running
    open(fresh, "wb").write(b"y")
    removed, freed = store.prune(dry_run=True)
    assert sorted(removed) == sorted(leftovers + [orphan]) and os.path.exists(orphan)
    removed, freed = store.prune()
    assert sorted(removed) == sorted(leftovers + [orphan])
    assert freed == 3 + len(b"gone")  # three one-byte leftovers and the orphaned system prompt
    assert os.path.exists(fresh) and store.verify()[1] == []  # the kept model is intact
    assert [e.name.display for e in store.list()] == ["keep:latest"]
    assert store.has_blob(keep.manifest.layers[0].digest)
    # an unreadable manifest stops everything
    with open(store.manifest_path(parse_name("keep")), "w") as f:
        f.write("{broken")
    with pytest.raises(StoreError, match="cannot be read"):
        store.prune(grace=0)


def test_prune_oci_layout(tmp_path):
    layout = OCILayout(str(tmp_path / "oci"))
    pack(Recipe(files=[TINY]), "a", [layout])
    b = pack(Recipe(files=[TINY], system="b"), "b", [layout])
    # drop b from the index by hand: its manifest blob and system blob become garbage
    import json as _json
    idx = _json.loads((tmp_path / "oci" / "index.json").read_text())
    idx["manifests"] = [e for e in idx["manifests"] if e["annotations"]["org.opencontainers.image.ref.name"] != "b:latest"]
    (tmp_path / "oci" / "index.json").write_text(_json.dumps(idx))
    removed, _ = layout.prune(grace=0)
    names = {os.path.basename(p) for p in removed}
    assert b.manifest.layers_of(MT.SYSTEM)[0].digest.hex in names
    assert layout.verify()[1] == [] and [e.name.display for e in layout.list()] == ["a:latest"]


def test_repacking_a_hard_linked_gguf_leaves_the_users_file_alone(tmp_path):
    """The store's blob shares the inode with the user's GGUF: re-packing it (the blob is already
    there) must not touch that file's mtime, mode or content."""
    src = tmp_path / "model.gguf"
    shutil.copy(TINY, src)
    os.chmod(src, 0o600)
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = os.stat(src)
    data = src.read_bytes()
    store = OllamaStore(str(tmp_path / "models"))
    for system in ("one", "two"):
        res = pack(Recipe(files=[str(src)], system=system), "m:1", [store], link_mode="hardlink")
        assert os.path.samefile(store.find_blob(res.manifest.layers[0].digest), src)
    after = os.stat(src)
    assert (after.st_mtime_ns, after.st_mode, after.st_nlink) == (before.st_mtime_ns, before.st_mode, 2)
    assert src.read_bytes() == data


def test_a_registry_store_refuses_a_reference_to_another_registry():
    """copy() with a store for one registry and a reference naming another used to push to the
    store's registry while reporting the other one."""
    from ollama_oci import InvalidInput, RegistryStore, parse_reference
    from ollama_oci.stores.contract import bind
    store = RegistryStore("registry-a.example")
    with pytest.raises(InvalidInput, match="registry-b.example"):
        bind(store, parse_reference("registry-b.example/team/m:1"))
    repo, ref = bind(store, parse_reference("registry-a.example/team/m:1"))
    assert repo.describe() == "registry-a.example/team/m"


def test_progress_knows_the_whole_plan_before_the_first_byte(tmp_path):
    """Every blob's size is announced before any moves (an ETA from a total that grows as blobs start
    is too short), and a blob that needs no move leaves the totals."""
    from ollama_oci.engine import CopyOptions, move_blobs
    from ollama_oci.stores.memory import MemoryStore
    src = MemoryStore()
    descs = [src.add_blob(bytes([i]) * (1000 * (i + 1))) for i in range(3)]
    dst = OllamaStore(str(tmp_path / "m"))
    dst.put_blob_bytes(bytes([0]) * 1000)             # the first is already there
    events = []
    move_blobs(src, dst, descs, CopyOptions(progress=events.append, concurrency=1))
    assert [(e.done, e.total) for e in events[:3]] == [(0, 1000), (0, 2000), (0, 3000)]
    last = {}
    for e in events:
        last[e.digest] = (e.done, e.total)
    assert last[str(descs[0].digest)] == (0, 0)
    assert last[str(descs[1].digest)] == (2000, 2000) and last[str(descs[2].digest)] == (3000, 3000)

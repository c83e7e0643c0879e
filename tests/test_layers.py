"""The architecture as drawn in docs/design.md, checked: imports flow one way, and only the
stores know store classes.

Each module may import only modules listed before it in LAYERS (the standard library and third
parties aside). A new module gets a place in this list and in design.md's table.
"""

from __future__ import annotations

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ollama_oci")

#: lowest first; a module may import only modules before it
LAYERS = [
    # leaves
    "_version", "errors", "configfile", "cancel", "progress", "gojson", "prehash", "digest", "copyhash", "ggml_tables",
    # formats
    "gguf_header", "modelinfo", "names", "params", "go_printable", "modelfile", "spec", "fsutil", "gguf_split", "reference",
    # HTTP
    "transport.proxy", "transport.session", "transport.auth", "transport.http", "transport",
    # stores
    "stores.contract", "stores.upload_policy", "stores.partial", "stores.memory", "stores.bundle", "stores.base", "stores.ollama",
    "stores.oci_layout",
    "stores", "stores.registry",
    # the copy engine, then what is built on it
    "engine", "gotemplate", "template_choice", "gguf_report", "chat_tool_notation", "chat_tools", "chat_tool_fields", "chat_template", "build", "describe", "bridge", "twin", "endpoints", "bundle", "volume", "mirror",
    "places",
    # the registry gateway (aiohttp): its own package, on top of the stores and the copy engine
    "gateway.config", "gateway.auth", "gateway.metrics", "gateway.sources", "gateway.cache", "gateway.server",
    "gateway",
    # the command line: its modules import each other freely, and anything below
    "cli", "console",
]

STORE_CLASSES = {"LocalStore", "OllamaStore", "OCILayout", "RegistryStore", "Repository", "MemoryStore"}


def _modules() -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), PKG)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(root, f)
    out.pop("__init__", None)   # the package: lazy re-exports of everything (PEP 562)
    out.pop("__main__", None)
    return out


def _imports(mod: str, path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg_parts = mod.split(".")[:-1] if not path.endswith("__init__.py") else mod.split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[:len(pkg_parts) - (node.level - 1)] if node.level > 1 else list(pkg_parts)
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
                for t in names:
                    found.add(t)
                    for a in node.names:  # "from .stores import registry" imports a module
                        found.add(f"{t}.{a.name}" if t else a.name)
            elif node.module and node.module.startswith("ollama_oci"):
                found.add(node.module[len("ollama_oci."):] if node.module != "ollama_oci" else "")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ollama_oci."):
                    found.add(a.name[len("ollama_oci."):])
    mods = _modules()
    return {f for f in found if f in mods and f != mod}


def _layer(mod: str) -> str:
    return "cli" if mod == "cli" or mod.startswith("cli.") else mod


def test_every_module_has_a_layer():
    assert sorted({_layer(m) for m in _modules()} - set(LAYERS)) == []


@pytest.mark.parametrize("mod", sorted(_modules()))
def test_imports_flow_one_way(mod):
    rank = {m: i for i, m in enumerate(LAYERS)}
    upward = sorted(t for t in _imports(mod, _modules()[mod])
                    if _layer(t) != _layer(mod) or _layer(mod) != "cli"
                    if rank[_layer(t)] >= rank[_layer(mod)])
    assert upward == [], f"{mod} imports {upward}, which sit above it in docs/design.md's layers"


def test_only_stores_tell_stores_apart_by_class():
    offenders = []
    for mod, path in _modules().items():
        if mod.startswith("stores"):
            continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
                kinds = node.args[1]
                names = [e.id for e in (kinds.elts if isinstance(kinds, ast.Tuple) else [kinds])
                         if isinstance(e, ast.Name)]
                if STORE_CLASSES & set(names):
                    offenders.append(f"{mod}:{node.lineno}")
    assert offenders == [], "use the store contract or a capability, not the store's class"

"""ollama-oci: build Ollama models from GGUF files without ollama, and move them
through model stores, OCI layouts and registries.

The public API::

    from ollama_oci import read_gguf, model_info, Recipe, pack, OllamaStore, OCILayout

    with read_gguf("model.gguf") as g:
        info = model_info(g)                 # architecture, parameter count, file type ...
    recipe = Recipe(files=["model.gguf"], system="You are terse.", params={"temperature": 0.7})
    pack(recipe, "mymodel:q4", [OllamaStore()])   # $OLLAMA_MODELS or ~/.ollama/models

See docs/api.md.
"""

from ._version import __version__

# Names are imported on first use (PEP 562), so `import ollama_oci` and the CLI start fast;
# `from ollama_oci import pack` works as usual.
_EXPORTS = {
    "build": ["Blob", "ModelFacts", "PackResult", "Recipe", "build_config", "build_manifest", "messages_layer",
              "pack", "params_layer", "recipe_from_modelfile", "text_layer"],
    "engine": ["copy", "CopyReport"],
    "digest": ["Digest", "digest_bytes", "hash_file", "parse_digest"],
    "errors": ["AuthError", "GGUFError", "InvalidDigest", "InvalidInput", "InvalidName", "InvalidParameter",
               "ModelfileError", "NotFound", "OllamaOCIError", "RegistryError", "StoreError", "Unsupported",
               "VerificationError"],
    "gguf_header": ["GGUFArray", "GGUFFile", "Limits", "TensorInfo", "parse_gguf", "read_gguf"],
    "modelfile": ["Modelfile", "parse_modelfile"],
    "modelinfo": ["ModelInfo", "human_number", "model_info"],
    "names": ["ModelName", "parse_name"],
    "params": ["format_params"],
    "reference": ["Reference", "parse_reference"],
    "spec": ["MT", "Config", "Descriptor", "Manifest", "parse_manifest"],
    "stores": ["OCILayout", "OllamaStore", "default_models_dir"],
    "stores.registry": ["RegistryStore"],
    "transport": ["Credentials", "TransportOptions"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'ollama_oci' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

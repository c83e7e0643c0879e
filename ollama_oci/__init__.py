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

from .build import (Blob, ModelFacts, PackResult, Recipe, build_config, build_manifest, messages_layer,
                    pack, params_layer, recipe_from_modelfile, text_layer)
from .digest import Digest, digest_bytes, hash_file, parse_digest
from .errors import (GGUFError, InvalidDigest, InvalidInput, InvalidName, InvalidParameter, ModelfileError,
                     NotFound, OllamaOCIError, StoreError, Unsupported, VerificationError)
from .gguf_header import GGUFArray, GGUFFile, Limits, TensorInfo, parse_gguf, read_gguf
from .modelfile import Modelfile, parse_modelfile
from .modelinfo import ModelInfo, human_number, model_info
from .names import ModelName, parse_name
from .params import format_params
from .spec import MT, Config, Descriptor, Manifest, parse_manifest
from .stores import OCILayout, OllamaStore, default_models_dir

from ._version import __version__

__all__ = [
    "Blob", "ModelFacts", "PackResult", "Recipe", "build_config", "build_manifest", "messages_layer", "pack",
    "params_layer", "recipe_from_modelfile", "text_layer",
    "Digest", "digest_bytes", "hash_file", "parse_digest",
    "GGUFError", "InvalidDigest", "InvalidInput", "InvalidName", "InvalidParameter", "ModelfileError",
    "NotFound", "OllamaOCIError", "StoreError", "Unsupported", "VerificationError",
    "GGUFArray", "GGUFFile", "Limits", "TensorInfo", "parse_gguf", "read_gguf",
    "Modelfile", "parse_modelfile", "ModelInfo", "human_number", "model_info",
    "ModelName", "parse_name", "format_params",
    "MT", "Config", "Descriptor", "Manifest", "parse_manifest",
    "OCILayout", "OllamaStore", "default_models_dir",
]

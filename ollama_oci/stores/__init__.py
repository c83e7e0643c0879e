"""Places that hold ollama artifacts: the ollama model store and OCI image layouts."""

from .base import LocalStore, ModelEntry, Problem
from .ollama import OllamaStore, default_models_dir
from .oci_layout import OCILayout

__all__ = ["LocalStore", "ModelEntry", "Problem", "OllamaStore", "OCILayout", "default_models_dir"]

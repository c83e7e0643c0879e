"""What ``show`` tells about a model in a store, and a Modelfile that rebuilds it.

    from ollama_oci.describe import describe_model, modelfile_text
    d = describe_model(OllamaStore(), parse_name("gemma3:270m"))
    print(d.details["parameters"], d.template_source)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from .digest import Digest, digest_bytes
from .errors import InvalidInput
from .names import ModelName
from .spec import MT, Config, Manifest

__all__ = ["ModelDescription", "describe_model", "modelfile_text", "read_texts"]

_TEXT_LIMIT = 16 << 20


@dataclass
class ModelDescription:
    name: ModelName
    store: str
    manifest: Manifest
    manifest_digest: Digest          # the model's ID (sha256 of the stored manifest)
    config: Config
    texts: dict = field(default_factory=dict)     # template, system, params, messages, licenses
    details: dict = field(default_factory=dict)   # architecture, parameters, ... (from the GGUF header)
    #: where the template came from: "given", "derived" (from the GGUF's chat template), or None
    template_source: Optional[str] = None
    #: how each Ollama version range renders the model (:func:`~ollama_oci.template_choice.template_selection`)
    template_selection: list = field(default_factory=list)

    def to_json(self) -> dict:
        t = self.texts
        return {
            "name": self.name.display, "full_name": str(self.name), "store": self.store,
            "template_source": self.template_source, "manifest_digest": str(self.manifest_digest),
            "size": self.manifest.size, "config": self.config.to_go(), "details": self.details,
            "layers": [{"kind": l.kind, "mediaType": l.media_type, "digest": str(l.digest), "size": l.size,
                        **({"from": l.from_} if l.from_ else {})} for l in self.manifest.layers],
            "template": t.get("template"), "system": t.get("system"), "parameters": t.get("params"),
            "messages": t.get("messages"), "licenses": t.get("licenses", []),
            "template_selection": self.template_selection,
        }


def read_texts(store: Any, manifest: Manifest) -> dict:
    """The text layers of a model: template, system, licenses, params, messages."""
    out: dict[str, Any] = {"licenses": []}
    for l in manifest.layers:
        if l.media_type in (MT.TEMPLATE, MT.PROMPT):
            out["template"] = store.read_blob(l.digest, _TEXT_LIMIT).decode("utf-8", "replace")
        elif l.media_type == MT.SYSTEM:
            out["system"] = store.read_blob(l.digest, _TEXT_LIMIT).decode("utf-8", "replace")
        elif l.media_type == MT.LICENSE:
            out["licenses"].append(store.read_blob(l.digest, _TEXT_LIMIT).decode("utf-8", "replace"))
        elif l.media_type in (MT.PARAMS, MT.MESSAGES):
            try:
                value = json.loads(store.read_blob(l.digest, _TEXT_LIMIT))
            except (ValueError, RecursionError):
                raise InvalidInput(f"the {l.kind} layer {l.digest} is not JSON") from None
            out["params" if l.media_type == MT.PARAMS else "messages"] = value
    return out


def describe_model(store: Any, name: ModelName, *, template_source: bool = True) -> ModelDescription:
    """Everything ``show`` prints about a model of a local store.

    ``template_source``: tell whether the template was derived from the GGUF's chat template.
    That is known by deriving it again (in the sandbox) and comparing; a GGUF without a chat
    template is "given" at once, without the sandbox.
    """
    from .gguf_header import read_gguf
    from .modelinfo import model_info
    manifest, raw = store.get_manifest(name)
    config = store.get_config(manifest)
    texts = read_texts(store, manifest)
    details: dict[str, Any] = {}
    model_layer = next((l for l in manifest.layers if l.media_type == MT.MODEL), None)
    path = store.find_blob(model_layer.digest) if model_layer is not None else None
    chat_template = None
    if path is not None:
        with read_gguf(path) as g:
            info = model_info(g)
        chat_template = info.chat_template
        details = {"architecture": info.architecture, "parameters": info.model_type,
                   "parameter_count": info.parameter_count, "context_length": info.context_length,
                   "embedding_length": info.embedding_length, "quantization": info.file_type}
    source = None
    if texts.get("template") is not None:
        source = "given"
        if template_source and chat_template and path is not None:
            from .build import derive_from_gguf
            try:
                d = derive_from_gguf(path)
                if d is not None and d.template == texts["template"]:
                    source = "derived"
            except InvalidInput:
                pass
    ident = getattr(store, "manifest_id", digest_bytes)(raw)   # the ID `list` shows
    from .template_choice import template_selection
    selection = template_selection(go_template=texts.get("template"), chat_template=chat_template,
                                   renderer=config.renderer, parser=config.parser, model_family=config.model_family)
    return ModelDescription(name, store.describe(), manifest, ident, config, texts, details, source, selection)


def modelfile_text(store: Any, name: ModelName) -> str:
    """A Modelfile that rebuilds the model (as ``ollama show --modelfile`` writes it)."""
    from .modelfile import quote_value
    from .params import param_to_text
    manifest, _ = store.get_manifest(name)
    texts = read_texts(store, manifest)
    lines = ['# Modelfile generated by "ollama-oci show"',
             "# To build a new Modelfile based on this, replace FROM with:",
             f"# FROM {name.display}", ""]
    for l in manifest.layers:
        if l.media_type == MT.MODEL:
            lines.append(f"FROM {store.find_blob(l.digest) or l.digest}")
    if "template" in texts:
        lines.append(f'TEMPLATE """{texts["template"]}"""')
    if "system" in texts:
        lines.append(f'SYSTEM """{texts["system"]}"""')
    for l in manifest.layers:
        if l.media_type == MT.ADAPTER:
            lines.append(f"ADAPTER {store.find_blob(l.digest) or l.digest}")
    params = texts.get("params")
    for k, v in sorted(params.items() if isinstance(params, dict) else []):
        for item in (v if isinstance(v, list) else [v]):
            lines.append(f"PARAMETER {k} {quote_value(param_to_text(item))}")
    for lic in texts.get("licenses", []):
        lines.append(f'LICENSE """{lic}"""')
    messages = texts.get("messages")
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        lines.append(f"MESSAGE {m.get('role')} {quote_value(str(m.get('content', '')))}")
    return "\n".join(lines) + "\n"


OLLAMA_FORMAT, MODELPACK, DOCKER_MODEL = "Ollama model", "CNCF ModelPack", "Docker model artifact"
#: what runs each model artifact format (../shared/docs/model-formats.md)
_RUNTIMES = {
    OLLAMA_FORMAT: ["ollama", "ollama-oci"],
    MODELPACK: ["modctl", "KitOps", "Harbor", "KServe", "Docker Model Runner (ai/*)"],
    DOCKER_MODEL: ["Docker Model Runner"],
}


def artifact_format(manifest: dict) -> tuple[str, list[str]]:
    """The model format of a manifest (decoded JSON) and the runtimes that can use it, from the config
    media type, ``artifactType`` and the layer media types."""
    if not isinstance(manifest, dict):
        return "not a manifest", []
    cfg = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    types = [str(layer.get("mediaType", "")) for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
    art = str(manifest.get("artifactType") or "")
    cmt = str(cfg.get("mediaType") or "")
    if any(t.startswith("application/vnd.ollama.image.") for t in types):
        name = OLLAMA_FORMAT
    elif "cncf.model" in cmt or "cncf.model" in art or any(t.startswith("application/vnd.cncf.model.") for t in types):
        name = MODELPACK
    elif "docker.ai" in cmt or "docker.ai" in art or any(t.startswith("application/vnd.docker.ai.") for t in types):
        name = DOCKER_MODEL
    else:
        return f"an OCI artifact ({cmt or 'no config'})", []
    return name, _RUNTIMES[name]

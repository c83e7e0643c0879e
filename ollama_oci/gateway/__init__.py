"""``ollama-oci serve``: a registry gateway that lets stock ``ollama pull`` fetch from any private
registry, OCI layout, Ollama models directory or bundle file (docs/gateway.md).

    from ollama_oci.gateway import GatewayConfig, parse_source, serve
    serve(GatewayConfig(sources=[parse_source("registry.internal/ml")], host="0.0.0.0", port=5000))

aiohttp is needed (``pip install 'ollama-oci[serve]'``); the rest of the library does not import it.
"""

from .config import GatewayConfig, SourceSpec, hash_password, load_config, parse_source

__all__ = ["GatewayConfig", "SourceSpec", "load_config", "parse_source", "hash_password", "serve", "Gateway"]


def __getattr__(name):
    if name in ("serve", "Gateway"):
        from . import server
        return getattr(server, name)
    raise AttributeError(name)

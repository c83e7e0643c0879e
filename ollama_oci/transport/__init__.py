"""HTTP transport to registries: TLS, proxies, retries, redirects and auth."""

from .auth import Credentials, OllamaKey, find_credentials, parse_challenges, remove_login, save_login
from .http import RegistryClient, TransportOptions, login, redact

__all__ = ["Credentials", "OllamaKey", "find_credentials", "parse_challenges", "remove_login", "save_login",
           "RegistryClient", "TransportOptions", "login", "redact"]

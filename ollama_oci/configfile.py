"""Configuration files the project reads (mirror plans, the gateway's config, registries.toml):
TOML, bounded, with errors that name the file; and sizes written as people write them."""

from __future__ import annotations

import os

from .errors import InvalidInput, NotFound

# re and typing are not imported at load: cache_dir is on the path of `ollama-oci inspect`
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["read_toml", "parse_toml", "parse_size", "MAX_CONFIG_BYTES"]

MAX_CONFIG_BYTES = 1 << 20

_SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$"


def parse_toml(raw: bytes, where: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{where}: not valid TOML: {e}") from None


def read_toml(path: str, what: str = "file") -> dict:
    """The TOML document in ``path`` (at most 1 MiB); NotFound naming ``what`` if there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such {what}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a {what}")
    return parse_toml(raw, path)


def parse_size(v: Any, what: str = "size") -> int:
    """``"200GB"`` (decimal), ``"1.5GiB"`` (binary), ``"500M"`` or a number of bytes."""
    if isinstance(v, bool):
        raise InvalidInput(f"{what}: expected a size like \"200GB\", got {v!r}")
    if isinstance(v, int):
        if v < 0:
            raise InvalidInput(f"{what}: a size cannot be negative")
        return v
    import re
    m = re.match(_SIZE_PATTERN, str(v), re.I)
    if not m:
        raise InvalidInput(f"{what}: expected a size like \"200GB\" or \"500MiB\", got {v!r}")
    unit = (m.group(2) or "b").lower()
    base = 1024 if "i" in unit else 1000
    return int(float(m.group(1)) * base ** {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[0]])


def cache_dir(*parts: str) -> str:
    """Where ollama-oci keeps what it can rebuild: ``$XDG_CACHE_HOME/ollama-oci`` (else
    ``~/.cache/ollama-oci``), joined with ``parts``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ollama-oci", *parts)

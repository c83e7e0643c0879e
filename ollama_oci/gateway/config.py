"""The gateway's configuration: which sources serve which names, who may read and write, limits.

A TOML file (``ollama-oci serve --config gateway.toml``)::

    listen = "0.0.0.0:5000"
    data_dir = "/var/lib/ollama-oci-gateway"     # cache, spooled uploads, unpacked bundles

    [cache]
    max_size = "200GB"                  # pull-through blob cache; 0 turns it off

    [upstream]                          # how to reach registry sources (all optional)
    plain_http = false
    ca_file = "/etc/ssl/internal-ca.pem"

    [[source]]
    prefix = "team/"                    # names starting with team/ ...
    from = "oci:/srv/layout"            # ... come from (and are pushed into) this OCI layout
    writable = true

    [[source]]
    from = "registry.internal/ml"       # everything else: pull-through from this registry

    [auth]
    anonymous = "none"                  # "read" (default without keys/users), "none", or "write"
    authorized_keys = "/etc/ollama-oci/authorized_keys"
    secret_file = "/etc/ollama-oci/secret"   # shared by replicas: tokens and signed blob URLs

    [[auth.users]]                       # Basic, for docker/skopeo/oras clients
    name = "ci"
    password = "pbkdf2-sha256$600000$<salt>$<hash>"   # ollama-oci serve --hash-password
    read = ["*"]
    write = ["team/"]

The ``authorized_keys`` file holds one ``ssh-ed25519 AAAA... [comment]`` line per Ollama server
(its ``~/.ollama/id_ed25519.pub``), optionally preceded by options as in OpenSSH:
``read="library/,team/",write="team/" ssh-ed25519 AAAA... host-1``. Without options a key may read
every name and write none.

Sources are tried by their longest matching ``prefix`` (``""`` matches every name). The whole
repository path is looked up in the source; a registry source prepends its own path
(``registry.internal/ml`` + ``library/phi3`` = ``registry.internal/ml/library/phi3``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..configfile import parse_size, read_toml
from ..errors import InvalidInput, NotFound

__all__ = ["GatewayConfig", "SourceSpec", "Principal", "load_config", "hash_password", "check_password",
           "parse_size", "parse_listen", "parse_authorized_keys", "ed25519_from_blob"]

DEFAULT_PORT = 5000
PBKDF2_ROUNDS = 600_000


@dataclass
class SourceSpec:
    """One source: ``kind`` is registry, oci, ollama or bundle; ``location`` its path or registry."""

    kind: str
    location: str
    prefix: str = ""
    writable: bool = False
    path: str = ""            # a registry source's repository path prefix (``ml`` of registry.internal/ml)

    def describe(self) -> str:
        if self.kind == "registry":
            return self.location + (f"/{self.path}" if self.path else "")
        return f"{self.kind}:{self.location}"


@dataclass
class Principal:
    """Someone the gateway knows: a key or a user, and the name prefixes it may read and write."""

    name: str
    read: list = field(default_factory=lambda: ["*"])
    write: list = field(default_factory=list)
    password: str = ""        # users only: a pbkdf2-sha256 hash

    def may(self, action: str, repository: str) -> bool:
        prefixes = self.write if action == "push" else self.read
        return any(p in ("*", "") or repository.startswith(p) for p in prefixes)


@dataclass
class GatewayConfig:
    sources: list = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: str = ""
    cache_max_size: int = 0            # bytes; 0: no cache (every blob streams from its source)
    anonymous: str = "read"            # none / read / write
    keys: dict = field(default_factory=dict)      # ssh key blob (base64) -> Principal
    users: dict = field(default_factory=dict)     # user name -> Principal
    secret: bytes = b""
    token_ttl: int = 600               # seconds a bearer token lives
    url_ttl: int = 3600                # seconds a signed blob URL lives (ollama fetches parts with it)
    public_url: str = ""               # scheme://host[:port] clients use, behind a TLS terminator
    max_upload_size: int = 1 << 40     # one blob pushed through the gateway
    client_timeout: float = 120.0      # seconds a client may stall a read or write
    shutdown_timeout: float = 30.0     # seconds in-flight requests get on SIGTERM
    access_log: str = "-"              # "-": standard error; a path; "" for none
    tls_cert: str = ""
    tls_key: str = ""
    transport: Any = None              # TransportOptions for upstream registries (None: defaults)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.keys or self.users) or self.anonymous == "none"


# -- values ----------------------------------------------------------------------------------------

def parse_listen(v: str) -> tuple[str, int]:
    """``0.0.0.0:5000``, ``:5000``, ``[::]:5000`` or a port."""
    v = str(v).strip()
    if v.isdigit():
        return "127.0.0.1", int(v)
    m = re.match(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):(\d+)$", v)
    if not m:
        raise InvalidInput(f"listen address {v!r}: write HOST:PORT, e.g. 0.0.0.0:5000")
    host, port = m.group(1).strip("[]") or "0.0.0.0", int(m.group(2))
    if not 0 < port < 65536:
        raise InvalidInput(f"listen address {v!r}: port must be 1-65535")
    return host, port


def parse_source(text: str, *, prefix: str = "", writable: bool = False, base_dir: str = "") -> SourceSpec:
    """``registry.internal/ml``, ``oci:DIR``, ``ollama:DIR`` (``ollama:`` alone: $OLLAMA_MODELS), a
    bundle file (``*.tar``, ``*.tar.zst``)."""
    from ..stores.bundle import is_bundle_path
    t = text.strip()
    if not t:
        raise InvalidInput("a source is empty: write a registry (registry.internal/ml), oci:DIR, ollama:DIR or a bundle file")

    def local(p: str) -> str:
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) or not base_dir else os.path.join(base_dir, p)

    if t.startswith("oci:"):
        return SourceSpec("oci", local(t[4:]), prefix, writable)
    if t.startswith("ollama:") or t == "ollama":
        from ..stores.ollama import default_models_dir
        p = t[len("ollama:"):] if t.startswith("ollama:") else ""
        return SourceSpec("ollama", local(p) if p else default_models_dir(), prefix, writable)
    if is_bundle_path(t):
        if writable:
            raise InvalidInput(f"source {t}: a bundle file is read-only")
        return SourceSpec("bundle", local(t), prefix, False)
    if t.startswith(("/", ".", "~")):
        raise InvalidInput(f"source {t}: a directory needs oci: or ollama: in front; a bundle ends in .tar or .tar.zst")
    t = re.sub(r"^[a-z]+://", "", t).rstrip("/")
    host, _, path = t.partition("/")
    if not host or ("." not in host and ":" not in host and host != "localhost"):
        raise InvalidInput(f"source {text!r}: a registry source starts with its host (registry.internal/ml)")
    return SourceSpec("registry", host, prefix, writable, path)


# -- passwords and keys -----------------------------------------------------------------------------

def hash_password(password: str, *, rounds: int = PBKDF2_ROUNDS) -> str:
    salt = secrets.token_bytes(16)
    h = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    b = lambda x: base64.b64encode(x).decode().rstrip("=")  # noqa: E731
    return f"pbkdf2-sha256${rounds}${b(salt)}${b(h)}"


def check_password(password: str, stored: str) -> bool:
    try:
        algo, rounds, salt, want = stored.split("$")
        if algo != "pbkdf2-sha256" or not 1000 <= int(rounds) <= 10_000_000:
            return False
        pad = lambda s: base64.b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), pad(salt), int(rounds))
        return hmac.compare_digest(got, pad(want))
    except (ValueError, TypeError):
        return False


_KEY_LINE = re.compile(r'^(?:(?P<opts>(?:[a-z]+="[^"]*"\s*,?\s*)+)\s+)?ssh-ed25519\s+(?P<blob>[A-Za-z0-9+/=]+)(?:\s+(?P<comment>.*))?$')
_OPT = re.compile(r'([a-z]+)="([^"]*)"')


def parse_authorized_keys(text: str, where: str = "authorized_keys") -> dict:
    """``ssh-ed25519`` lines (with optional ``read="..."``/``write="..."`` options) -> {blob: Principal}."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _KEY_LINE.match(line)
        if not m:
            raise InvalidInput(f"{where}:{n}: expected 'ssh-ed25519 AAAA... [comment]' (ollama's id_ed25519.pub), "
                               f"optionally after read=\"...\",write=\"...\"")
        blob = m.group("blob")
        ed25519_from_blob(blob, f"{where}:{n}")   # refuse a malformed key now, not at the first pull
        opts = dict(_OPT.findall(m.group("opts") or ""))
        unknown = set(opts) - {"read", "write"}
        if unknown:
            raise InvalidInput(f"{where}:{n}: unknown key options {sorted(unknown)}; known: read, write")
        split = lambda s: [p.strip() for p in s.split(",") if p.strip()]  # noqa: E731
        out[blob] = Principal(name=(m.group("comment") or f"key:{blob[-12:]}").strip()[:64],
                              read=split(opts["read"]) if "read" in opts else ["*"],
                              write=split(opts.get("write", "")))
    return out


def _prefixes(v: Any, where: str) -> list:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise InvalidInput(f"{where}: expected a list of name prefixes like [\"library/\", \"team/\"]")
    return v


def ed25519_from_blob(blob_b64: str, where: str = "key"):
    """An Ed25519 public key from the base64 blob of an ``ssh-ed25519`` line."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: the key is not base64") from None
    parts = []
    i = 0
    while i < len(blob) and len(parts) < 3:
        if i + 4 > len(blob):
            break
        n = int.from_bytes(blob[i:i + 4], "big")
        parts.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    if len(parts) != 2 or i != len(blob) or parts[0] != b"ssh-ed25519" or len(parts[1]) != 32:
        raise InvalidInput(f"{where}: not an ssh-ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(parts[1])


# -- the file ---------------------------------------------------------------------------------------

_TOP = {"listen", "data_dir", "cache", "source", "auth", "public_url", "token_ttl", "url_ttl", "max_upload_size",
        "client_timeout", "shutdown_timeout", "access_log", "tls_cert", "tls_key", "upstream"}
_UPSTREAM = {"plain_http", "insecure", "ca_file", "cert_file", "key_file", "retries"}


def load_config(path: str) -> GatewayConfig:
    return config_from_dict(read_toml(path, "gateway config file"), path)


def config_from_dict(obj: dict, where: str = "config") -> GatewayConfig:
    base = os.path.dirname(os.path.abspath(where)) if where != "config" else os.getcwd()
    unknown = set(obj) - _TOP
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_TOP)}")
    cfg = GatewayConfig()
    if "listen" in obj:
        cfg.host, cfg.port = parse_listen(obj["listen"])
    for k in ("data_dir", "public_url", "access_log", "tls_cert", "tls_key"):
        if k in obj:
            if not isinstance(obj[k], str):
                raise InvalidInput(f"{where}: {k} must be a string")
            v = obj[k]
            if k in ("data_dir", "tls_cert", "tls_key") and v and not os.path.isabs(v):
                v = os.path.join(base, v)
            setattr(cfg, k, v)
    for k in ("token_ttl", "url_ttl"):
        if k in obj:
            if not isinstance(obj[k], int) or not 10 <= obj[k] <= 7 * 86400:
                raise InvalidInput(f"{where}: {k} must be seconds, from 10 to 604800")
            setattr(cfg, k, obj[k])
    for k in ("client_timeout", "shutdown_timeout"):
        if k in obj:
            if not isinstance(obj[k], (int, float)) or not 0 < obj[k] <= 3600:
                raise InvalidInput(f"{where}: {k} must be seconds, from 1 to 3600")
            setattr(cfg, k, float(obj[k]))
    if "max_upload_size" in obj:
        cfg.max_upload_size = parse_size(obj["max_upload_size"], f"{where}: max_upload_size")
    up = obj.get("upstream", {})
    if not isinstance(up, dict) or set(up) - _UPSTREAM:
        raise InvalidInput(f"{where}: [upstream] takes {sorted(_UPSTREAM)} (how to reach registry sources)")
    if up:
        from ..transport import TransportOptions
        kw = {}
        for k in ("plain_http", "insecure"):
            if k in up:
                if not isinstance(up[k], bool):
                    raise InvalidInput(f"{where}: upstream.{k} must be true or false")
                kw[k] = up[k]
        for k in ("ca_file", "cert_file", "key_file"):
            if k in up:
                v = up[k]
                if not isinstance(v, str):
                    raise InvalidInput(f"{where}: upstream.{k} must be a path")
                kw[k] = v if os.path.isabs(v) else os.path.join(base, v)
        if "retries" in up:
            if not isinstance(up["retries"], int) or not 0 <= up["retries"] <= 100:
                raise InvalidInput(f"{where}: upstream.retries must be an integer from 0 to 100")
            kw["max_retries"] = up["retries"]
        cfg.transport = TransportOptions(**kw)
    cache = obj.get("cache", {})
    if not isinstance(cache, dict) or set(cache) - {"max_size"}:
        raise InvalidInput(f"{where}: [cache] takes max_size = \"200GB\"")
    if "max_size" in cache:
        cfg.cache_max_size = parse_size(cache["max_size"], f"{where}: cache.max_size")
    sources = obj.get("source", [])
    if isinstance(sources, dict):
        sources = [sources]
    if not isinstance(sources, list) or not sources:
        raise InvalidInput(f"{where}: add at least one [[source]] with from = \"registry.internal/ml\" "
                           f"(or oci:DIR, ollama:DIR, a bundle file)")
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or not isinstance(s.get("from"), str):
            raise InvalidInput(f"{where}: source[{i}] needs from = \"...\"")
        extra = set(s) - {"from", "prefix", "writable"}
        if extra:
            raise InvalidInput(f"{where}: source[{i}] has unknown keys {sorted(extra)}; known: from, prefix, writable")
        prefix = s.get("prefix", "")
        if not isinstance(prefix, str) or not isinstance(s.get("writable", False), bool):
            raise InvalidInput(f"{where}: source[{i}]: prefix is a string, writable true or false")
        cfg.sources.append(parse_source(s["from"], prefix=prefix, writable=s.get("writable", False), base_dir=base))
    seen = set()
    for s in cfg.sources:
        if s.prefix in seen:
            raise InvalidInput(f"{where}: two sources have the prefix {s.prefix!r}; each prefix names one source")
        seen.add(s.prefix)
    auth = obj.get("auth", {})
    if not isinstance(auth, dict):
        raise InvalidInput(f"{where}: [auth] must be a table")
    extra = set(auth) - {"anonymous", "authorized_keys", "users", "secret_file"}
    if extra:
        raise InvalidInput(f"{where}: [auth] has unknown keys {sorted(extra)}")
    if "authorized_keys" in auth:
        p = auth["authorized_keys"]
        p = p if os.path.isabs(p) else os.path.join(base, p)
        try:
            with open(p, encoding="utf-8") as f:
                cfg.keys = parse_authorized_keys(f.read(1 << 20), p)
        except FileNotFoundError:
            raise NotFound(f"{p}: no such authorized_keys file (one ssh-ed25519 line per Ollama server)") from None
    for i, u in enumerate(auth.get("users", [])):
        if not isinstance(u, dict) or not isinstance(u.get("name"), str) or not isinstance(u.get("password"), str):
            raise InvalidInput(f"{where}: auth.users[{i}] needs name and password (ollama-oci serve --hash-password)")
        if not u["password"].startswith("pbkdf2-sha256$"):
            raise InvalidInput(f"{where}: auth.users[{i}].password must be a hash from ollama-oci serve --hash-password, "
                               f"never the password itself")
        cfg.users[u["name"]] = Principal(u["name"], _prefixes(u.get("read", ["*"]), f"auth.users[{i}].read"),
                                         _prefixes(u.get("write", []), f"auth.users[{i}].write"), u["password"])
    anon = auth.get("anonymous", "none" if (cfg.keys or cfg.users) else "read")
    if anon not in ("none", "read", "write"):
        raise InvalidInput(f"{where}: auth.anonymous must be \"none\", \"read\" or \"write\"")
    cfg.anonymous = anon
    if "secret_file" in auth:
        p = auth["secret_file"]
        p = p if os.path.isabs(p) else os.path.join(base, p)
        cfg.secret = read_secret(p)
    return cfg


def read_secret(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            s = f.read(4096).strip()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such secret file (32 random bytes: head -c 32 /dev/urandom | base64 > {path})") from None
    if len(s) < 16:
        raise InvalidInput(f"{path}: the secret is shorter than 16 bytes; write 32 random bytes")
    return s

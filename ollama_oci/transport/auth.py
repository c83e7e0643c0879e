"""Registry credentials and auth schemes.

* Where credentials come from, first match wins: explicit ones; the containers
  auth file (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``,
  then ``~/.config/containers/auth.json``); the Docker config (``$DOCKER_CONFIG/config.json``
  or ``~/.docker/config.json``) with its ``credHelpers``, ``credsStore`` and ``auths``.
  Helpers run as ``docker-credential-<name> get``.
* ``WWW-Authenticate`` challenges (Bearer with realm/service/scope, Basic).
* Ollama's Ed25519 key scheme for registry.ollama.ai (docs/ollama-format.md section 7.3).

Secrets never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

from ..errors import AuthError, InvalidInput, printable

log = logging.getLogger("ollama_oci")

__all__ = ["Credentials", "find_credentials", "parse_challenges", "Challenge", "OllamaKey", "save_login",
           "remove_login", "docker_config_path"]

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)   # an OAuth2 refresh token (docker login to some registries)
    source: str = ""

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"


# -- where credentials live ---------------------------------------------------------------

def docker_config_path() -> str:
    d = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(d, "config.json")


def _containers_auth_paths() -> list[str]:
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return [env]
    out = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        out.append(os.path.join(xdg, "containers", "auth.json"))
    out.append(os.path.join(os.path.expanduser("~"), ".config", "containers", "auth.json"))
    return out


#: an auth file larger than this is refused (they hold a few logins: kilobytes)
MAX_AUTH_FILE = 16 << 20


def _load_json(path: str, *, strict: bool = False) -> Optional[dict]:
    """An auth file as a JSON object; None if absent. A file that cannot be read whole or is not a
    JSON object is ignored with a warning when looking credentials up, and refused (``strict``)
    before rewriting it: a login must never replace a config it could not fully parse."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_AUTH_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if strict:
            raise AuthError(f"cannot read {path} ({e.strerror}); fix its permissions") from None
        return None
    problem = None
    obj = None
    if len(data) > MAX_AUTH_FILE:
        problem = f"larger than {MAX_AUTH_FILE >> 20} MiB"
    else:
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            problem = "not valid JSON"
        else:
            if not isinstance(obj, dict):
                problem = "not a JSON object"
    if problem is not None:
        if strict:
            raise AuthError(f"{path} is {problem}; it is left as it is: fix or move it, then log in again")
        log.warning("ignoring %s: %s", path, problem)
        return None
    return obj


def _helpers(cfg: dict) -> dict:
    h = cfg.get("credHelpers")
    return h if isinstance(h, dict) else {}


def _keys_for(registry: str, repository: str = "") -> list[str]:
    """Keys an auth file may use for this registry, most specific first."""
    keys = []
    if repository:
        parts = repository.split("/")
        for i in range(len(parts), 0, -1):
            keys.append(f"{registry}/{'/'.join(parts[:i])}")
    keys += [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"]
    if registry in _DOCKER_HUB_KEYS or registry.endswith("docker.io"):
        keys += list(_DOCKER_HUB_KEYS)
    return keys


def _from_auths(auths: dict, key: str, source: str) -> Optional[Credentials]:
    entry = auths.get(key)
    if not isinstance(entry, dict):
        return None
    tok = entry.get("identitytoken") or ""
    auth = entry.get("auth")
    user, pw = entry.get("username") or "", entry.get("password") or ""
    if isinstance(auth, str) and auth:
        try:
            user, _, pw = base64.b64decode(auth).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a malformed 'auth' entry for %s in %s", key, source)
            return None
    if not (user or pw or tok):
        return None
    return Credentials(user, pw, tok if isinstance(tok, str) else "", source)


def run_helper(helper: str, action: str, payload: str, timeout: float = 60) -> Optional[str]:
    import shutil  # only when a credential helper is configured
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        log.warning("credential helper docker-credential-%s is not on PATH", helper)
        return None
    import subprocess  # only when a credential helper runs
    try:
        cp = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("credential helper docker-credential-%s failed: %s", helper, type(e).__name__)
        return None
    if cp.returncode != 0:
        # stderr only, cleaned: what a helper prints on stdout may be the secret itself
        msg = cp.stderr.strip().splitlines()[:1]
        log.info("docker-credential-%s %s failed (exit %d)%s", helper, action, cp.returncode,
                 f": {printable(msg[0], 120)}" if msg else "")
        return None
    return cp.stdout


def _from_helper(helper: str, registry: str) -> Optional[Credentials]:
    for server in (registry, f"https://{registry}"):
        out = run_helper(helper, "get", server)
        if not out:
            continue
        try:
            obj = json.loads(out)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            log.warning("docker-credential-%s answered something other than a JSON object; ignored", helper)
            return None
        user, secret = obj.get("Username") or "", obj.get("Secret") or ""
        if not isinstance(user, str) or not isinstance(secret, str):
            return None
        if user == "<token>":
            return Credentials("", "", secret, f"docker-credential-{helper}")
        if user or secret:
            return Credentials(user, secret, "", f"docker-credential-{helper}")
    return None


def _lookup(cfg: dict, source: str, registry: str, keys: list[str]) -> Optional[Credentials]:
    """Credentials from one auth file: its ``credHelpers`` first, then ``auths``."""
    helpers = _helpers(cfg)
    for k in keys:
        if k in helpers:
            c = _from_helper(str(helpers[k]), registry)
            if c:
                return c
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    for k in keys:
        c = _from_auths(auths, k, source)
        if c:
            return c
    return None


def find_credentials(registry: str, repository: str = "") -> Optional[Credentials]:
    """Credentials for ``registry`` from the places users already keep them (None if none)."""
    keys = _keys_for(registry, repository)
    for path in _containers_auth_paths():
        cfg = _load_json(path)
        c = _lookup(cfg, path, registry, keys) if cfg is not None else None
        if c:
            return c
    path = docker_config_path()
    cfg = _load_json(path)
    if cfg is None:
        return None
    c = _lookup(cfg, path, registry, keys)
    if c:
        return c
    store = cfg.get("credsStore")  # docker's default helper, for hosts with no auths entry
    if isinstance(store, str) and store:
        return _from_helper(store, registry)
    return None


def _containers_file_for(registry: str) -> Optional[str]:
    """The containers auth file a login must go to so that lookups find it first: the one
    ``REGISTRY_AUTH_FILE`` names (as podman writes there), or one that already holds an entry for
    this registry (a login into the Docker config would stay hidden behind it)."""
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return os.environ["REGISTRY_AUTH_FILE"]
    for path in _containers_auth_paths():
        cfg = _load_json(path)
        auths = cfg.get("auths") if isinstance(cfg, dict) else None
        if isinstance(auths, dict) and any(k in auths for k in _keys_for(registry)):
            return path
    return None


def _write_auths(path: str, registry: str, entry: Optional[dict]) -> bool:
    """Set (or, with ``entry`` None, remove) a registry's entry in an auth file, keeping everything
    else; a file that cannot be parsed whole is refused, never rewritten."""
    from ..fsutil import atomic_write
    cfg = _load_json(path, strict=True)
    if cfg is None:
        if entry is None:
            return False
        cfg = {}
    auths = cfg.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise AuthError(f"{path}: its 'auths' is not a JSON object; it is left as it is: fix it, then log in again")
    found = [k for k in _keys_for(registry) if k in auths]
    for k in found:
        del auths[k]
    if entry is not None:
        auths[registry] = entry
    elif not found:
        return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, json.dumps(cfg, indent="\t").encode() + b"\n", mode=0o600)
    return True


def save_login(registry: str, username: str, password: str) -> str:
    """Store credentials where the next lookup finds them first; returns where they went.

    As ``podman login`` does, into ``$REGISTRY_AUTH_FILE`` when it is set (or into a containers
    auth file that already has an entry for the registry); otherwise as ``docker login`` does,
    into the Docker config's credential helper or its ``auths``."""
    entry = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    target = _containers_file_for(registry)
    if target is not None:
        _write_auths(target, registry, entry)
        return target
    path = docker_config_path()
    cfg = _load_json(path, strict=True) or {}
    store = cfg.get("credsStore")
    helper = _helpers(cfg).get(registry) or store
    if isinstance(helper, str) and helper:
        payload = json.dumps({"ServerURL": registry, "Username": username, "Secret": password})
        if run_helper(helper, "store", payload) is not None:
            return f"docker-credential-{helper}"
        raise AuthError(f"credential helper docker-credential-{helper} could not store the login")
    _write_auths(path, registry, entry)
    return path


def remove_login(registry: str) -> bool:
    """Remove a registry's credentials from every place lookups read (containers auth files, the
    Docker config and its helper); whether any were there."""
    removed = False
    paths = _containers_auth_paths()
    for path in paths:
        removed |= _write_auths(path, registry, None)
    path = docker_config_path()
    cfg = _load_json(path, strict=True)
    if cfg is not None:
        helper = _helpers(cfg).get(registry) or cfg.get("credsStore")
        if isinstance(helper, str) and helper:
            removed |= run_helper(helper, "erase", registry) is not None
        removed |= _write_auths(path, registry, None)
    return removed


# -- challenges ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    scheme: str                    # "bearer" or "basic" (lower case)
    params: dict


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` header (RFC 7235, as registries send it)."""
    out: list[Challenge] = []
    s = header or ""
    pos = 0
    while pos < len(s):
        m = _SCHEME.match(s, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict = {}
        while pos < len(s):
            pm = _PARAM.match(s, pos)
            if not pm:
                break
            val = pm.group(2) if pm.group(2) is not None else pm.group(3)
            if pm.group(2) is not None:
                val = re.sub(r"\\(.)", r"\1", val)
            params[pm.group(1).lower()] = val
            pos = pm.end()
        out.append(Challenge(scheme, params))
        while pos < len(s) and s[pos] in ", ":
            pos += 1
    return out


# -- ollama's Ed25519 key scheme -----------------------------------------------------------------

_EMPTY_BODY_Z = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


class OllamaKey:
    """An ollama identity key (``~/.ollama/id_ed25519``): signs token requests as ollama does."""

    def __init__(self, private_key, path: str = ""):
        from cryptography.hazmat.primitives import serialization
        self._key = private_key
        self.path = path
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        blob = _ssh_string(b"ssh-ed25519") + _ssh_string(raw)
        self.public_b64 = base64.b64encode(blob).decode()

    @classmethod
    def default_paths(cls) -> list[str]:
        paths = []
        env = os.environ.get("OLLAMA_KEY")
        if env:
            paths.append(env)
        paths.append(os.path.join(os.path.expanduser("~"), ".ollama", "id_ed25519"))
        paths.append("/usr/share/ollama/.ollama/id_ed25519")
        return paths

    @classmethod
    def load(cls, path: Optional[str] = None) -> Optional["OllamaKey"]:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_ssh_private_key
        for p in [path] if path else cls.default_paths():
            try:
                with open(p, "rb") as f:
                    data = f.read(64 << 10)
            except OSError:
                continue
            try:
                key = load_ssh_private_key(data, password=None)
            except (ValueError, TypeError) as e:
                raise InvalidInput(f"{p} is not an unencrypted OpenSSH Ed25519 private key ({e})") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise InvalidInput(f"{p} is not an Ed25519 key")
            return cls(key, p)
        return None

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode()

    def token_request(self, realm: str, service: str, scopes: list[str], *, now: Optional[int] = None,
                      nonce: Optional[str] = None) -> tuple[str, str]:
        """The token URL and the ``Authorization`` value ollama's client sends (``<pub>:<sig>``)."""
        u = urllib.parse.urlsplit(realm)
        q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
        q.append(("service", service))
        for s in scopes or [""]:
            q.append(("scope", s))
        q.append(("ts", str(int(time.time()) if now is None else now)))
        q.append(("nonce", nonce if nonce is not None else
                  base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")))
        q.sort(key=lambda kv: kv[0])  # Go's url.Values.Encode: keys sorted, values in order
        url = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ""))
        challenge = f"GET,{url},{_EMPTY_BODY_Z}".encode()
        return url, f"{self.public_b64}:{self.sign(challenge)}"


def _ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b

"""Who a request comes from, and what it may do.

Three ways in (docs/gateway.md):

* **Ollama's Ed25519 scheme** (ollama-format.md §7.3, §12): a 401 names a token realm on the
  gateway's own host; ollama GETs it with ``service``, ``scope``, ``ts``, ``nonce`` and
  ``Authorization: <ssh key blob>:<signature of "GET,<url>,<Z>">``. The key must be in the
  authorized-keys file; the gateway answers ``{"token": ...}``, a bearer token it signed itself
  (HMAC-SHA256, short expiry).
* **Basic** for docker, skopeo and oras: on the token realm (the Docker token flow) or on any
  request.
* **Signed blob URLs**: ollama fetches blob parts from the ``Location`` of its probe *without*
  Authorization, so that URL carries ``expires`` and an HMAC of the repository, digest and expiry.

Nothing here logs or echoes a credential.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from typing import Optional

from .config import GatewayConfig, Principal, check_password, ed25519_from_blob

__all__ = ["Authenticator", "ed25519_from_blob", "ANONYMOUS", "EMPTY_BODY_Z"]

#: base64 of the hex SHA-256 of an empty body: the third part of what ollama signs
EMPTY_BODY_Z = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
#: how far a token request's ``ts`` may be from the gateway's clock (replays older than this fail)
MAX_CLOCK_SKEW = 300
MAX_TOKEN_CHARS = 4096
#: nonces remembered at once (token requests accepted within twice the clock window)
MAX_NONCES = 100_000

ANONYMOUS = Principal("anonymous", read=[], write=[])


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Authenticator:
    """Checks credentials and mints what the gateway signs (tokens, blob URLs)."""

    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self._pub = {blob: ed25519_from_blob(blob) for blob in cfg.keys}
        # nonces of accepted token requests -> when to forget them (in order of arrival)
        self._nonces: "collections.OrderedDict[str, float]" = collections.OrderedDict()
        self._lock = threading.Lock()

    # -- HMAC ----------------------------------------------------------------------------------
    def _mac(self, *parts: str) -> str:
        msg = "\n".join(parts).encode()
        return _b64url(hmac.new(self.cfg.secret, msg, hashlib.sha256).digest())

    # -- bearer tokens ---------------------------------------------------------------------------
    def mint_token(self, subject: str, kind: str) -> tuple[str, int]:
        exp = int(time.time()) + self.cfg.token_ttl
        body = _b64url(json.dumps({"sub": subject, "kind": kind, "exp": exp}, separators=(",", ":")).encode())
        return f"{body}.{self._mac('token', body)}", self.cfg.token_ttl

    def principal_from_token(self, token: str) -> Optional[Principal]:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac("token", body)):
            return None
        try:
            claims = json.loads(_unb64url(body))
            sub, kind, exp = claims["sub"], claims["kind"], int(claims["exp"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if exp < time.time():
            return None
        # permissions come from the configuration now, so a key taken out of the file stops working
        return (self.cfg.keys if kind == "key" else self.cfg.users).get(sub)

    # -- the ways in ----------------------------------------------------------------------------
    def basic(self, header: str) -> Optional[Principal]:
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        p = self.cfg.users.get(user)
        return p if p is not None and check_password(password, p.password) else None

    def ollama_signature(self, header: str, url: str) -> Optional[tuple[str, Principal]]:
        """Ollama's ``<key blob>:<signature>`` on a token request for ``url`` (as the client built it)."""
        blob, sep, sig = header.strip().partition(":")
        if not sep or blob not in self._pub:
            return None
        try:
            raw = base64.b64decode(sig, validate=True)
            self._pub[blob].verify(raw, f"GET,{url},{EMPTY_BODY_Z}".encode())
        except Exception:  # InvalidSignature, bad base64: the same answer
            return None
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        try:
            ts = int(q.get("ts", ["0"])[0])
        except ValueError:
            return None
        now = time.time()
        if abs(now - ts) > MAX_CLOCK_SKEW:
            return None
        nonce = q.get("nonce", [""])[0]
        with self._lock:    # a signed request is good once: a replay inside the clock window is refused
            while self._nonces and next(iter(self._nonces.values())) < now:
                self._nonces.popitem(last=False)
            if not nonce or len(nonce) > 64 or nonce in self._nonces or len(self._nonces) >= MAX_NONCES:
                return None
            self._nonces[nonce] = now + 2 * MAX_CLOCK_SKEW
        return blob, self.cfg.keys[blob]

    def principal(self, authorization: str) -> Optional[Principal]:
        """Whoever a request's Authorization names (Bearer token or Basic), or None."""
        if not authorization:
            return None
        if authorization[:7].lower() == "bearer ":
            return self.principal_from_token(authorization[7:].strip())
        if authorization[:6].lower() == "basic ":
            return self.basic(authorization)
        return None

    def may(self, who: Optional[Principal], action: str, repository: str) -> bool:
        anon = self.cfg.anonymous
        if anon == "write" or (anon == "read" and action == "pull"):
            return True
        return who is not None and who.may(action, repository)

    # -- signed blob URLs ---------------------------------------------------------------------------
    def sign_blob(self, repository: str, digest: str) -> str:
        """The query that lets the holder GET this blob without Authorization until it expires."""
        exp = str(int(time.time()) + self.cfg.url_ttl)
        return urllib.parse.urlencode({"expires": exp, "signature": self._mac("blob", repository, digest, exp)})

    def blob_signature_ok(self, repository: str, digest: str, query) -> bool:
        exp, sig = query.get("expires", ""), query.get("signature", "")
        if not exp.isdigit() or not sig or len(sig) > 100:
            return False
        if int(exp) < time.time():
            return False
        return hmac.compare_digest(sig, self._mac("blob", repository, digest, exp))

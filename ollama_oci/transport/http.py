"""An HTTP client for one registry: TLS options, proxies, retries, redirects and auth.

* ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` are honoured (:mod:`.proxy`); HTTP itself
  is urllib3's (:mod:`.session`).
* ``plain_http`` (use http) and ``insecure`` (skip TLS verification) are separate, plus a CA
  file and a client certificate.
* Retries with exponential backoff and jitter on connection errors, timeouts, 408, 429 and
  5xx; ``Retry-After`` is honoured (capped).  Request bodies are re-created for each try.
  Where retrying cannot help (a host name that does not resolve, a refused connection on a
  loopback address) the request fails at once, unless ``unreachable_retries`` asks otherwise.
  Each retry is logged at WARNING as it waits ("connection refused ..., retrying in 2.0 s (2/5)").
* Redirects are followed by hand: ``Authorization`` is never sent to another host (object
  storage behind a 307 gets a presigned URL, not our token).
* Auth: on a 401 the ``WWW-Authenticate`` challenge is answered (Bearer token flow with
  tokens cached per scope, Basic, ollama's Ed25519 key for registry.ollama.ai), once per
  request; once a realm is known, tokens for new scopes are fetched before the request, so
  a large upload is never sent just to be refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from .._version import __version__
from ..cancel import interruptible_sleep
from ..errors import AuthError, RegistryError, printable
from .auth import Challenge, Credentials, OllamaKey, find_credentials, parse_challenges
from .session import HTTP, NetworkError, Response, TLSError

log = logging.getLogger("ollama_oci")

__all__ = ["RegistryClient", "TransportOptions", "redact", "login"]

Body = Union[None, bytes, Callable[[], Any]]  # bytes, or a callable making a fresh body for each try
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: hosts whose token service expects ollama's Ed25519 signature
_OLLAMA_AUTH_HOSTS = frozenset({"registry.ollama.ai", "ollama.com", "registry.ollama.com", "hf.co",
                                "huggingface.co"})


def redact(url: str) -> str:
    """A URL without its query string and credentials (presigned URLs carry secrets there)."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
        if u.port:
            host += f":{u.port}"
    except ValueError:
        return "<url>"
    return printable(urllib.parse.urlunsplit((u.scheme, host, u.path, "", "")), 300)


def _host(url: str) -> str:
    try:
        u = urllib.parse.urlsplit(url)
        return (u.hostname or "").lower() + (f":{u.port}" if u.port else "")
    except ValueError:
        return "<invalid host>"


def _origin(url: str) -> Optional[tuple[str, str, int]]:
    """(scheme, host, port) of a URL; None if it cannot be parsed. Credentials are tied to one
    origin: the same host over http, or on another port, is another origin."""
    try:
        u = urllib.parse.urlsplit(url)
        scheme = u.scheme.lower()
        return scheme, (u.hostname or "").lower(), u.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None


@dataclass
class TransportOptions:
    """How to reach a registry. Defaults are what a user expects of a registry client."""

    plain_http: bool = False            #: use http:// (for a local registry without TLS)
    insecure: bool = False              #: skip TLS certificate verification
    ca_file: Optional[str] = None       #: also trust this CA bundle (PEM)
    cert_file: Optional[str] = None     #: client certificate (PEM) for mutual TLS
    key_file: Optional[str] = None      #: its private key
    #: directories holding ``<host:port>/`` TLS files as docker and podman keep them (``*.crt``: CAs,
    #: ``*.cert`` + ``*.key``: a client certificate); None: the standard ones (:data:`CERTS_DIRS`)
    certs_dirs: Optional[list[str]] = None
    credentials: Optional[Credentials] = None   #: explicit; else looked up (docker/containers auth files)
    use_stored_credentials: bool = True
    ollama_key: Optional[str] = None    #: path of an ollama Ed25519 key (default ~/.ollama/id_ed25519)
    #: sign token requests with the ollama key: None = only for ollama's own hosts (and hf.co)
    ollama_auth: Optional[bool] = None
    max_retries: int = 5                #: retries after the first try (connection errors, 408/429/5xx)
    #: retries when the host is unreachable in a way waiting rarely fixes (a name that does not
    #: resolve, a refused connection on loopback); None: none, fail at once
    unreachable_retries: Optional[int] = None
    backoff: float = 0.5                #: first retry delay in seconds; doubles each time (with jitter)
    max_backoff: float = 30.0           #: longest single wait, including Retry-After
    connect_timeout: float = 10.0       #: seconds to open a connection
    #: seconds a server may stay silent (waiting for its answer, or between two reads); the
    #: request that finishes an upload waits up to ``commit_timeout`` (a registry may copy the
    #: blob to object storage before it answers)
    read_timeout: float = 30.0
    commit_timeout: float = 600.0
    #: seconds one request may spend retrying (waits included) before it gives up
    retry_budget: float = 300.0
    user_agent: Optional[str] = None    #: default: ollama-oci/<version>; Ollama-style for Ollama's hosts
    #: the Ollama version claimed to Ollama's own hosts (they answer 412 to clients too old for a
    #: model); default: ``$OLLAMA_OCI_OLLAMA_VERSION``, else :data:`OLLAMA_CLIENT_VERSION`
    ollama_version: Optional[str] = None

    def __post_init__(self):
        if self.max_retries < 0 or self.backoff < 0:
            raise ValueError("max_retries and backoff must not be negative")


class RegistryClient:
    """Requests to one registry, authenticated and retried."""

    def __init__(self, registry: str, options: Optional[TransportOptions] = None, *,
                 sleep: Callable[[float], None] = interruptible_sleep):
        self.registry = registry
        self.opts = options or TransportOptions()
        self.scheme = "http" if self.opts.plain_http else "https"
        self.base = f"{self.scheme}://{registry}"
        cert = None
        cafiles: list[str] = []
        if self.scheme == "https" and not self.opts.insecure:
            cafiles, cert = certs_d_files(registry, self.opts.certs_dirs)
            if cafiles or cert:
                log.debug("TLS files for %s from certs.d: %s", registry, cafiles + list(cert or ()))
        if self.opts.ca_file:
            cafiles.append(self.opts.ca_file)
        if self.opts.cert_file:
            cert = (self.opts.cert_file, self.opts.key_file) if self.opts.key_file else self.opts.cert_file
        self.http = HTTP(verify=not self.opts.insecure, cafiles=cafiles, cert=cert)
        self.user_agent = self.opts.user_agent or default_user_agent(registry, self.opts.ollama_version)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._init_lock = threading.RLock()
        self._token_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._bearer: Optional[tuple[str, str]] = None     # (realm, service) once a challenge said so
        self._basic = False
        self._creds: Optional[Credentials] = self.opts.credentials
        self._creds_looked_up = self.opts.credentials is not None
        self._ollama_key: Optional[OllamaKey] = None
        self._ollama_key_loaded = False

    def send(self, method: str, url: str, *, headers: Optional[dict] = None, body=None,
             timeout: Optional[tuple[float, float]] = None) -> Response:
        """One request with our TLS settings and User-Agent; no retries, no redirects."""
        h = {"User-Agent": self.user_agent}
        h.update(headers or {})
        return self.http.request(method, url, h, body,
                                 timeout or (self.opts.connect_timeout, self.opts.read_timeout))

    # -- URLs ------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    # -- credentials -----------------------------------------------------------------------
    def credentials(self, repository: str = "") -> Optional[Credentials]:
        with self._init_lock:  # blobs move on several threads: look up once, and completely
            if not self._creds_looked_up:
                if self.opts.use_stored_credentials:
                    self._creds = find_credentials(self.registry, repository)
                    if self._creds:
                        log.debug("using credentials for %s from %s", self.registry, self._creds.source)
                self._creds_looked_up = True
            return self._creds

    def ollama_key(self) -> Optional[OllamaKey]:
        with self._init_lock:
            if not self._ollama_key_loaded:
                self._ollama_key = OllamaKey.load(self.opts.ollama_key)
                self._ollama_key_loaded = True
            return self._ollama_key

    # -- auth ------------------------------------------------------------------------------
    def _auth_header(self, scope: str) -> Optional[str]:
        with self._lock:
            if self._basic and self._creds:
                return self._creds.basic()
            tok = self._tokens.get(scope)
            if tok and tok[1] > time.monotonic():
                return "Bearer " + tok[0]
            bearer = self._bearer
        if bearer is not None and scope:
            # we know the token service: fetch a token for this new scope up front
            self._fetch_token(bearer[0], bearer[1], scope)
            with self._lock:
                tok = self._tokens.get(scope)
            return "Bearer " + tok[0] if tok else None
        return None

    def _authenticate(self, challenges: list[Challenge], scope: str, url: str, failed: Optional[str] = None) -> None:
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None and bearer.params.get("realm"):
            realm, service = bearer.params["realm"], bearer.params.get("service", "")
            with self._lock:
                self._bearer = (realm, service)
            wanted = scope or bearer.params.get("scope", "")
            if bearer.params.get("scope") and bearer.params["scope"] not in wanted.split(" "):
                wanted = " ".join(x for x in (wanted, bearer.params["scope"]) if x)
            self._fetch_token(realm, service, scope or wanted, extra=wanted, failed=failed)
            return
        if any(c.scheme == "basic" for c in challenges):
            if not self.credentials():
                raise AuthError(f"{self.registry} requires a login: run 'ollama-oci login {self.registry}' "
                                "(or docker login / podman login)", status=401, url=redact(url))
            with self._lock:
                self._basic = True
            return
        raise AuthError(f"{self.registry} refused the request (401) without a usable challenge",
                        status=401, url=redact(url))

    def _fetch_token(self, realm: str, service: str, scope: str, extra: str = "",
                     failed: Optional[str] = None) -> None:
        """Get a token for ``scope`` unless another thread already replaced the one that ``failed``."""
        with self._lock:
            lk = self._token_locks.setdefault(scope, threading.Lock())
        with lk:  # threads needing the same scope wait for one token request
            with self._lock:
                cur = self._tokens.get(scope)
            if cur is not None and cur[1] > time.monotonic() and "Bearer " + cur[0] != failed:
                return
            self._fetch_token_now(realm, service, scope, extra)

    def _fetch_token_now(self, realm: str, service: str, scope: str, extra: str = "") -> None:
        scopes = [s for s in (extra or scope).split(" ") if s]
        ro = _origin(realm)
        if ro is None or ro[0] not in ("http", "https") or not ro[1]:
            raise AuthError(f"{self.registry} names an invalid token service URL", url=redact(realm))
        if self.scheme == "https" and ro[0] != "https":
            # credentials (or the token) would cross the network in cleartext
            raise AuthError(f"{self.registry} names a token service on plain http ({redact(realm)}); refusing to "
                            "send credentials there in cleartext (only a registry used with --plain-http may)",
                            url=redact(realm))
        creds = self.credentials(_repo_of(scope))
        headers = {}
        use_key = self.opts.ollama_auth
        if use_key is None:
            use_key = self.registry.lower() in _OLLAMA_AUTH_HOSTS
        key = self.ollama_key() if use_key else None
        if self.opts.ollama_auth and key is None:
            raise AuthError(f"no ollama key found (looked in {', '.join(OllamaKey.default_paths())})")
        if key is not None:
            rhost = _host(realm)
            if rhost != self.registry.lower():
                raise AuthError(f'realm host "{rhost}" does not match original host "{self.registry}"',
                                url=redact(realm))
            url, sig = key.token_request(realm, service, scopes)
            headers["Authorization"] = sig
            resp = self._plain_get(url, headers)
        elif creds and creds.identity_token:
            form = urllib.parse.urlencode({"grant_type": "refresh_token", "service": service,
                                           "scope": " ".join(scopes), "client_id": "ollama-oci",
                                           "refresh_token": creds.identity_token}).encode()
            resp = self._with_retries(lambda: self.send(
                "POST", realm, headers={"Content-Type": "application/x-www-form-urlencoded"}, body=form,
                timeout=(self.opts.connect_timeout, 60)), realm)
        else:
            if creds and (creds.username or creds.password):
                headers["Authorization"] = creds.basic()
            q = [("service", service)] if service else []
            q += [("scope", s) for s in scopes]
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(q) if q else "")
            resp = self._plain_get(url, headers)
        if resp.status_code in (401, 403):
            resp.close()
            who = f"as {creds.username!r} " if creds and creds.username else ""
            raise AuthError(f"the token service of {self.registry} refused access {who}to "
                            f"{' '.join(scopes) or 'the registry'} ({resp.status_code}); check your login "
                            f"('ollama-oci login {self.registry}')", status=resp.status_code, url=redact(realm))
        if resp.status_code != 200:
            resp.close()
            raise RegistryError(f"token service {redact(realm)} answered {resp.status_code}",
                                status=resp.status_code, url=redact(realm))
        try:
            body = resp.json(limit=1 << 20)
        except (ValueError, NetworkError):
            body = None
        finally:
            resp.close()
        got = token_from(body)
        if got is None:
            raise AuthError(f"token service {redact(realm)} returned no token", url=redact(realm))
        token, life = got
        with self._lock:
            self._tokens[scope] = (token, time.monotonic() + max(life - 10, life / 2))

    def _plain_get(self, url: str, headers: dict) -> Response:
        """A GET to a token service, redirects followed (its Authorization stays on its own host)."""
        auth = headers.get("Authorization")
        rest = {k: v for k, v in headers.items() if k != "Authorization"}
        return self._with_retries(lambda: self._send_following(
            "GET", url, rest, auth, None, True, None, timeout=(self.opts.connect_timeout, 60)), url)

    # -- retries ---------------------------------------------------------------------------
    def _delay(self, attempt: int, resp: Optional[Response] = None) -> float:
        if resp is not None:
            ra = resp.headers.get("Retry-After")
            if ra:
                d = _retry_after(ra)
                if d is not None:
                    return max(0.0, min(d, self.opts.max_backoff))
        base = self.opts.backoff * (2 ** attempt)
        import random  # only a retry needs it
        return min(base * random.uniform(0.5, 1.5), self.opts.max_backoff)

    def _with_retries(self, send: Callable[[], Response], url: str) -> Response:
        attempt = 0
        deadline = time.monotonic() + self.opts.retry_budget
        while True:
            try:
                resp = send()
            except TLSError as e:  # permanent: retrying cannot fix a certificate
                if "CERTIFICATE_REQUIRED" in str(e).upper() or "BAD_CERTIFICATE" in str(e).upper():
                    hint = ("the registry wants a client certificate its CA accepts: give it with --cert "
                            "and --key")
                else:
                    hint = ("trust its CA with --ca-file, or skip verification with --insecure (or use "
                            "--plain-http for an http registry)")
                raise RegistryError(f"TLS with {_host(url)} failed ({e}); {hint}", url=redact(url)) from None
            except NetworkError as e:
                limit = self.opts.max_retries
                if e.unreachable:
                    limit = self.opts.unreachable_retries or 0
                d = self._delay(attempt)
                if attempt >= limit or time.monotonic() + d > deadline:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise RegistryError(f"cannot reach {self.registry}: {e}{tries}", url=redact(url),
                                        temporary=not e.unreachable) from None
                log.warning("%s, retrying in %.1f s (%d/%d)", e, d, attempt + 1, limit)
                self._sleep(d)
                attempt += 1
                continue
            d = self._delay(attempt, resp) if resp.status_code in _RETRY_STATUS else 0.0
            if resp.status_code in _RETRY_STATUS and attempt < self.opts.max_retries and \
                    time.monotonic() + d <= deadline:
                log.warning("%s answered %s %s, retrying in %.1f s (%d/%d)", _host(url), resp.status_code,
                            printable(resp.reason or "", 60), d, attempt + 1, self.opts.max_retries)
                resp.close()
                self._sleep(d)
                attempt += 1
                continue
            return resp

    # -- the request loop -----------------------------------------------------------------
    def request(self, method: str, path: str, *, scope: str = "", headers: Optional[dict] = None,
                body: Body = None, follow: bool = True,
                on_redirect: Optional[Callable[[str], None]] = None,
                timeout: Optional[tuple[float, float]] = None) -> Response:
        """Send a request with auth, retries and redirects; returns the final response.

        ``body`` is bytes, or a callable returning a fresh body (bytes or a
        :class:`~.session.FileBody`) for each try.  ``on_redirect(url)`` is told the
        final URL when a redirect leaves the registry host.  The response body is unread:
        the caller reads and closes it.
        """
        url = self.url(path)
        home = _origin(self.base)
        auth_done = False
        while True:
            auth = self._auth_header(scope)

            def send(auth=auth):
                return self._send_following(method, url, headers or {}, auth, body, follow, on_redirect,
                                            timeout=timeout, auth_origin=home)
            resp = self._with_retries(send, url)
            if resp.status_code == 401 and _origin(resp.url) != home:
                # a redirect target (object storage) or an upload session on another host wants
                # credentials of its own: the registry's are never offered to it
                resp.close()
                raise AuthError(f"{_host(resp.url)}, where {self.registry} sent the request, refused it (401); "
                                f"{self.registry}'s credentials are not sent to another host", status=401,
                                url=redact(resp.url))
            if resp.status_code == 401 and not auth_done:
                challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
                resp.close()
                self._authenticate(challenges, scope, url, failed=auth)
                auth_done = True
                continue
            if resp.status_code == 401 and auth:
                with self._lock:  # the token may have expired: drop it, try once more
                    self._tokens.pop(scope, None)
            return resp

    def _send_following(self, method, url, headers, auth, body, follow, on_redirect, timeout=None,
                        auth_origin=None):
        """Send, following redirects by hand. ``Authorization`` goes only to ``auth_origin`` (scheme,
        host and port: never to another host, another port, or the same host over plain http)."""
        cur, meth = url, method
        auth_origin = auth_origin or _origin(url)
        for _ in range(10):
            h = dict(headers)
            if auth and _origin(cur) == auth_origin:
                h["Authorization"] = auth
            data = body() if callable(body) else body
            resp = self.send(meth, cur, headers=h, body=data, timeout=timeout)
            if not follow or resp.status_code not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            try:
                nxt = urllib.parse.urljoin(cur, resp.headers["Location"])
            except ValueError:
                nxt = ""
            resp.close()
            if _origin(nxt) is None or not nxt:
                raise RegistryError(f"{_host(cur)} redirected to an invalid URL", url=redact(cur))
            if resp.status_code == 303 or (resp.status_code in (301, 302) and meth == "POST"):
                meth, body = "GET", None
            if _origin(nxt) != auth_origin and on_redirect is not None:
                on_redirect(nxt)
            log.debug("redirect %s -> %s", redact(cur), redact(nxt))
            cur = nxt
        raise RegistryError(f"too many redirects from {redact(url)}", url=redact(url))


#: where docker and podman keep per-registry TLS files (``<dir>/<host:port>/``), first match first
CERTS_DIRS = ("~/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


def certs_d_files(registry: str, dirs: Optional[list[str]] = None) -> tuple[list[str], Optional[tuple[str, str]]]:
    """The CA files (``*.crt``) and the first client certificate pair (``x.cert`` + ``x.key``) kept
    for ``registry`` in certs.d directories, as containers-certs.d(5) and docker describe them."""
    cas: list[str] = []
    client: Optional[tuple[str, str]] = None
    if "/" in registry or registry in (".", ".."):
        return cas, client
    for base in (CERTS_DIRS if dirs is None else dirs):
        d = os.path.join(os.path.expanduser(base), registry)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if n.endswith(".crt"):
                cas.append(os.path.join(d, n))
            elif n.endswith(".cert") and client is None and n[:-5] + ".key" in names:
                client = (os.path.join(d, n), os.path.join(d, n[:-5] + ".key"))
    return cas, client


def token_from(body: Any) -> Optional[tuple[str, float]]:
    """(token, lifetime in seconds) from a token service's JSON answer, whatever its shape; None
    without a usable token. The lifetime is bounded: 1 second to a day, 60 s when unsaid."""
    if not isinstance(body, dict):
        return None
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token or len(token) > 64 << 10:
        return None
    expires = body.get("expires_in")
    life = 60.0
    if isinstance(expires, (int, float)) and not isinstance(expires, bool) and expires == expires and expires > 0:
        life = float(min(max(expires, 1), 86400))
    return token, life


def _retry_after(value: str) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date); None if unreadable."""
    try:
        d = float(value)
        return d if d == d else None  # not NaN
    except ValueError:
        pass
    import email.utils  # an HTTP-date: rare
    try:
        t = email.utils.parsedate_to_datetime(value)
        return t.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


#: the Ollama release claimed to Ollama's own hosts unless told otherwise
OLLAMA_CLIENT_VERSION = "0.33.0"


def default_user_agent(registry: str, ollama_version: Optional[str] = None) -> str:
    """registry.ollama.ai refuses clients whose User-Agent says they are too old (412), so for
    Ollama's own hosts we send the form Ollama's client sends, naming ourselves after it, with the
    version from ``ollama_version``, ``$OLLAMA_OCI_OLLAMA_VERSION`` or :data:`OLLAMA_CLIENT_VERSION`."""
    if registry.lower() in ("registry.ollama.ai", "ollama.com", "registry.ollama.com"):
        import platform
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        version = (ollama_version or os.environ.get("OLLAMA_OCI_OLLAMA_VERSION") or OLLAMA_CLIENT_VERSION).lstrip("v")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+){1,2}(-[0-9A-Za-z.]+)?", version):
            raise RegistryError(f"{version!r} is not an Ollama version like 0.33.0 (--ollama-version, "
                                "OLLAMA_OCI_OLLAMA_VERSION)")
        return f"ollama/{version} ({arch} linux) Go/go1.24.4 ollama-oci/{__version__}"
    return f"ollama-oci/{__version__}"


def error_from(resp: Response, what: str) -> RegistryError:
    """A RegistryError (or AuthError) describing an unexpected response (whose body is unread)."""
    codes: tuple = ()
    detail = ""
    try:
        raw = resp.read(65536)
    except NetworkError:
        raw = b""
    try:
        obj = json.loads(raw)
        errs = obj.get("errors") if isinstance(obj, dict) else None
        if isinstance(errs, list):
            codes = tuple(str(e.get("code")) for e in errs if isinstance(e, dict))
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs[:10] if isinstance(e, dict))
    except (ValueError, AttributeError, RecursionError):
        detail = raw[:200].decode("utf-8", "replace").strip()
    resp.close()
    msg = f"{what}: {resp.status_code} {printable(resp.reason or '', 80)}".rstrip()
    if detail:
        msg += f" ({printable(detail, 300)})"  # a server's words: no control characters reach the terminal
    cls = AuthError if resp.status_code in (401, 403) else RegistryError
    if resp.status_code == 412:
        msg += ("; the registry wants a newer Ollama client for this model: claim a recent Ollama release "
                "with --ollama-version or OLLAMA_OCI_OLLAMA_VERSION")
    if cls is AuthError:
        msg += "; check your login or your access to this repository"
    elif resp.status_code == 407:
        msg += "; the proxy wants credentials: put them in the proxy URL (http://user:password@host:port)"
    return cls(msg, status=resp.status_code, codes=codes, url=redact(resp.url or ""),
               temporary=resp.status_code in _RETRY_STATUS)


def _repo_of(scope: str) -> str:
    parts = scope.split(":")
    return parts[1] if len(parts) >= 3 and parts[0] == "repository" else ""


def login(registry: str, username: str, password: str, options: Optional[TransportOptions] = None) -> str:
    """Check credentials against a registry (``GET /v2/`` answered 200), then store them as
    ``docker login`` does; returns where they went."""
    import dataclasses

    from .auth import save_login
    opts = dataclasses.replace(options or TransportOptions(),
                               credentials=Credentials(username, password, source="login"))
    resp = RegistryClient(registry, opts).request("GET", "/v2/", scope="")
    if resp.status_code != 200:
        raise error_from(resp, f"login to {registry}")
    resp.close()
    return save_login(registry, username, password)

"""A test client that behaves as stock Ollama's pull and push do, rule by rule.

The real ollama binary cannot be installed here, so this follows ``server/download.go``,
``upload.go`` and ``auth.go`` as ollama-format.md §7 and §12 describe them (checked there against
Ollama v0.33.0-rc2 built from source). Each rule carries its pointer. It is deliberately strict:
wherever stock Ollama fails, this fails with Ollama's message.

Written from the documented behaviour, not from Ollama's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import urllib3

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OLLAMA_UA = "ollama/0.33.0 (amd64 linux) Go/go1.24.0"     # §7: makeRequest's User-Agent
GO_UA = "Go-http-client/1.1"                              # §12.4: parts use Go's default client
MIN_PART = 100_000_000                                    # §7.1: minDownloadPartSize (decimal MB)
MAX_PART = 1_000_000_000                                  # §7.1: maxDownloadPartSize
PARTS = 16                                                # §7.1: numDownloadParts


class OllamaError(Exception):
    pass


def part_size(total: int) -> int:
    """§7.1 / §12.4: total/16 clamped to [100 MB, 1000 MB]."""
    return min(max(total // PARTS, MIN_PART), MAX_PART)


def _host_only(netloc: str) -> str:
    return urllib.parse.urlsplit("//" + netloc).hostname or ""


class StockOllama:
    """``ollama pull/push --insecure HOST:PORT/ns/model:tag`` (http with --insecure, §12)."""

    def __init__(self, registry: str, *, key=None, scheme: str = "http", ca_file: Optional[str] = None,
                 part_size_override: Optional[int] = None):
        self.registry = registry
        self.base = f"{scheme}://{registry}"
        self.key = key                   # an ollama_oci.transport.auth.OllamaKey, or None (no id_ed25519)
        self.token: Optional[str] = None
        kw = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_file} if ca_file else {}
        self.http = urllib3.PoolManager(maxsize=32, retries=False, **kw)
        self.part_size_override = part_size_override  # tests with small blobs: more than one part
        self.requests: list[tuple[str, str, dict]] = []  # (method, url, headers sent), for assertions
        self._lock = threading.Lock()

    # -- makeRequest / makeRequestWithRetry (§7) ---------------------------------------------------
    def _send(self, method: str, url: str, headers: dict, body=None, redirect: bool = True):
        with self._lock:
            self.requests.append((method, url, dict(headers)))
        return self.http.request(method, url, headers=headers, body=body, redirect=redirect,
                                 preload_content=False, timeout=urllib3.Timeout(connect=10, read=60))

    def request(self, method: str, url: str, headers: Optional[dict] = None, body=None, redirect: bool = True):
        h = {"User-Agent": OLLAMA_UA, **(headers or {})}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        resp = self._send(method, url, h, body, redirect)
        if resp.status == 401:                    # at most 2 attempts: re-auth once
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.drain_conn()
            self.token = self._get_token(challenge, url)
            h["Authorization"] = f"Bearer {self.token}"
            resp = self._send(method, url, h, body, redirect)
            if resp.status == 401:
                raise OllamaError("unauthorized: access denied")
        if resp.status == 404:
            raise OllamaError("file does not exist")
        if resp.status >= 400:
            raise OllamaError(f"{resp.status}: {resp.data.decode(errors='replace')}")
        return resp

    def _get_token(self, challenge: str, original: str) -> str:
        """§7.3: the naive challenge parse, the same-host realm rule (v0.14.3+), the signed GET."""
        c = challenge[len("Bearer "):] if challenge.startswith("Bearer ") else challenge

        def field(k: str) -> str:
            i = c.find(f'{k}="')
            if i < 0:
                return ""
            j = i + len(k) + 2
            end = j
            while end < len(c):
                if c[end] == '"' and (end + 1 == len(c) or c[end + 1] == ","):
                    break
                end += 1
            return c[j:end]

        realm, service, scope = field("realm"), field("service"), field("scope")
        if urllib.parse.urlsplit(realm).netloc != urllib.parse.urlsplit(original).netloc:
            raise OllamaError(f'realm host "{urllib.parse.urlsplit(realm).netloc}" does not match original host '
                              f'"{urllib.parse.urlsplit(original).netloc}"')
        if self.key is None:
            raise OllamaError("unauthorized: no id_ed25519 key")
        url, authz = self.key.token_request(realm, service, scope.split(" ") if scope else [])
        resp = self._send("GET", url, {"User-Agent": OLLAMA_UA, "Authorization": authz})
        if resp.status >= 400:
            raise OllamaError(f"{resp.status}: {resp.data.decode(errors='replace')}")
        return json.loads(resp.data)["token"]

    # -- pull (§7.1, §12 "Pull, step by step") -------------------------------------------------------
    def pull(self, repo: str, tag: str, models_dir: str) -> bytes:
        resp = self.request("GET", f"{self.base}/v2/{repo}/manifests/{tag}", {"Accept": DOCKER_MANIFEST})
        raw = resp.data
        manifest = json.loads(raw)   # ollama only JSON-decodes the body
        layers = list(manifest.get("layers") or [])
        if manifest.get("config", {}).get("digest"):
            layers.append(manifest["config"])
        blobs = os.path.join(models_dir, "blobs")
        os.makedirs(blobs, exist_ok=True)
        fetched = []
        for layer in layers:                       # one blob at a time
            path = os.path.join(blobs, layer["digest"].replace(":", "-"))
            if os.path.exists(path):               # cache hit: not re-verified
                continue
            self._download(repo, layer["digest"], path)
            fetched.append((layer["digest"], path))
        for digest, path in fetched:               # "verifying sha256 digest"
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if "sha256:" + h.hexdigest() != digest:
                os.unlink(path)
                raise OllamaError(f"digest mismatch, file must be downloaded again: want {digest}, "
                                  f"got sha256:{h.hexdigest()}")
        host, ns_model = self.registry, repo.split("/")
        mdir = os.path.join(models_dir, "manifests", host, ns_model[0], ns_model[1])
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, tag), "wb") as f:   # the raw bytes as received (v0.19+)
            f.write(raw)
        return raw

    def direct_url(self, blob_url: str) -> str:
        """§12.3: GET the blob; follow same-hostname redirects only; the final answer must be 200 or
        307 and carry Location."""
        url = blob_url
        for _ in range(10):
            resp = self.request("GET", url, redirect=False)
            loc = resp.headers.get("Location")
            status = resp.status
            resp.close()                  # ollama reads only the headers
            if status in (301, 302, 303, 307, 308) and loc:
                target = urllib.parse.urljoin(url, loc)
                if _host_only(urllib.parse.urlsplit(target).netloc) == _host_only(urllib.parse.urlsplit(url).netloc):
                    url = target        # same hostname (any port): followed
                    continue
                if status != 307:
                    raise OllamaError(f"unexpected status code {status}")
                return target            # another hostname: stop, take Location
            if status not in (200, 307):
                raise OllamaError(f"unexpected status code {status}")
            if not loc:
                raise OllamaError("http: no Location header in response")
            return urllib.parse.urljoin(url, loc)
        raise OllamaError("stopped after 10 redirects")

    def _download(self, repo: str, digest: str, path: str) -> None:
        blob_url = f"{self.base}/v2/{repo}/blobs/{digest}"
        head = self.request("HEAD", blob_url)      # redirects followed; size from Content-Length
        total = int(head.headers["Content-Length"])
        head.close()
        direct = self.direct_url(blob_url)
        size = self.part_size_override or part_size(total)
        parts = [(s, min(s + size, total) - 1) for s in range(0, total, size)] or [(0, -1)]
        tmp = path + "-partial"
        with open(tmp, "wb") as f:
            f.truncate(total)

        def fetch(part):
            start, end = part
            if end < start:
                return
            # §12.4: Go's default client: no Authorization, no ollama User-Agent
            resp = self._send("GET", direct, {"Range": f"bytes={start}-{end}", "User-Agent": GO_UA})
            if resp.status not in (200, 206):
                raise OllamaError(f"part {start}-{end}: status {resp.status}")
            if resp.status == 200 and (start != 0 or end != total - 1):
                raise OllamaError("the server ignored Range")
            with open(tmp, "r+b") as f:
                f.seek(start)
                n = 0
                for chunk in resp.stream(1 << 20):
                    f.write(chunk)
                    n += len(chunk)
            resp.release_conn()
            if n != end - start + 1:
                raise OllamaError(f"part {start}-{end}: got {n} bytes")

        with ThreadPoolExecutor(PARTS) as pool:
            for r in pool.map(fetch, parts):
                pass
        os.replace(tmp, path)

    # -- push (§7.2, §12 "Push, step by step") ---------------------------------------------------------
    def push(self, repo: str, tag: str, manifest_bytes: bytes, blob_path) -> None:
        """Push a manifest whose blobs ``blob_path(digest)`` finds."""
        manifest = json.loads(manifest_bytes)
        layers = list(manifest.get("layers") or []) + [manifest["config"]]
        for layer in layers:
            d = layer["digest"]
            try:
                r = self.request("HEAD", f"{self.base}/v2/{repo}/blobs/{d}")
                r.close()
                continue                      # 200: already there
            except OllamaError as e:
                if "does not exist" not in str(e):
                    raise
            self._upload(repo, d, blob_path(d), layer.get("from"))
        r = self.request("PUT", f"{self.base}/v2/{repo}/manifests/{tag}", {"Content-Type": DOCKER_MANIFEST},
                         body=manifest_bytes)
        r.close()

    @staticmethod
    def _upload_url(resp) -> str:
        """upload.go takes the next session URL with url.Parse(Docker-Upload-Location or Location), not
        resolved against the request: a relative URL has no scheme, and the next request fails."""
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location") or ""
        if not urllib.parse.urlsplit(loc).scheme:
            raise OllamaError(f'unsupported protocol scheme "" (upload location {loc!r})')
        return loc

    def _upload(self, repo: str, digest: str, path: str, from_: Optional[str]) -> None:
        url = f"{self.base}/v2/{repo}/blobs/uploads/"
        if from_:
            url += "?" + urllib.parse.urlencode(sorted({"from": from_, "mount": digest}.items()))
        r = self.request("POST", url)
        r.close()
        if r.status == 201:
            return                            # mounted
        loc = self._upload_url(r)
        total = os.path.getsize(path)
        size = self.part_size_override or part_size(total)
        md5s = b""
        with open(path, "rb") as f:
            for start in range(0, total, size):
                data = f.read(min(size, total - start))
                md5s += hashlib.md5(data).digest()
                r = self.request("PATCH", loc, {"Content-Type": "application/octet-stream",
                                                "Content-Length": str(len(data)), "X-Redirect-Uploads": "1",
                                                "Content-Range": f"{start}-{start + len(data) - 1}"}, body=data)
                r.close()
                if r.status == 307:
                    raise OllamaError("this client does not do redirected uploads")
                loc = self._upload_url(r)
        n = max(1, -(-total // size))
        etag = hashlib.md5(md5s).hexdigest() + f"-{n}"
        u = urllib.parse.urlsplit(loc)
        q = urllib.parse.parse_qsl(u.query) + [("digest", digest), ("etag", etag)]
        q.sort()
        commit = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ""))
        r = self.request("PUT", commit, {"Content-Type": "application/octet-stream", "Content-Length": "0"}, body=b"")
        r.close()


def sign_key_pair(directory: str):
    """A fresh ollama identity (id_ed25519 + .pub), as ``ollama serve`` makes one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ollama_oci.transport.auth import OllamaKey
    k = Ed25519PrivateKey.generate()
    os.makedirs(directory, exist_ok=True)
    priv = os.path.join(directory, "id_ed25519")
    with open(priv, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()))
    key = OllamaKey.load(priv)
    with open(priv + ".pub", "w") as f:
        f.write(f"ssh-ed25519 {key.public_b64}\n")
    return key


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()

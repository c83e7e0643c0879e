"""The gateway's HTTP server (aiohttp): the registry API as stock Ollama and generic clients need it.

What stock ``ollama pull`` needs (ollama-format.md §12) and how it gets it here:

* manifests in Docker schema 2 form for its ``Accept`` (an OCI manifest is re-encoded; its digest
  changes, see docs/gateway.md);
* a blob GET whose final response carries ``Location``: every blob GET here answers 200 (or 206)
  with the blob *and* a ``Location`` naming the same blob, signed when auth is on, so ollama's
  anonymous ranged part GETs go to a short-lived URL that needs no Authorization;
* a token realm on the gateway's own host, answering ollama's Ed25519-signed token request.

Blocking store calls (upstream requests, manifest reads) run in a thread pool; local blobs go out
with sendfile (``FileResponse``); upstream blobs stream with backpressure (each write awaits the
client) and every client read or write has a timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from aiohttp import web

from ..digest import Digest, digest_bytes, parse_digest
from ..errors import InvalidInput, NotFound, OllamaOCIError, RegistryError, StoreError, Unsupported, VerificationError
from ..engine import as_oci_manifest
from ..fsutil import write_all
from ..spec import MAX_MANIFEST_BYTES, MT, Descriptor, Manifest, parse_manifest
from ..stores.contract import RangeNotSupported
from .auth import Authenticator
from .cache import BlobCache
from .config import GatewayConfig
from .metrics import Metrics
from .sources import Blob, open_source

__all__ = ["Gateway", "serve"]

log = logging.getLogger("ollama_oci.gateway")

API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
SERVICE = "ollama-oci"
CHUNK = 1 << 20
#: the most one sendfile call sends (each has the client timeout)
SENDFILE_STRETCH = 64 << 20
#: the block an upstream stream is read and written in (memory per stream: about three of these)
STREAM_CHUNK = 256 << 10
SESSION_IDLE = 3600.0
#: upload sessions open at once (each holds a file descriptor or an upstream session)
MAX_UPLOADS = 256
MAX_CONVERTED = 1024

_NAME = r"[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*"
_ROUTE = re.compile(
    rf"^/v2/(?P<repo>{_NAME}(?:/{_NAME})*)/(?:manifests/(?P<ref>[A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}|sha256:[a-f0-9]{{64}})"
    rf"|blobs/uploads/(?P<upload>[a-f0-9-]{{0,36}})|blobs/(?P<digest>sha256:[a-f0-9]{{64}})|(?P<tags>tags/list))$")


def _error(status: int, code: str, message: str, headers: Optional[dict] = None) -> web.Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]})
    return web.Response(status=status, text=body, content_type="application/json",
                        headers={**API_HEADERS, **(headers or {})})


def _accepts(header: str) -> list[str]:
    return [p.split(";")[0].strip() for p in header.split(",") if p.strip()]


def as_docker_manifest(data: bytes) -> bytes:
    """An OCI image manifest re-encoded as Docker schema 2 (Go encoding, as ollama itself writes it)."""
    m = parse_manifest(data)
    cfg = m.config
    if cfg.media_type == "application/vnd.oci.image.config.v1+json":
        cfg = dataclasses.replace(cfg, media_type=MT.CONFIG)
    return Manifest(cfg, m.layers, MT.MANIFEST, 2).to_bytes(newline=False)


def _media_type(data: bytes) -> str:
    try:
        mt = json.loads(data).get("mediaType")
    except (ValueError, AttributeError, RecursionError):
        mt = None
    return mt if isinstance(mt, str) and mt else MT.MANIFEST


def _parse_range(header: str, size: int) -> Optional[tuple[int, int]]:
    """``bytes=a-b`` / ``a-`` / ``-n`` -> (start, end inclusive); None: not satisfiable."""
    m = re.match(r"^bytes=(\d*)-(\d*)$", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    end = min(end, size - 1)
    return (start, end) if start <= end else None


class UpstreamBroke(ConnectionResetError):
    """An upstream blob failed mid-response (a digest mismatch, a short stream): the client's
    connection is cut so that it can never take a short or corrupt body for the blob."""


class Upload:
    """A blob being pushed through the gateway: spooled to disk, hashed as it arrives."""

    def __init__(self, repo: str, path: str):
        self.repo = repo
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.size = 0
        self.hash = hashlib.sha256()
        self.touched = time.monotonic()
        self.lock = asyncio.Lock()

    def write(self, data: bytes) -> None:
        write_all(self.fd, data)
        self.hash.update(data)
        self.size += len(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class PassUpload:
    """An upload passed straight through to an upstream registry's own session: each PATCH body
    streams into an upstream PATCH as it arrives (never spooled, never held whole), hashed on the
    way; the final PUT is refused unless the digest matches, and upstream checks it again."""

    def __init__(self, repo: str, src, loc: str, executor):
        self.repo = repo
        self.src = src
        self.loc = loc
        self.executor = executor
        self.size = 0
        self.hash = hashlib.sha256()
        self.touched = time.monotonic()
        self.lock = asyncio.Lock()

    def close(self) -> None:
        pass

    def discard(self) -> None:
        """Abandon the upstream session (best effort, in the background)."""
        try:
            self.executor.submit(_quietly, self.src.cancel_upload, self.repo, self.loc)
        except RuntimeError:   # the pool is shut down: upstream expires the session itself
            pass


class _QueueReader:
    """The body of an upstream PATCH, fed block by block from the event loop through a small queue;
    hashes what it hands on (in order, in the sending thread)."""

    def __init__(self, q: "queue.Queue", h, timeout: float):
        self.q, self.h, self.timeout = q, h, timeout
        self.buf = b""
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        while not self.buf:
            if self.eof:
                return b""
            try:
                item = self.q.get(timeout=self.timeout)
            except queue.Empty:
                raise RegistryError("the client stopped sending the upload", temporary=False) from None
            if item is None:
                self.eof = True
                return b""
            self.buf = item
        take = self.buf if n is None or n < 0 or n >= len(self.buf) else self.buf[:n]
        self.buf = self.buf[len(take):]
        self.h.update(take)
        return take

    def close(self) -> None:
        pass


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - best effort clean-up
        pass


class Gateway:
    """The application: sources, auth, cache, metrics, and the request handlers."""

    def __init__(self, cfg: GatewayConfig):
        from ..stores.registry import Registries
        from ..transport import TransportOptions
        if not cfg.sources:
            raise InvalidInput("the gateway needs at least one source (--from, or [[source]] in --config)")
        if not cfg.data_dir:
            cfg.data_dir = os.path.join(os.path.expanduser("~"), ".cache", "ollama-oci", "gateway")
        os.makedirs(cfg.data_dir, exist_ok=True)
        self._lock_fd = _lock_data_dir(cfg.data_dir)
        if not cfg.secret:
            cfg.secret = os.urandom(32)   # one replica: fine; several replicas share --secret-file
        self.cfg = cfg
        self.metrics = Metrics()
        self.auth = Authenticator(cfg)
        self.registries = Registries(cfg.transport or TransportOptions())
        self.sources = [(s, open_source(s, registries=self.registries, data_dir=cfg.data_dir)) for s in cfg.sources]
        self.cache = BlobCache(os.path.join(cfg.data_dir, "cache"), cfg.cache_max_size, self.metrics) \
            if cfg.cache_max_size > 0 else None
        self.upload_dir = os.path.join(cfg.data_dir, "uploads")
        shutil.rmtree(self.upload_dir, ignore_errors=True)   # sessions do not outlive the process
        os.makedirs(self.upload_dir, exist_ok=True)
        self.uploads: dict[str, Upload] = {}
        self.converted: dict[str, tuple[str, bytes]] = {}   # digest -> (repository, manifest bytes) re-encoded
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="gateway")
        self.access = _access_logger(cfg.access_log)
        self.stopping = False
        self._stop: Optional[asyncio.Event] = None
        self._basic_seen: dict[bytes, tuple[float, object]] = {}
        self._basic_slots: Optional[asyncio.Semaphore] = None   # made in the loop (Python 3.9)
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def shutdown(self) -> None:
        """Stop a gateway that ``serve`` runs (from any thread), as SIGTERM does."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    # -- plumbing ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_MANIFEST_BYTES,
                              handler_args={"max_field_size": 16384, "max_line_size": 16384})
        app.router.add_route("*", "/v2/{tail:.*}", self.v2)
        app.router.add_route("*", "/v2", self.v2)
        app.router.add_get("/token", self.token)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _on_startup(self, app) -> None:
        self._basic_slots = asyncio.Semaphore(4)
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def _on_shutdown(self, app) -> None:
        self.stopping = True

    async def _on_cleanup(self, app) -> None:
        self._sweeper.cancel()
        if self.cache is not None:
            await self.cache.close()
        for up in list(self.uploads.values()):
            up.discard()
        self.uploads.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(60)
            now = time.monotonic()
            for k, up in list(self.uploads.items()):
                if now - up.touched > SESSION_IDLE and not up.lock.locked():
                    up.discard()
                    self.uploads.pop(k, None)

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        t0 = time.monotonic()
        request["who"] = None
        status = 500
        resp = None
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            status = 499   # the client went away
            raise
        except Exception as e:
            log.exception("unhandled error on %s %s", request.method, request.path)
            status = 500
            return _error(500, "UNKNOWN", f"internal error: {type(e).__name__}")
        finally:
            sent = max(getattr(resp, "body_length", 0) if resp is not None else 0, request.get("sent", 0))
            if (resp is not None and request.method == "GET" and not request.get("aborted")
                    and isinstance(resp, web.FileResponse)):
                sent = resp.content_length or 0   # sendfile: aiohttp does not count these bytes
            if request.get("aborted"):
                status = request["aborted"]
            self.metrics.request(request.method, status, sent)
            who = request.get("who")
            self.access({"ts": round(time.time(), 3), "remote": request.remote, "method": request.method,
                         "path": request.path, "status": status, "bytes": sent,
                         "ms": round((time.monotonic() - t0) * 1000, 1),
                         "user": who.name if who is not None else None,
                         "ua": request.headers.get("User-Agent", "")[:120]})

    def _base(self, request: web.Request) -> str:
        return self.cfg.public_url.rstrip("/") or f"{request.scheme}://{request.host}"

    def _challenge(self, request: web.Request, repo: str, action: str) -> web.Response:
        scope = f"repository:{repo}:{'pull,push' if action == 'push' else 'pull'}" if repo else ""
        h = f'Bearer realm="{self._base(request)}/token",service="{SERVICE}"' + (f',scope="{scope}"' if scope else "")
        return _error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": h})

    async def _principal(self, header: str):
        """Whoever an Authorization header names. Basic passwords cost a slow hash (PBKDF2), so they
        are checked in the thread pool, a few at a time, and the answer is remembered for a minute."""
        if header[:6].lower() != "basic ":
            return self.auth.principal(header)
        key = hashlib.sha256(header.encode()).digest()
        hit = self._basic_seen.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._basic_slots or asyncio.Semaphore(4):
            who = await self.run(self.auth.basic, header)
        if len(self._basic_seen) >= 4096:
            self._basic_seen.clear()
        self._basic_seen[key] = (now + 60, who)
        return who

    async def _check(self, request: web.Request, repo: str, action: str) -> Optional[web.Response]:
        """None if the request may do ``action`` on ``repo``; else the 401/403 to send."""
        who = await self._principal(request.headers.get("Authorization", ""))
        request["who"] = who
        if self.auth.may(who, action, repo):
            return None
        if who is None:
            return self._challenge(request, repo, action)
        return _error(403, "DENIED", f"{who.name} may not {action} {repo}")

    def _source(self, repo: str):
        best = None
        for spec, src in self.sources:
            if repo.startswith(spec.prefix) and (best is None or len(spec.prefix) > len(best[0].prefix)):
                best = (spec, src)
        return best[1] if best else None

    # -- endpoints ------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        if self.stopping:
            return web.Response(status=503, text="stopping\n")
        return web.Response(text="ok\n")

    async def metrics_page(self, request: web.Request) -> web.Response:
        extra = {}
        if self.cache is not None:
            n, total = self.cache.stat()
            extra = {"cache_blobs": n, "cache_bytes": total, "cache_fills_in_flight": len(self.cache.fills)}
        extra["uploads_in_progress"] = len(self.uploads)
        return web.Response(text=self.metrics.render(extra), content_type="text/plain")

    async def token(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        who, kind = None, ""
        if header[:6].lower() == "basic ":
            who, kind = await self._principal(header), "user"
        elif header and header[:7].lower() != "bearer ":
            url = self._base(request) + request.raw_path
            got = await self.run(self.auth.ollama_signature, header, url)
            if got is not None:
                request["who"] = got[1]
                tok, ttl = self.auth.mint_token(got[0], "key")
                return web.json_response({"token": tok, "access_token": tok, "expires_in": ttl})
        if who is None:
            if not header and self.cfg.anonymous != "none":
                # docker clients ask for a token anonymously before they try credentials
                tok, ttl = "anonymous", self.cfg.token_ttl
                return web.json_response({"token": tok, "access_token": tok, "expires_in": ttl})
            return _error(401, "UNAUTHORIZED", "unknown key or wrong credentials",
                          {"WWW-Authenticate": f'Basic realm="{SERVICE}"'})
        request["who"] = who
        tok, ttl = self.auth.mint_token(who.name, kind)
        return web.json_response({"token": tok, "access_token": tok, "expires_in": ttl})

    async def v2(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/v2", "/v2/"):
            if self.cfg.auth_enabled and self.cfg.anonymous == "none":
                if await self._principal(request.headers.get("Authorization", "")) is None:
                    return self._challenge(request, "", "pull")
            return web.json_response({}, headers=API_HEADERS)
        m = _ROUTE.match(path)
        if not m:
            return _error(404, "NAME_UNKNOWN" if "/manifests/" in path or "/blobs/" in path else "NOT_FOUND",
                          "no such repository or endpoint")
        repo = m.group("repo")
        if len(repo) > 255:
            return _error(400, "NAME_INVALID", "repository name longer than 255 characters")
        method = request.method
        try:
            if m.group("ref") is not None:
                if method in ("GET", "HEAD"):
                    return await self.get_manifest(request, repo, m.group("ref"))
                if method == "PUT":
                    return await self.put_manifest(request, repo, m.group("ref"))
            elif m.group("digest") is not None:
                if method in ("GET", "HEAD"):
                    return await self.get_blob(request, repo, parse_digest(m.group("digest")))
            elif m.group("upload") is not None:
                return await self.upload(request, repo, m.group("upload"))
            elif m.group("tags") and method == "GET":
                return await self.tags(request, repo)
            return _error(405, "UNSUPPORTED", f"{method} is not supported here")
        except NotFound as e:
            code = "BLOB_UNKNOWN" if m.group("digest") else "MANIFEST_UNKNOWN" if m.group("ref") else "NAME_UNKNOWN"
            return _error(404, code, str(e))
        except VerificationError as e:
            return _error(502, "UNKNOWN", f"upstream: {e}")
        except RegistryError as e:
            self.metrics.inc("upstream_errors_total")
            return _error(502, "UNKNOWN", f"upstream: {e}")
        except Unsupported as e:
            return _error(405, "UNSUPPORTED", str(e))
        except InvalidInput as e:
            return _error(400, "MANIFEST_INVALID" if m.group("ref") else "UNKNOWN", str(e))
        except OllamaOCIError as e:
            return _error(500, "UNKNOWN", str(e))

    # -- manifests ------------------------------------------------------------------------------------
    async def _pull_source(self, request: web.Request, repo: str, *, checked: bool = False):
        """(source, None) for a read of ``repo``, or (None, the 401/403 to send); NotFound if no source
        serves the name. ``checked``: the request is already allowed (a signed blob URL)."""
        if not checked:
            denied = await self._check(request, repo, "pull")
            if denied:
                return None, denied
        src = self._source(repo)
        if src is None:
            raise NotFound(f"no source serves {repo}")
        return src, None

    async def get_manifest(self, request: web.Request, repo: str, ref: str) -> web.Response:
        src, refused = await self._pull_source(request, repo)
        if refused:
            return refused
        try:
            data = await self.run(src.manifest, repo, ref)
        except NotFound:
            hit = self.converted.get(ref)
            if hit is None or hit[0] != repo:
                raise
            data = hit[1]
        mt = _media_type(data)
        accept = _accepts(",".join(request.headers.getall("Accept", [])))  # one header or several
        converted = accept and mt not in accept and "*/*" not in accept
        if converted:
            if mt == MT.OCI_MANIFEST and MT.MANIFEST in accept:
                data, mt = as_docker_manifest(data), MT.MANIFEST
            elif mt == MT.MANIFEST and MT.OCI_MANIFEST in accept:
                data, mt = as_oci_manifest(parse_manifest(data))
            else:
                raise NotFound(f"{repo}:{ref} is a {mt}, which the client does not accept")
        d = str(digest_bytes(data))
        if converted:   # a GET by the digest of the form served must find it again
            if len(self.converted) >= MAX_CONVERTED:
                self.converted.pop(next(iter(self.converted)))
            self.converted[d] = (repo, data)
        headers = {**API_HEADERS, "Docker-Content-Digest": d, "ETag": f'"{d}"', "Content-Type": mt}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        return web.Response(body=data, headers=headers)

    async def _push_target(self, request: web.Request, repo: str):
        """(writable source, None) for a push to ``repo``, or (None, the 401/403/405 to send)."""
        denied = await self._check(request, repo, "push")
        if denied:
            return None, denied
        src = self._source(repo)
        if src is None or not src.writable:
            return None, _error(405, "UNSUPPORTED", f"the source for {repo} is read-only; mark it writable to push")
        return src, None

    async def put_manifest(self, request: web.Request, repo: str, ref: str) -> web.Response:
        src, refused = await self._push_target(request, repo)
        if refused:
            return refused
        data = await self._read_body(request, MAX_MANIFEST_BYTES)
        if data is None:
            return _error(413, "SIZE_INVALID", f"a manifest is at most {MAX_MANIFEST_BYTES} bytes")
        parse_manifest(data)   # InvalidInput -> 400 MANIFEST_INVALID
        mt = request.headers.get("Content-Type", "").split(";")[0].strip() or _media_type(data)
        d = digest_bytes(data)
        if ref.startswith("sha256:") and ref != d:
            return _error(400, "DIGEST_INVALID", f"the manifest hashes to {d}, not {ref}")
        await self.run(src.put_manifest, repo, ref, request.host, data, mt)
        return web.Response(status=201, headers={**API_HEADERS, "Docker-Content-Digest": d,
                                                 "Location": f"{self._base(request)}/v2/{repo}/manifests/{d}"})

    async def tags(self, request: web.Request, repo: str) -> web.Response:
        src, refused = await self._pull_source(request, repo)
        if refused:
            return refused
        tags = sorted(await self.run(src.tags, repo))
        last = request.query.get("last")
        if last:
            tags = [t for t in tags if t > last]
        n = request.query.get("n", "")
        if n.isdigit():
            tags = tags[:int(n)]
        return web.json_response({"name": repo, "tags": tags}, headers=API_HEADERS)

    # -- blobs ------------------------------------------------------------------------------------------
    async def get_blob(self, request: web.Request, repo: str, digest: Digest) -> web.StreamResponse:
        signed = self.cfg.auth_enabled and self.auth.blob_signature_ok(repo, digest, request.query)
        src, refused = await self._pull_source(request, repo, checked=signed)
        if refused:
            return refused
        location = f"{self._base(request)}/v2/{repo}/blobs/{digest}"
        if self.cfg.auth_enabled:
            location += "?" + (self.auth.sign_blob(repo, digest))
        headers = {**API_HEADERS, "Docker-Content-Digest": str(digest), "Location": location,
                   "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000"}
        if request.method == "GET":
            self.metrics.inc("blob_gets_total")

        def send_file(path: str, hit: bool) -> web.FileResponse:
            if hit:
                self.metrics.inc("cache_hits_total")
            return web.FileResponse(path, chunk_size=CHUNK, headers={**headers, "Content-Type": "application/octet-stream"})

        path = self.cache.lookup(digest, repo) if self.cache is not None else None
        if path is not None:
            return send_file(path, True)
        # a blob still arriving for this repository needs no upstream HEAD for each of a pull's parts
        fill = self.cache.filling(digest, repo) if self.cache is not None else None
        blob: Optional[Blob] = Blob(digest, fill.size) if fill is not None else await self.run(src.blob, repo, digest)
        if blob is None:
            raise NotFound(f"blob {digest} not found in {repo}")
        if blob.path is not None:
            return send_file(blob.path, False)
        # an upstream registry's blob
        if self.cache is not None:
            self.cache.note_repository(digest, repo)
            path = self.cache.lookup(digest, repo)
            if path is not None:
                return send_file(path, True)
        rng = (0, blob.size - 1)
        status = 200
        if request.headers.get("Range"):
            r = _parse_range(request.headers["Range"], blob.size)
            if r is None:
                return _error(416, "RANGE_INVALID", "range not satisfiable",
                              {"Content-Range": f"bytes */{blob.size}"})
            rng, status = r, 206
            headers["Content-Range"] = f"bytes {r[0]}-{r[1]}/{blob.size}"
        resp = web.StreamResponse(status=status, headers={**headers, "Content-Type": "application/octet-stream"})
        resp.content_length = rng[1] - rng[0] + 1 if blob.size else 0
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        try:
            if self.cache is not None and self.cache.fits(blob.size):
                self.metrics.inc("cache_misses_total")
                fill = self.cache.start_fill(digest, blob.size, lambda off: src.open(repo, blob, off), self.executor)
                await resp.prepare(request)
                await self._send_fill(request, fill, rng)
            else:
                await self._send_upstream(request, resp, src, repo, blob, rng)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.TimeoutError) as e:
            # the client went away (ollama's probe reads only the headers), stalled, or the upstream
            # blob failed: end the connection, so a short body can never pass for a whole one
            request["aborted"] = 502 if isinstance(e, UpstreamBroke) else 499
            if isinstance(e, UpstreamBroke):
                log.error("%s %s: %s", request.method, request.path, e)
            if request.transport is not None:
                request.transport.abort()
        except Exception:
            if not resp.prepared:
                raise
            log.exception("%s %s failed mid-response", request.method, request.path)
            request["aborted"] = 500
            if request.transport is not None:
                request.transport.abort()
        return resp

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        await asyncio.wait_for(resp.write(data), self.cfg.client_timeout)
        self.metrics.add("bytes_sent_total", len(data))

    async def _send_fill(self, request: web.Request, fill, rng: tuple[int, int]) -> None:
        """Serve a byte range of a blob that is still arriving: each stretch as soon as the fill has
        written it, with sendfile from the fill's file (no copy through Python)."""
        pos, end = rng
        f = None
        loop = asyncio.get_running_loop()
        try:
            while pos <= end:
                if fill.error is not None:
                    raise UpstreamBroke(f"upstream blob {fill.digest} failed: {fill.error}")
                limit = fill.readable()
                if pos >= limit:
                    await fill.changed()
                    continue
                if f is None:
                    f = os.fdopen(await self.run(fill.open), "rb", buffering=0)
                n = min(end + 1, limit, pos + SENDFILE_STRETCH) - pos
                if request.transport is None:
                    raise ConnectionResetError("client gone")
                sent = await asyncio.wait_for(loop.sendfile(request.transport, f, pos, n), self.cfg.client_timeout)
                if sent != n:
                    raise UpstreamBroke("cache file shorter than its progress")
                self.metrics.add("bytes_sent_total", n)
                request["sent"] = request.get("sent", 0) + n
                pos += n
        finally:
            if f is not None:
                f.close()

    async def _send_upstream(self, request, resp, src, repo: str, blob: Blob, rng: tuple[int, int]) -> None:
        """Stream straight from upstream (no cache, or a blob bigger than the cache); a whole blob is
        hashed on the way and its last chunk held back until the digest checks out."""
        start, end = rng
        whole = start == 0 and end == blob.size - 1
        self.metrics.inc("upstream_fetches_total")
        try:
            stream = await self.run(src.open, repo, blob, start, end - start + 1)
        except RangeNotSupported:
            stream = await self.run(src.open, repo, blob, 0, None)
            await self.run(_skip, stream, start)
        await resp.prepare(request)
        h = hashlib.sha256() if whole else None
        held = b""
        sent = 0
        want = end - start + 1
        try:
            while sent + len(held) < want:
                data = await self.run(stream.read, min(STREAM_CHUNK, want - sent - len(held)))
                if not data:
                    break
                if h is not None:
                    h.update(data)
                if held:
                    await self._write(resp, held)
                    sent += len(held)
                held = data
            if h is not None and ("sha256:" + h.hexdigest() != str(blob.digest) or sent + len(held) != want):
                self.metrics.inc("upstream_errors_total")
                raise UpstreamBroke(f"upstream blob {blob.digest} does not match its digest; not sent whole")
            if sent + len(held) != want:
                raise UpstreamBroke(f"upstream blob {blob.digest} ended early")
            if held:
                await self._write(resp, held)
        finally:
            await self.run(stream.close)

    # -- uploads (push through the gateway) --------------------------------------------------------------
    async def upload(self, request: web.Request, repo: str, sid: str) -> web.Response:
        src, refused = await self._push_target(request, repo)
        if refused:
            return refused
        method = request.method
        if not sid:
            if method != "POST":
                return _error(405, "UNSUPPORTED", f"{method} on an upload needs a session")
            mount = request.query.get("mount")
            if mount:
                try:
                    d = parse_digest(mount)
                    have = await self.run(src.has_blob, repo, d)
                except (InvalidInput, RegistryError):
                    have = None
                if have is not None:
                    return web.Response(status=201, headers={**API_HEADERS, "Docker-Content-Digest": str(d),
                                                             "Location": f"{self._base(request)}/v2/{repo}/blobs/{d}"})
            if len(self.uploads) >= MAX_UPLOADS:
                return _error(429, "TOOMANYREQUESTS", f"{MAX_UPLOADS} uploads are in progress; try again later",
                              {"Retry-After": "10"})
            sid = str(uuid.uuid4())
            if getattr(src, "start_upload", None) is not None:     # an upstream registry: pass through
                from_repo = request.query.get("from", "")
                try:
                    mnt = (parse_digest(mount), src.upstream(from_repo)) if mount and from_repo else None
                except InvalidInput:
                    mnt = None
                loc = await self.run(src.start_upload, repo, mnt)
                if loc is None:
                    return web.Response(status=201, headers={**API_HEADERS, "Docker-Content-Digest": mount,
                                                             "Location": f"{self._base(request)}/v2/{repo}/blobs/{mount}"})
                up = self.uploads[sid] = PassUpload(repo, src, loc, self.executor)
            else:
                up = self.uploads[sid] = Upload(repo, os.path.join(self.upload_dir, sid))
            if "digest" in request.query:   # monolithic: POST with the blob and its digest
                return await self._finish(request, src, repo, sid, up, request.query["digest"])
            return self._session_response(request, 202, repo, sid, up)
        up = self.uploads.get(sid)
        if up is None or up.repo != repo:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload session (it may have expired)")
        up.touched = time.monotonic()
        if method == "GET":
            return self._session_response(request, 204, repo, sid, up)
        if method == "DELETE":
            up.discard()
            self.uploads.pop(sid, None)
            return web.Response(status=204, headers=API_HEADERS)
        if method == "PATCH":
            async with up.lock:
                cr = request.headers.get("Content-Range", "")
                if cr:
                    m = re.match(r"^(?:bytes )?(\d+)-(\d+)$", cr.strip())
                    if not m or int(m.group(1)) != up.size:
                        return _error(416, "BLOB_UPLOAD_INVALID", f"expected the chunk at offset {up.size}",
                                      {"Range": f"0-{max(up.size - 1, 0)}",
                                       "Location": f"{self._base(request)}/v2/{repo}/blobs/uploads/{sid}"})
                err = await self._receive(request, up)
                if err is not None:
                    return err
            return self._session_response(request, 202, repo, sid, up)
        if method == "PUT":
            return await self._finish(request, src, repo, sid, up, request.query.get("digest", ""))
        return _error(405, "UNSUPPORTED", f"{method} is not supported on an upload")

    def _session_response(self, request: web.Request, status: int, repo: str, sid: str, up: Upload) -> web.Response:
        # absolute: ollama's upload.go takes it with url.Parse, unresolved against the request
        return web.Response(status=status, headers={
            **API_HEADERS, "Location": f"{self._base(request)}/v2/{repo}/blobs/uploads/{sid}", "Docker-Upload-UUID": sid,
            "Range": f"0-{max(up.size - 1, 0)}", "Content-Length": "0"})

    async def _receive(self, request: web.Request, up) -> Optional[web.Response]:
        if isinstance(up, PassUpload):
            return await self._forward(request, up)
        buf = bytearray()
        while True:
            try:
                data = await asyncio.wait_for(request.content.readany(), self.cfg.client_timeout)
            except asyncio.TimeoutError:
                return _error(408, "BLOB_UPLOAD_INVALID", "the client stalled")
            if not data:
                break
            if up.size + len(buf) + len(data) > self.cfg.max_upload_size:
                return _error(413, "SIZE_INVALID", f"a blob is at most {self.cfg.max_upload_size} bytes here")
            buf += data
            if len(buf) >= CHUNK:
                await self.run(up.write, bytes(buf))
                buf.clear()
        if buf:
            await self.run(up.write, bytes(buf))
        return None

    async def _forward(self, request: web.Request, up: PassUpload) -> Optional[web.Response]:
        """One PATCH (or the body of the final PUT) streamed into an upstream PATCH."""
        n = request.content_length
        if n is None and request.body_exists:
            return _error(411, "SIZE_INVALID", "send upload chunks with a Content-Length")
        if not n:
            return None
        if up.size + n > self.cfg.max_upload_size:
            return _error(413, "SIZE_INVALID", f"a blob is at most {self.cfg.max_upload_size} bytes here")
        q: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=4)
        reader = _QueueReader(q, up.hash, self.cfg.client_timeout)
        finished = threading.Event()

        def send() -> str:
            try:
                return up.src.patch_upload(up.repo, up.loc, up.size, n, reader)
            finally:
                finished.set()

        def put(item) -> bool:
            while not finished.is_set():
                try:
                    q.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        fut = asyncio.get_running_loop().run_in_executor(self.executor, send)
        got = 0
        problem = None
        try:
            while got < n:
                try:
                    data = await asyncio.wait_for(request.content.readany(), self.cfg.client_timeout)
                except asyncio.TimeoutError:
                    problem = _error(408, "BLOB_UPLOAD_INVALID", "the client stalled")
                    break
                if not data:
                    break
                got += len(data)
                if got > n or not await self.run(put, data):
                    break
        finally:
            await self.run(put, None)
        try:
            up.loc = await fut
        except (RegistryError, InvalidInput) as e:
            self.metrics.inc("upstream_errors_total")
            problem = problem or _error(502 if isinstance(e, RegistryError) else 400, "BLOB_UPLOAD_INVALID",
                                        f"upstream refused the chunk: {e}")
        if problem is None and got != n:
            problem = _error(400, "BLOB_UPLOAD_INVALID", f"the chunk had {got} bytes, not the {n} announced")
        if problem is not None:
            return problem
        up.size += n
        return None

    async def _finish(self, request, src, repo: str, sid: str, up, digest: str) -> web.Response:
        async with up.lock:
            try:
                d = parse_digest(digest)
            except InvalidInput:
                return _error(400, "DIGEST_INVALID", "the final PUT needs ?digest=sha256:<hex>")
            err = await self._receive(request, up)
            if err is not None:
                return err
            up.close()
            try:
                got = "sha256:" + up.hash.hexdigest()
                if got != d:
                    return _error(400, "DIGEST_INVALID", f"the upload hashes to {got}, not {d}")
                desc = Descriptor("application/octet-stream", d, up.size)
                if isinstance(up, PassUpload):
                    await self.run(src.commit_upload, repo, up.loc, desc)
                    up.loc = ""      # committed: nothing to cancel
                else:
                    await self.run(src.push_blob, repo, desc, up.path)
            finally:
                up.discard()
                self.uploads.pop(sid, None)
        return web.Response(status=201, headers={**API_HEADERS, "Docker-Content-Digest": str(d),
                                                 "Location": f"{self._base(request)}/v2/{repo}/blobs/{d}",
                                                 "Content-Length": "0"})

    async def _read_body(self, request: web.Request, limit: int) -> Optional[bytes]:
        buf = bytearray()
        while True:
            data = await asyncio.wait_for(request.content.readany(), self.cfg.client_timeout)
            if not data:
                return bytes(buf)
            buf += data
            if len(buf) > limit:
                return None


def _lock_data_dir(path: str) -> int:
    """Hold the data directory for this process: a second gateway on it would delete the first one's
    uploads and cache fills when it starts."""
    import fcntl
    fd = os.open(os.path.join(path, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(f"{path} is in use by another gateway; give each gateway its own --data-dir") from None
    return fd


def _skip(stream, n: int) -> None:
    while n > 0:
        data = stream.read(min(CHUNK, n))
        if not data:
            raise NotFound("upstream blob shorter than asked")
        n -= len(data)


def _access_logger(dest: str):
    if not dest:
        return lambda rec: None
    f = None if dest == "-" else open(dest, "a", buffering=1)

    def write(rec: dict) -> None:
        line = json.dumps(rec, separators=(",", ":"))
        if f is None:
            import sys
            print(line, file=sys.stderr, flush=True)
        else:
            f.write(line + "\n")
    return write


async def _serve(gw: Gateway, ready=None) -> None:
    import ssl
    runner = web.AppRunner(gw.app(), access_log=None, shutdown_timeout=gw.cfg.shutdown_timeout,
                           handle_signals=False)
    await runner.setup()
    ctx = None
    if gw.cfg.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(gw.cfg.tls_cert, gw.cfg.tls_key or None)
    site = web.TCPSite(runner, gw.cfg.host, gw.cfg.port, ssl_context=ctx, backlog=512)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    gw._stop, gw._loop = stop, loop
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if ready is not None:
        ready(gw)
    log.info("gateway listening on %s:%d (%s)", gw.cfg.host, gw.cfg.port,
             ", ".join(f"{s.prefix or '*'} -> {s.describe()}" for s, _ in gw.sources))
    await stop.wait()
    log.info("stopping: waiting up to %.0f s for requests in flight", gw.cfg.shutdown_timeout)
    gw.stopping = True
    await runner.cleanup()


def serve(cfg: GatewayConfig, *, ready=None) -> None:
    """Run the gateway until SIGTERM or SIGINT; requests in flight get ``cfg.shutdown_timeout``."""
    gw = Gateway(cfg)
    asyncio.run(_serve(gw, ready))

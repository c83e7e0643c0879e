"""What the commands share: output, progress bars, options, and turning options into library objects."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import click

if TYPE_CHECKING:
    from ..names import ModelName


# -- output ---------------------------------------------------------------------------------------

def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def human_size(n: int) -> str:
    # ollama list uses decimal units
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def ago(ts: float) -> str:
    d = max(0, time.time() - ts)
    for unit, s in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= s:
            k = int(d // s)
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return "just now"


class Progress:
    """Progress of a long operation on stderr, from the library's
    :class:`~ollama_oci.progress.ProgressEvent` (sent from any thread).

    On a terminal: a bar per blob of 1 MiB and more (as ``ollama pull`` draws them; at most
    :attr:`MAX_BARS`, the ones moving first), then a total line, redrawn ten times a second, each
    with bytes done and total, percent, the rate over the last few seconds and the time left at that
    rate. Elsewhere (CI, container logs): a total line every 10 s (``OLLAMA_OCI_PROGRESS_INTERVAL``
    seconds) naming the blobs still moving, so a long pull is not silent. Off with ``-q`` or
    ``--json``.
    """

    MAX_BARS = 8
    BAR_MIN = 1 << 20
    WINDOW = 5.0

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        try:
            every = float(os.environ.get("OLLAMA_OCI_PROGRESS_INTERVAL", "10"))
        except ValueError:
            every = 10.0
        self.interval = 0.1 if self.tty else max(every, 0.1)
        self.lock = threading.Lock()
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.started = time.monotonic()
        self.last = self.started
        self.samples: dict[str, list[tuple[float, int]]] = {"": [(self.started, 0)]}
        self.drawn = 0   # lines on screen from the last redraw (terminal only)

    def __call__(self, ev) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.done[ev.digest] = max(ev.done, 0)
            self.total[ev.digest] = ev.total
            self.labels[ev.digest] = ev.label
            now = time.monotonic()
            if ev.digest not in self.samples:
                self.samples[ev.digest] = [(now, max(ev.done, 0))]
            if now - self.last >= self.interval:
                self._draw(now)

    def _rate(self, key: str, now: float, done: int) -> float:
        samples = self.samples[key]
        samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > self.WINDOW:
            samples.pop(0)
        t0, d0 = samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0

    def _stats(self, key: str, done: int, total: int, now: float) -> str:
        rate = self._rate(key, now, done)
        pct = f" ({100 * done // total}%)" if total else ""
        line = f"{human_size(done)} of {human_size(total)}{pct}"
        if rate > 0 and done < total:
            line += f", {human_size(int(rate))}/s, {_duration((total - done) / rate)} left"
        return line

    def _line(self, now: float) -> str:
        return self._stats("", sum(self.done.values()), sum(self.total.values()), now)

    def _bars(self, now: float) -> list[str]:
        """One line per blob worth a bar: those moving first, then finished, then waiting."""
        keys = [k for k in self.total if self.total[k] >= self.BAR_MIN]

        def order(k: str) -> int:
            d, t = self.done[k], self.total[k]
            return 0 if 0 < d < t else (1 if d >= t else 2)
        out = []
        for k in sorted(keys, key=order)[:self.MAX_BARS]:
            d, t = self.done[k], self.total[k]
            filled = 20 * d // t if t else 0
            out.append(f"{self.labels[k][:24]:<24} [{'#' * filled}{'.' * (20 - filled)}] {self._stats(k, d, t, now)}")
        return out

    def _draw(self, now: float) -> None:
        self.last = now
        total = self._line(now)
        if self.tty:
            lines = self._bars(now) + [("total: " if len(self.total) > 1 else "") + total]
            up = f"\x1b[{self.drawn - 1}F" if self.drawn > 1 else "\r"
            sys.stderr.write(up + "\n".join(x + "\x1b[K" for x in lines))
            self.drawn = len(lines)
        else:
            moving = [f"{self.labels[k]} {100 * self.done[k] // self.total[k]}%" for k in self.total
                      if self.total[k] >= self.BAR_MIN and 0 < self.done[k] < self.total[k]]
            sys.stderr.write(f"progress: {total}" + (f" [{', '.join(moving[:self.MAX_BARS])}]" if moving else "") + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        with self.lock:
            if self.enabled and self.tty and self.drawn:
                self._draw(time.monotonic())
                sys.stderr.write("\n")
                sys.stderr.flush()
            self.drawn = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def copy_report(report, as_json: bool, verb: str, quiet: bool = False) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    if quiet:
        return
    moved = [b for b in report.blobs if b.transferred]
    click.echo(f"{verb} {report.destination} ({report.manifest_digest})")
    for b in report.blobs:
        click.echo(f"  {b.action:<10} {b.digest[7:19]}  {human_size(b.size)}")
    click.echo(f"  {len(moved)} of {len(report.blobs)} blobs moved, {human_size(report.bytes_transferred)}")


def plan_report(report, as_json: bool, quiet: bool = False) -> None:
    """What a --dry-run found: the blobs a copy would move (``missing``) and those already there."""
    missing = [b for b in report.blobs if b.action == "missing"]
    if as_json:
        emit_json({**report.to_json(), "dry_run": True, "bytes_to_transfer": sum(b.size for b in missing)})
        return
    if quiet:
        return
    click.echo(f"dry run: {report.source} -> {report.destination} ({report.manifest_digest})")
    for b in report.blobs:
        click.echo(f"  {b.action:<10} {b.digest[7:19]}  {human_size(b.size)}")
    what = "unchanged, nothing would move" if report.unchanged else \
        f"{len(missing)} of {len(report.blobs)} blobs would move, {human_size(sum(b.size for b in missing))}"
    click.echo(f"  {what}")


def authfile_option(f):
    """``--authfile FILE``: the containers auth file to read and write logins in, as podman and skopeo
    take it (it stands for $REGISTRY_AUTH_FILE for this command)."""
    def set_authfile(ctx, param, value):
        if value:
            os.environ["REGISTRY_AUTH_FILE"] = os.path.abspath(value)
        return value
    return click.option("--authfile", metavar="FILE", expose_value=False, is_eager=True, callback=set_authfile,
                        help="Registry logins file (containers-auth.json format); default $REGISTRY_AUTH_FILE, "
                             "then the Docker config.")(f)


def conversion_params_option(f):
    """``-p/--param`` for commands that turn a ModelPack or Docker model artifact into an Ollama model."""
    return click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                        help="A PARAMETER for the Ollama model made from a ModelPack or Docker model artifact "
                             "(as for pack, e.g. num_ctx=8192); repeat for several.")(f)


def dry_run_option(f):
    return click.option("--dry-run", is_flag=True,
                        help="Resolve both sides and say which blobs would move; move nothing.")(f)


# -- options --------------------------------------------------------------------------------------

def models_dir_option(f):
    return click.option("--models-dir", metavar="DIR", envvar="OLLAMA_MODELS", show_envvar=True,
                        help="Ollama model store (default: $OLLAMA_MODELS or ~/.ollama/models).")(f)


def oci_option(f):
    return click.option("--oci-layout", "oci_layout", metavar="DIR",
                        help="Use an OCI image layout directory instead of the Ollama model store.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(f)


def quiet_option(f):
    return click.option("-q", "--quiet", is_flag=True,
                        help="Print nothing on success: no progress, no summary (errors still go to stderr; "
                             "--json also turns progress off).")(f)


def given(param: str) -> bool:
    """Whether the user set an option on the command line (not its default or environment variable)."""
    from click.core import ParameterSource
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE


def local_store(models_dir: Optional[str], oci_layout: Optional[str]):
    from ..stores import OCILayout, OllamaStore, default_models_dir
    if oci_layout and models_dir and given("models_dir"):
        raise click.UsageError("give either --models-dir or --oci-layout, not both")
    if oci_layout:
        return OCILayout(oci_layout)
    return OllamaStore(models_dir or default_models_dir())


def existing_store(models_dir: Optional[str], oci_layout: Optional[str]):
    """The store a reading command (list, verify, prune) looks at: a directory the user named
    (option or OLLAMA_MODELS) must exist; only the implicit default may be absent (nothing packed or
    pulled yet, as `ollama list` shows it)."""
    from ..errors import NotFound
    store = local_store(models_dir, oci_layout)
    if (oci_layout or models_dir) and not os.path.isdir(store.root):
        what = "OCI layout" if oci_layout else "model store"
        raise NotFound(f"no {what} at {store.root}: check the path (--models-dir, --oci-layout, OLLAMA_MODELS)")
    return store


def model_name(value: str) -> "ModelName":
    from ..names import parse_name
    return parse_name(value)


def destination(text: str, what: str = "the destination"):
    """A registry reference to write to: it must name its registry (a usage error otherwise)."""
    from ..errors import InvalidName
    from ..reference import parse_destination
    try:
        return parse_destination(text)
    except InvalidName as e:
        raise click.UsageError(f"{what}: {e}") from None


def parse_size(value: Optional[str], hint: str = "--chunk-size") -> Optional[int]:
    if value is None:
        return None
    v = value.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
    num = v[:-1] if v[-1:] in "KMG" else v
    try:
        n = int(float(num) * mult)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size like 4M or 65536", param_hint=hint) from None
    if n <= 0:
        raise click.BadParameter("must be positive", param_hint=hint)
    return n


@dataclass
class Transport:
    """The registry options of one command line, turned into the library's objects once."""

    plain_http: bool
    insecure: bool
    ca_file: Optional[str]
    cert_file: Optional[str]
    key_file: Optional[str]
    username: Optional[str]
    password_stdin: bool
    ollama_key: Optional[str]
    concurrency: int
    retries: int
    ollama_version: Optional[str] = None
    retries_given: bool = False
    _creds: Any = field(default=False, init=False, repr=False)   # False: stdin not read yet

    def credentials(self):
        """``-u`` and the password from stdin (read once), or None: stored logins apply."""
        from ..transport import Credentials
        if self._creds is False:
            pw = None
            if self.password_stdin:
                pw = sys.stdin.readline().rstrip("\r\n")
                if not pw:
                    raise click.UsageError("--password-stdin: nothing on standard input")
            self._creds = (Credentials(self.username or "", pw or "", source="command line")
                           if self.username or pw else None)
        return self._creds

    def options(self):
        from ..transport import TransportOptions
        return TransportOptions(plain_http=self.plain_http, insecure=self.insecure, ca_file=self.ca_file,
                                cert_file=self.cert_file, key_file=self.key_file, max_retries=self.retries,
                                ollama_key=self.ollama_key, ollama_auth=True if self.ollama_key else None,
                                unreachable_retries=self.retries if self.retries_given else None,
                                ollama_version=self.ollama_version)

    def check_plain_http(self, *refs) -> None:
        """``--plain-http`` applies only to registries the user named, never to the public
        registry.ollama.ai that a short name implies."""
        for ref in refs:
            if self.plain_http and ref is not None and not getattr(ref, "explicit_registry", True):
                raise click.UsageError(f"--plain-http applies only to a registry you name: {ref} is Ollama's public "
                                       "registry, reached over https; write the registry host in the reference")

    def registries(self, *, credentials_for: Optional[str] = None, chunk_size: Optional[int] = None):
        """Registry stores made on demand; ``-u``/``--password-stdin`` go to ``credentials_for`` only."""
        from ..stores.registry import Registries
        return Registries(self.options(), chunk_size=chunk_size, credentials=self.credentials(),
                          credentials_for=credentials_for)

    def registry(self, host: str, *, chunk_size: Optional[int] = None):
        return self.registries(credentials_for=host, chunk_size=chunk_size).get(host)


_TRANSPORT_PARAMS = ("plain_http", "insecure", "ca_file", "cert_file", "key_file", "username", "password_stdin",
                     "ollama_key", "concurrency", "retries", "ollama_version")


def transport_options(f):
    """Add the registry options to a command; it receives them as one ``transport`` argument."""
    @functools.wraps(f)
    def wrapper(*args, **kw):
        t = Transport(**{n: kw.pop(n) for n in _TRANSPORT_PARAMS}, retries_given=given("retries"))
        return f(*args, transport=t, **kw)
    opts = [
        authfile_option,
        click.option("--plain-http", is_flag=True, help="Talk to the registry over http:// (no TLS)."),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate verification (still https)."),
        click.option("--ca-file", type=click.Path(dir_okay=False, exists=True),
                     help="Also trust this CA bundle (PEM)."),
        click.option("--cert", "cert_file", type=click.Path(dir_okay=False, exists=True),
                     help="Client certificate (PEM) for mutual TLS."),
        click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True),
                     help="Private key of --cert."),
        click.option("-u", "--username", help="Registry user (else: stored logins, docker/podman auth files)."),
        click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin."),
        click.option("--ollama-key", type=click.Path(dir_okay=False, exists=True),
                     help="Sign token requests with this ollama Ed25519 key (default for registry.ollama.ai: "
                          "~/.ollama/id_ed25519)."),
        click.option("--ollama-version", metavar="X.Y.Z",
                     help="The Ollama version claimed to registry.ollama.ai, which refuses clients too old for a "
                          "model (412); default $OLLAMA_OCI_OLLAMA_VERSION, else a recent release."),
        click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Connections at once: blobs and the byte ranges of large blobs together."),
        click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
                     help="Retries on connection errors, 429 and 5xx (with backoff, honouring Retry-After), each "
                          "shown as it waits. A host name that does not resolve or a refused connection on "
                          "localhost fails at once unless --retries is given."),
    ]
    for o in reversed(opts):
        wrapper = o(wrapper)
    return wrapper

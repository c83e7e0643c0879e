"""The ``ollama-oci`` console script.

For ``ollama-oci pack FILE.gguf ...`` it starts hashing each named GGUF on a thread
(:mod:`ollama_oci.prehash`) before it loads click and the rest of the program, which takes a
fresh process ~45 ms; then it runs :func:`ollama_oci.cli.console_main` as ``python -m
ollama_oci.cli`` does. Nothing is hashed ahead for ``--link-mode copy``, ``--dry-run`` or
``--help``, where staging would not take the result. For ``ollama-oci export NAME... -o FILE`` it
likewise starts on the store blobs of the named models (:func:`export_blobs`; read through a map, at
the lowest CPU priority: the export checks each result before the bundle gets its name, and hashes
whatever was not started here itself).

``ollama-oci inspect FILE`` (and ``inspect FILE --json``) on a local file is answered here, by
:mod:`ollama_oci.gguf_report`, without loading click: the whole process then costs about what
reading the header costs (docs/benchmarks.md), where click alone would add ~30 ms. The output is the
``inspect`` command's own (it prints the same report); any other form of the command, and any
error, goes to the full program, which reports it as every command does.
"""

from __future__ import annotations

import os
import stat
import sys

_SKIP = {"--link-mode=copy", "--dry-run", "-h", "--help"}


def gguf_args(argv: list[str]) -> list[str]:
    """The ``.gguf`` files a ``pack`` command line names (none for any other command)."""
    words = [a for a in argv if a != "--verbose" and not (a.startswith("-v") and set(a[1:]) <= {"v"})]
    if not words or words[0] != "pack":
        return []
    rest = words[1:]
    if "--" in rest:
        rest = rest[:rest.index("--")] + rest[rest.index("--") + 1:]
    if _SKIP & set(rest) or any(a == "--link-mode" and b == "copy" for a, b in zip(rest, rest[1:])):
        return []
    return [a for a in rest if not a.startswith("-") and a.lower().endswith(".gguf")]


#: what ``export`` reads from the command line here; any other option (``--oci-layout``, ``--help``,
#: one of a later version) and nothing is hashed ahead
_EXPORT_VALUED = {"-o", "--output", "--level"}
_EXPORT_FLAGS = {"-q", "--quiet", "--json"}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


def _manifest_parts(name: str) -> list[str] | None:
    """host, namespace, model, tag of a plain lower-case Ollama name (Ollama's defaults filled in),
    None for anything else (a scheme, a port, upper case, a digest): those are left to the program."""
    path, _, tag = name.rpartition(":") if ":" in name.rpartition("/")[2] else (name, "", "latest")
    parts = path.split("/")
    if not 1 <= len(parts) <= 3:
        return None
    parts = ["registry.ollama.ai", "library"][:3 - len(parts)] + parts + [tag]
    if any(not p or p in (".", "..") or not set(p) <= _NAME_CHARS for p in parts):
        return None
    return parts


def export_blobs(argv: list[str]) -> list[str]:
    """The blob files (1 MiB and more) of the models an ``export`` command line names in the Ollama
    model store, for :mod:`ollama_oci.prehash`: none for any other command, or for a form read
    here with any doubt. A hint only: the export hashes what it does not find hashed ahead."""
    words = [a for a in argv if a != "--verbose" and not (a.startswith("-v") and set(a[1:]) <= {"v"})]
    if not words or words[0] != "export":
        return []
    names, models_dir, rest = [], None, words[1:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in _EXPORT_VALUED or a == "--models-dir":
            if i + 1 == len(rest):
                return []
            if a == "--models-dir":
                models_dir = rest[i + 1]
            i += 2
            continue
        if a.startswith("--models-dir="):
            models_dir = a.partition("=")[2]
        elif not (a in _EXPORT_FLAGS or a.startswith(("--output=", "--level=", "-o"))):
            if a.startswith("-"):
                return []
            names.append(a)
        i += 1
    from .prehash import MIN_SIZE
    root = (models_dir or os.environ.get("OLLAMA_MODELS")
            or os.path.join(os.path.expanduser("~"), ".ollama", "models"))   # as default_models_dir()
    out = []
    for name in names:
        parts = _manifest_parts(name)
        if parts is None:
            continue
        try:
            with open(os.path.join(root, "manifests", *parts), "rb") as f:
                data = f.read(1 << 20)
            import json
            m = json.loads(data)
            descs = [m.get("config")] + list(m.get("layers") or [])
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        for d in descs:
            digest = d.get("digest") if isinstance(d, dict) else None
            if not (isinstance(digest, str) and len(digest) == 71 and digest.startswith("sha256:")
                    and set(digest[7:]) <= set("0123456789abcdef")):
                continue
            path = os.path.join(root, "blobs", "sha256-" + digest[7:])
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= MIN_SIZE and path not in out:
                out.append(path)
    return out


def inspect_args(argv: list[str]) -> tuple[str, bool] | None:
    """(FILE, as_json) when ``argv`` is ``inspect FILE`` or ``inspect FILE --json`` for a regular file
    (the forms answered without click); None for anything else."""
    if len(argv) not in (2, 3) or argv[0] != "inspect" or argv[2:] not in ([], ["--json"]):
        return None
    path = argv[1]
    if path.startswith("-") or not os.path.isfile(path):
        return None
    return path, len(argv) == 3


def _inspect(path: str, as_json: bool) -> bool:
    """Print what ``ollama-oci inspect`` prints; False (nothing printed) if it cannot, so that the
    full program runs the command and reports the problem."""
    try:
        from .gguf_report import report_json, report_lines
        if as_json:
            import json
            text = json.dumps(report_json(path), indent=2, ensure_ascii=False, default=str)
        else:
            text = "\n".join(report_lines(path))
        data = (text + "\n").encode(sys.stdout.encoding or "utf-8")   # fails here, before any output
        out = sys.stdout.buffer
    except KeyboardInterrupt:   # as the CLI says it
        from .errors import EXIT_INTERRUPTED
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Exception:
        return False
    try:
        sys.stdout.flush()
        out.write(data)
        sys.stdout.flush()
    except OSError as e:   # a closed pipe, a full disk: as the CLI reports an OSError
        from .errors import EXIT_IO
        try:
            sys.stderr.write(f"error: {e}\n")
        except OSError:
            pass
        sys.exit(EXIT_IO)
    return True


def console_main() -> None:
    fast = inspect_args(sys.argv[1:])
    if fast is not None and _inspect(*fast):
        import gc
        gc.freeze()      # as cli.console_main: no collection walk of what the run made, at exit
        return
    from . import prehash
    for path in gguf_args(sys.argv[1:]):
        prehash.start(path)
    for path in export_blobs(sys.argv[1:]):
        prehash.start(path, mapped=True, background=True)    # store blobs: never truncated in place
    from .cli import console_main as run
    run()

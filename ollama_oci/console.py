"""The ``ollama-oci`` console script.

For ``ollama-oci pack FILE.gguf ...`` it starts hashing each named GGUF on a thread
(:mod:`ollama_oci.prehash`) before it loads click and the rest of the program, which takes a
fresh process ~45 ms; then it runs :func:`ollama_oci.cli.console_main` as ``python -m
ollama_oci.cli`` does. Nothing is hashed ahead for ``--link-mode copy``, ``--dry-run`` or
``--help``, where staging would not take the result.

``ollama-oci inspect FILE`` (and ``inspect FILE --json``) on a local file is answered here, by
:mod:`ollama_oci.gguf_report`, without loading click: the whole process then costs about what
reading the header costs (docs/benchmarks.md), where click alone would add ~30 ms. The output is the
``inspect`` command's own (it prints the same report); any other form of the command, and any
error, goes to the full program, which reports it as every command does.
"""

from __future__ import annotations

import os
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
    from .cli import console_main as run
    run()

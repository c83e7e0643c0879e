"""The ``ollama-oci`` console script.

For ``ollama-oci pack FILE.gguf ...`` it starts hashing each named GGUF on a thread
(:mod:`ollama_oci.prehash`) before it loads click and the rest of the program, which takes a
fresh process ~45 ms; then it runs :func:`ollama_oci.cli.console_main` as ``python -m
ollama_oci.cli`` does. Nothing is hashed ahead for ``--link-mode copy``, ``--dry-run`` or
``--help``, where staging would not take the result.
"""

from __future__ import annotations

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


def console_main() -> None:
    from . import prehash
    for path in gguf_args(sys.argv[1:]):
        prehash.start(path)
    from .cli import console_main as run
    run()

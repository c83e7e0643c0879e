"""The ``ollama-oci`` command line: a thin layer over the library.

Each command parses its options, calls one library function and prints what it returns; the
decisions (which store a place names, how a recipe is built, where a template came from) are
the library's. Errors from the library become one line on stderr and the exit code of their
type (see :mod:`ollama_oci.errors` and docs/cli.md); ``-v`` adds the traceback.

One module per group of commands: :mod:`.local` (inspect, list, show, rm, verify, prune),
:mod:`.pack`, :mod:`.registry` (login, logout, push, pull, tags), :mod:`.places` (copy, export,
import, volume, mirror), :mod:`.serve`; a module is imported only when one of its commands runs
(:class:`.app.LazyGroup`), and the library by each command as it needs it: `ollama-oci push` never
loads the GGUF reader, `ollama-oci inspect` never loads urllib3 or the other commands.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_IO, EXIT_USAGE, OllamaOCIError
from .app import cli, log   # the command modules are imported when their command runs (app.LazyGroup)

__all__ = ["cli", "main", "console_main"]


def main(argv: Optional[list[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # -v/--verbose is the group's option, but people put it anywhere (`ollama-oci push ... -v`): move
    # every one of them in front of the command (up to a `--`)
    verbose = 0
    rest: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            rest.extend(args[i:])
            break
        if a == "--verbose" or (a.startswith("-v") and len(a) > 1 and set(a[1:]) == {"v"}):
            verbose += 1 if a == "--verbose" else a.count("v")
            continue
        rest.append(a)
    args = (["-" + "v" * verbose] if verbose else []) + rest
    try:
        rv = cli.main(args=args, prog_name="ollama-oci", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OllamaOCIError as e:
        if verbose:
            log.exception("details")
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:
        if verbose:
            log.exception("details")
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_IO)
    except Exception as e:  # a bug: say so, keep the traceback for -v
        if verbose:
            log.exception("details")
        click.echo(f"internal error: {type(e).__name__}: {e} (run with -v for the traceback, and "
                   "please report it)", err=True)
        sys.exit(EXIT_INTERNAL)


def console_main() -> None:
    """The ``ollama-oci`` program: :func:`main`, then a quicker exit.

    By the time ``main`` exits, the work is done and files are closed; the interpreter's final
    garbage collection would still walk every object the imports created (~8 ms of each run,
    measured). Freezing them skips that walk; they are freed as usual, and standard streams and
    logging are flushed by the interpreter as always. Not done in :func:`main`, which library
    callers and tests run in a process that goes on.
    """
    try:
        main()
    finally:
        import gc
        gc.freeze()

"""The ``ollama-oci`` command group: global options and logging."""

from __future__ import annotations

import logging
import sys

import click

from .._version import __version__

log = logging.getLogger("ollama_oci")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="ollama-oci")
@click.option("-v", "--verbose", count=True, help="Log more (-v: info and tracebacks, -vv: debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Build Ollama models from GGUF files without ollama, and move them through registries.

    \b
    Examples:
      ollama-oci inspect model.gguf                 # what is in a GGUF header
      ollama-oci pack model.gguf --name mymodel:q4  # into $OLLAMA_MODELS (~/.ollama/models)
      ollama-oci pack -f Modelfile --name mymodel --oci-layout ./layout
      ollama-oci list                               # like `ollama list`
      ollama-oci verify                             # re-hash every blob of every model
      ollama-oci push mymodel:q4 registry.example.com/team/mymodel:q4
      ollama-oci pull registry.example.com/team/mymodel:q4   # into OLLAMA_MODELS

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 not found,
    5 integrity failure, 6 I/O error, 7 registry/network, 8 auth, 130 interrupted
    (docs/cli.md).
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    # plain "warning: ..." lines for a person (a retry as it waits); logger names with -v
    fmt = "%(levelname)s: %(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    for lv in (logging.WARNING, logging.ERROR):
        logging.addLevelName(lv, logging.getLevelName(lv).lower())
    log.setLevel(level)
    # urllib3's debug lines carry full URLs, and presigned object-storage URLs carry signatures
    logging.getLogger("urllib3").setLevel(logging.WARNING)

"""The ``ollama-oci`` command group: global options and logging."""

from __future__ import annotations

import logging
import sys

import click

from .._version import __version__

log = logging.getLogger("ollama_oci")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """The command group, importing a command's module only when that command runs (or help lists
    them all): `ollama-oci inspect` does not pay for the registry, bundle and gateway commands."""

    #: command name -> the module of ollama_oci.cli that defines it
    LAZY = {"inspect": "local", "list": "local", "ls": "local", "show": "local", "rm": "local", "verify": "local",
            "prune": "local", "pack": "pack", "copy": "places", "cp": "places", "export": "places",
            "import": "places", "mirror": "places", "volume": "places", "login": "registry", "logout": "registry",
            "push": "registry", "pull": "registry", "tags": "registry", "serve": "serve"}

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in self.LAZY:
            import importlib
            importlib.import_module(f"ollama_oci.cli.{self.LAZY[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx):
        return sorted(set(self.commands) | set(self.LAZY))


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def version(as_json: bool) -> None:
    """Print the version of ollama-oci, Python and the libraries it runs on."""
    import platform
    from importlib import metadata
    deps = {}
    for d in ("click", "urllib3", "zstandard", "cryptography", "jinja2", "gguf", "aiohttp"):
        try:
            deps[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            deps[d] = None
    if as_json:
        import json
        click.echo(json.dumps({"version": __version__, "python": platform.python_version(), "libraries": deps}))
        return
    click.echo(f"ollama-oci {__version__} (Python {platform.python_version()})")
    for k, v in deps.items():
        click.echo(f"  {k} {v or 'not installed'}")


@cli.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      ollama-oci completion bash > ~/.local/share/bash-completion/completions/ollama-oci
      ollama-oci completion zsh > "${fpath[1]}/_ollama-oci"
      ollama-oci completion fish > ~/.config/fish/completions/ollama-oci.fish
    """
    from click.shell_completion import get_completion_class
    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "ollama-oci", "_OLLAMA_OCI_COMPLETE").source())

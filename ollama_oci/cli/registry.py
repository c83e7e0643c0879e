"""Registry commands: login, logout, push, pull."""

from __future__ import annotations

import click

from .app import CONTEXT, cli
from .common import (Progress, authfile_option, conversion_params_option, copy_report, destination,
                     dry_run_option, emit_json, json_option, local_store, model_name, models_dir_option,
                     oci_option, parse_size, plan_report, quiet_option, transport_options, warn)


def _registry_host(text: str) -> str:
    """``https://host:port/`` (as people paste it) means the registry ``host:port``."""
    import urllib.parse
    if "://" in text:
        u = urllib.parse.urlsplit(text)
        if not u.netloc:
            raise click.UsageError(f"{text!r} is not a registry: give HOST[:PORT]")
        return u.netloc
    return text.rstrip("/")


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
@click.option("-u", "--username", help="User name (asked for on a terminal when not given).")
@click.option("-p", "--password", help="Password (prefer --password-stdin: this one shows in `ps`).")
@click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin.")
@click.option("--plain-http", is_flag=True, help="The registry speaks http://.")
@click.option("--insecure", is_flag=True, help="Skip TLS certificate verification.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), help="Also trust this CA bundle (PEM).")
@authfile_option
def login(registry, username, password, password_stdin, plain_http, insecure, ca_file) -> None:
    """Check credentials against a registry and store them like `docker login`.

    They go to $REGISTRY_AUTH_FILE (or --authfile) when set, else the Docker config
    ($DOCKER_CONFIG/config.json, or its credsStore helper), where docker, podman,
    oras and skopeo find them too.
    """
    import sys

    from ..transport import TransportOptions, login as do_login
    registry = _registry_host(registry)
    if not username:
        if password_stdin or not sys.stdin.isatty():
            raise click.UsageError("give the user name with -u (standard input is not a terminal to ask on)")
        username = click.prompt("Username")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: nothing on standard input")
    if not password:
        password = click.prompt("Password", hide_input=True)
    where = do_login(registry, username, password,
                     TransportOptions(plain_http=plain_http, insecure=insecure, ca_file=ca_file))
    click.echo(f"Login Succeeded ({registry}, saved in {where})")


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
@authfile_option
def logout(registry) -> None:
    """Remove stored credentials for a registry."""
    from ..errors import NotFound
    from ..transport import remove_login
    registry = _registry_host(registry)
    if not remove_login(registry):
        raise NotFound(f"not logged in to {registry}")
    click.echo(f"Removed login credentials for {registry}")


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@click.argument("ref", required=False)
@models_dir_option
@oci_option
@click.option("--chunk-size", help="Upload in PATCH chunks of this size (e.g. 4M); default: one streamed PUT, "
                                   "falling back to chunks if the registry refuses the size.")
@click.option("--format", "manifest_format", type=click.Choice(["keep", "oci"]), default="keep", show_default=True,
              help="oci: send the manifest as an OCI image manifest, for tools that refuse Docker schema 2 "
                   "(`ollama pull` cannot fetch that form from Docker distribution; keep the default for it).")
@click.option("--also", "also", multiple=True, type=click.Choice(["modelpack", "docker"]),
              help="Also publish a CNCF ModelPack (modelpack) or Docker Model Runner (docker) twin of the model, "
                   "sharing its weight blob (never uploaded twice); repeatable. See --twin-name.")
@click.option("--twin-name", default="{repository}:{tag}-{format}", show_default=True, metavar="PATTERN",
              help="Where a twin goes: {repository} (host included), {tag}, {format}; e.g. "
                   "'{repository}-{format}:{tag}' for a parallel repository. One manifest per tag.")
@dry_run_option
@transport_options
@quiet_option
@json_option
def push(name, ref, models_dir, oci_layout, chunk_size, manifest_format, also, twin_name, dry_run, transport, quiet,
         as_json) -> None:
    """Push a model from the Ollama store (or an OCI layout) to a registry.

    NAME is a model in the store; REF the destination, e.g.
    registry.example.com/team/model:tag (default: NAME itself, when it names a
    registry host). Blobs already there are skipped; the manifest goes last,
    with the bytes `ollama push` would send.

    \b
    With --also, the same weights are published as a ModelPack and/or Docker
    model artifact too (for Docker Model Runner, llmman, KServe, modctl), each
    under its own tag: by default NAME's tag plus -modelpack / -docker.
    Ollama-only layers (params, system, messages, adapters, the Go template)
    have no slot there and are listed as not carried.

    \b
    Examples:
      ollama-oci push mymodel:q4 ghcr.io/acme/mymodel:q4
      ollama-oci push localhost:5000/team/model:1 --plain-http
      echo "$TOKEN" | ollama-oci push m registry.example.com/ns/m -u ci --password-stdin
      ollama-oci push gemma3:270m ghcr.io/acme/gemma3:270m --also modelpack
    """
    from ..engine import CopyOptions, copy
    from ..reference import parse_reference
    store = local_store(models_dir, oci_layout)
    n = model_name(name)
    # the destination must name its registry: never registry.ollama.ai by omission
    dest = destination(ref) if ref else destination(name, "push needs a destination REF, or a NAME with its "
                                                           "registry host")
    transport.check_plain_http(dest)
    reg = transport.registry(dest.registry, chunk_size=parse_size(chunk_size))
    twins = []
    if also:
        from ..twin import twin_reference
        twins = [(fmt, parse_reference(twin_reference(str(dest), fmt, twin_name))) for fmt in dict.fromkeys(also)]
        for _, t in twins:
            if t.registry != dest.registry:
                raise click.UsageError(f"--twin-name puts a twin on another registry ({t.registry}); twins share "
                                       f"the weight blob, so they go to {dest.registry}")
    if dry_run:
        from ..engine import plan_copy
        return plan_report(plan_copy(store, n, reg, dest, manifest_format=manifest_format), as_json, quiet)
    with Progress(not quiet and not as_json) as prog:
        opts = CopyOptions(concurrency=transport.concurrency, progress=prog, manifest_format=manifest_format)
        report = copy(store, n, reg, dest, opts)
        published = []
        if twins:
            from ..twin import make_twins, publish_twin
            made = make_twins(store, n, [fmt for fmt, _ in twins], name=dest.repository.rsplit("/", 1)[-1])
            for twin, (_, t) in zip(made, twins):   # blobs from the model just pushed: present, or mounted
                published.append((t, twin, publish_twin(twin, reg, dest, reg, t, opts)))
    if as_json:
        doc = report.to_json()
        if published:
            doc["twins"] = [dict(tw.to_json(), destination=str(t), blobs=[b.to_json() for b in r.blobs])
                            for t, tw, r in published]
        return emit_json(doc)
    copy_report(report, as_json, "pushed", quiet)
    if quiet:
        return
    for t, tw, r in published:
        moved = sum(b.transferred for b in r.blobs)
        click.echo(f"pushed {tw.format} twin {t} ({tw.manifest_digest}); {moved} bytes of blobs sent")
        for kind, digest, why in tw.not_carried:
            click.echo(f"  not carried: {kind} {digest[7:19]} ({why})")


@cli.command(context_settings=CONTEXT)
@click.argument("ref")
@click.option("-n", "--name", help="Local model name (default: from REF, e.g. localhost:5000/team/model:tag).")
@click.option("--verify", "verify_existing", is_flag=True,
              help="Re-hash the blobs already here and fetch damaged ones again (a kept volume after a disk "
                   "fault), instead of trusting their presence.")
@conversion_params_option
@models_dir_option
@oci_option
@dry_run_option
@transport_options
@quiet_option
@json_option
def pull(ref, name, verify_existing, params, models_dir, oci_layout, dry_run, transport, quiet, as_json) -> None:
    """Pull a model from a registry into the Ollama store (or an OCI layout).

    Blobs already present are skipped; large blobs come in parallel byte ranges;
    an interrupted pull resumes where it stopped; every blob is verified before
    it becomes visible, and the manifest is written last. `ollama serve` sees the
    model at once.

    \b
    Examples:
      ollama-oci pull ghcr.io/acme/mymodel:q4 --name mymodel:q4
      OLLAMA_MODELS=/models ollama-oci pull registry.internal:5000/team/model:1
      ollama-oci pull gemma3:270m          # registry.ollama.ai/library/gemma3:270m
    """
    from ..engine import CopyOptions
    from ..reference import parse_reference
    src = parse_reference(ref)
    transport.check_plain_http(src)
    if src.tag is None and not name:
        raise click.UsageError(f"{ref} names a digest, not a tag: give the local name with --name "
                               "(or write REPOSITORY:TAG@sha256:...)")
    local = model_name(name) if name else src.to_model_name()
    store = local_store(models_dir, oci_layout)
    reg = transport.registry(src.registry)
    if dry_run:
        from ..engine import plan_copy
        return plan_report(plan_copy(reg, src, store, local), as_json, quiet)
    from ..bridge import pull_any
    from ..build import params_from_options
    extra = params_from_options(params, warn=warn) if params else None
    with Progress(not quiet and not as_json) as prog:
        # an Ollama model is copied; a ModelPack or Docker model artifact becomes one (weights shared)
        report = pull_any(reg, src, store, local, CopyOptions(concurrency=transport.concurrency, progress=prog,
                                                              verify_existing=verify_existing), warn=warn,
                          params=extra)
    copy_report(report, as_json, "pulled", quiet)


@cli.command(context_settings=CONTEXT)
@click.argument("repository")
@transport_options
@json_option
def tags(repository, transport, as_json) -> None:
    """List the tags of a repository in a registry.

    \b
    Examples:
      ollama-oci tags registry.example.com/ml/gemma3
      ollama-oci tags localhost:5000/team/model --plain-http --json
    """
    from ..reference import parse_reference
    ref = parse_reference(repository if ":" in repository.rsplit("/", 1)[-1] or "@" in repository
                          else repository + ":latest")
    if not ref.explicit_registry:
        raise click.UsageError(f"{repository}: name the registry (registry.example.com/{repository})")
    transport.check_plain_http(ref)
    names = sorted(transport.registry(ref.registry).list_tags(ref.repository))
    if as_json:
        emit_json({"registry": ref.registry, "repository": ref.repository, "tags": names})
        return
    for t in names:
        click.echo(t)

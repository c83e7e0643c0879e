"""Commands on one local store or file: inspect, list, show, rm, verify, prune."""

from __future__ import annotations

import json
import re
import sys

import click

from ..errors import OllamaOCIError, printable
from .app import CONTEXT, cli
from .common import (Progress, ago, emit_json, existing_store, human_size, json_option, local_store, model_name,
                     models_dir_option, oci_option, transport_options, warn)


def _looks_remote(text: str) -> bool:
    import os
    if os.path.exists(text) or "/" not in text:
        return False
    host = text.split("/", 1)[0]
    return host == "localhost" or "." in host or ":" in host


def _inspect_remote(text: str, transport, as_json: bool) -> None:
    """A registry artifact: its manifest, its layers, and which runtimes can use it."""
    from ..bridge import read_small
    from ..describe import artifact_format
    from ..digest import digest_bytes
    from ..reference import parse_reference
    from ..spec import parse_manifest
    ref = parse_reference(text)
    transport.check_plain_http(ref)
    repo, r = transport.registry(ref.registry).bind(ref)
    data, mt = repo.fetch_manifest(r)
    try:
        raw = json.loads(data)
    except ValueError:
        raw = {}
    fmt, runtimes = artifact_format(raw)
    config = None
    try:
        config = json.loads(read_small(repo, parse_manifest(data).config))
    except (OllamaOCIError, ValueError):
        pass      # not an image-style manifest, or a config too big or not JSON: shown without it
    doc = {"reference": str(ref), "mediaType": mt, "digest": str(digest_bytes(data)), "format": fmt,
           "runtimes": runtimes, "layers": raw.get("layers") if isinstance(raw, dict) else None,
           "config": config}
    if as_json:
        emit_json(doc)
        return
    click.echo(f"reference       {ref}")
    click.echo(f"digest          {doc['digest']}")
    click.echo(f"media type      {mt}")
    click.echo(f"format          {fmt}")
    click.echo(f"runtimes        {', '.join(runtimes) or '-'}")
    if isinstance(config, dict):
        for k in ("model_format", "model_family", "model_type", "file_type"):
            if config.get(k):
                click.echo(f"{k.replace('_', ' '):<15} {printable(str(config[k]), 200)}")
    for layer in doc["layers"] or []:
        if isinstance(layer, dict):
            click.echo(f"  {printable(str(layer.get('mediaType')), 80):<48} {str(layer.get('digest'))[7:19]}  "
                       f"{human_size(int(layer.get('size') or 0))}")


@cli.command(context_settings=CONTEXT)
@click.argument("gguf", metavar="GGUF|REF", type=click.Path(dir_okay=False))
@click.option("--tensors", is_flag=True, help="List every tensor (name, type, shape, offset, bytes).")
@click.option("--full-arrays", is_flag=True, help="With --json: include every array element (large!).")
@transport_options
@json_option
def inspect(gguf: str, tensors: bool, full_arrays: bool, transport, as_json: bool) -> None:
    """Show what a GGUF header says, and what Ollama will make of it; or, for a registry reference,
    what the artifact there is and which runtimes can use it.

    Reads only the header (no tensor data), so it is fast on any size of model.
    The --json schema is documented in docs/cli.md ("ollama-oci.inspect/v1").

    \b
    Examples:
      ollama-oci inspect model.gguf
      ollama-oci inspect registry.example.com/ml/gemma3:270m
    """
    if _looks_remote(gguf):
        return _inspect_remote(gguf, transport, as_json)
    from ..gguf_report import report_json, report_lines   # what the console script also answers alone
    if as_json:
        emit_json(report_json(gguf, tensors=tensors, full_arrays=full_arrays))
        return
    click.echo("\n".join(report_lines(gguf, tensors=tensors)))


@cli.command("list", context_settings=CONTEXT)
@models_dir_option
@oci_option
@json_option
def list_cmd(models_dir, oci_layout, as_json) -> None:
    """List the models in a store (like `ollama list`)."""
    store = existing_store(models_dir, oci_layout)
    entries = store.list()
    if as_json:
        emit_json({"store": store.describe(), "models": [e.to_json() for e in entries]})
        return
    rows = [("NAME", "ID", "SIZE", "MODIFIED")] + [
        (e.name.display, e.manifest_digest.short, human_size(e.size), ago(e.modified)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo(f"{r[0]:<{widths[0]}}    {r[1]:<{widths[1]}}    {r[2]:<{widths[2]}}    {r[3]}")


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("--modelfile", is_flag=True, help="Print a Modelfile that rebuilds the model.")
@models_dir_option
@oci_option
@json_option
def show(name, modelfile, models_dir, oci_layout, as_json) -> None:
    """Show a model's layers, config, parameters and texts."""
    from ..describe import describe_model, modelfile_text
    from ..params import param_to_text
    store = local_store(models_dir, oci_layout)
    n = model_name(name)
    if modelfile:
        text = modelfile_text(store, n)
        # to a file, byte for byte; to a terminal, no control characters from the model's texts
        click.echo(text if not sys.stdout.isatty() else "\n".join(printable(x, len(x) + 1)
                                                                  for x in text.split("\n")), nl=False)
        return
    d = describe_model(store, n)
    if as_json:
        emit_json(d.to_json())
        return
    details, texts, manifest = d.details, d.texts, d.manifest
    click.echo(f"  Model {n.display}  (id {d.manifest_digest.short}, {human_size(manifest.size)})")
    if details:
        click.echo(f"    architecture        {printable(str(details['architecture']))}")
        click.echo(f"    parameters          {details['parameters']}")
        if details["context_length"]:
            click.echo(f"    context length      {details['context_length']}")
        if details["embedding_length"]:
            click.echo(f"    embedding length    {details['embedding_length']}")
        click.echo(f"    quantization        {printable(str(details['quantization']))}")
    if d.template_source:
        click.echo("    template            " + ("derived from the GGUF chat template"
                                                if d.template_source == "derived" else "given"))
    if d.template_selection:
        click.echo("\n  Template Ollama uses")
        for sel in d.template_selection:
            click.echo(f"    {'Ollama ' + sel['ollama']:<41} {sel['source']}: {printable(sel['why'], 300)}")
    click.echo("\n  Layers")
    for l in manifest.layers:
        click.echo(f"    {l.kind:<10} {l.digest}  {human_size(l.size)}")
    click.echo(f"    {'config':<10} {manifest.config.digest}  {manifest.config.size} B")
    params = texts.get("params")
    if isinstance(params, dict) and params:
        click.echo("\n  Parameters")
        for k, v in sorted(params.items()):
            for item in (v if isinstance(v, list) else [v]):
                shown = param_to_text(item) if not isinstance(item, str) else json.dumps(item)
                click.echo(f"    {printable(str(k), 100):<20} {printable(shown, 1000)}")
    if texts.get("system"):
        click.echo("\n  System")
        for line in texts["system"].splitlines()[:10]:
            click.echo(f"    {printable(line, 1000)}")
    for lic in texts["licenses"]:
        click.echo("\n  License")
        for line in lic.splitlines()[:3]:
            click.echo(f"    {printable(line, 1000)}")


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@models_dir_option
@oci_option
@click.option("--remote", is_flag=True,
              help="NAMES are registry references: delete those manifests in the registry (where it allows "
                   "deletes; its blobs are left to its garbage collection).")
@transport_options
@json_option
def rm(names, models_dir, oci_layout, remote, transport, as_json) -> None:
    """Remove models. Blobs still used by another model are kept.

    \b
    Examples:
      ollama-oci rm mymodel:q4
      ollama-oci rm --remote registry.example.com/team/model:old
    """
    if remote:
        from ..reference import parse_destination
        done = []
        for name in names:
            ref = parse_destination(name)
            transport.check_plain_http(ref)
            repo, r = transport.registry(ref.registry).bind(ref)
            repo.delete(r)
            done.append(str(ref))
            if not as_json:
                click.echo(f"deleted {ref} in the registry")
        if as_json:
            emit_json({"removed": [{"reference": d} for d in done]})
        return
    store = local_store(models_dir, oci_layout)
    report = []
    for name in names:
        n = model_name(name)
        deleted = store.remove(n, warn=warn)
        report.append({"name": n.display, "deleted_blobs": [str(d) for d in deleted]})
        if not as_json:
            click.echo(f"deleted '{n.display}' ({len(deleted)} blob{'s' if len(deleted) != 1 else ''} freed)")
    if as_json:
        emit_json({"removed": report})


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True, help="Check presence and sizes only; do not re-hash blobs.")
@models_dir_option
@oci_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when all is well (problems still go to stderr).")
@click.option("--repair", "repair_from", metavar="REF",
              help="Fetch the damaged or missing blobs of the model again from this registry reference, then "
                   "check again (one model: give its NAME, or let REF name it).")
@transport_options
@json_option
def verify(names, quick, models_dir, oci_layout, quiet, repair_from, transport, as_json) -> None:
    """Check that every blob of every model (or of NAMES) is present and intact.

    Re-hashes each blob once, even when several models share it. Exits with 5
    when something is wrong, listing each problem. With --repair REF, a damaged
    model's blobs are fetched again from REF (only those that fail the check).

    \b
    Examples:
      ollama-oci verify
      ollama-oci verify gemma3:270m --repair registry.internal/ml/gemma3:270m
    """
    store = existing_store(models_dir, oci_layout)
    targets = [model_name(n) for n in names] if names else None
    repaired = []
    if repair_from:
        from ..engine import CopyOptions, copy
        from ..reference import parse_reference
        src = parse_reference(repair_from)
        transport.check_plain_http(src)
        if targets is None:
            targets = [src.to_model_name()]
        if len(targets) != 1:
            raise click.UsageError("--repair mends one model: give one NAME")
        _, found = store.verify(targets, rehash=not quick)
        if found:
            with Progress(not quiet and not as_json) as prog:
                report = copy(transport.registry(src.registry), src, store, targets[0],
                              CopyOptions(concurrency=transport.concurrency, progress=prog, verify_existing=True))
            repaired = [str(b.digest) for b in report.blobs if b.transferred]
    prog = Progress(not quiet and not as_json)
    try:
        entries, problems = store.verify(targets, rehash=not quick,
                                         progress=prog)
    finally:
        prog.close()
    if repaired and not as_json and not quiet:
        click.echo(f"repaired {len(repaired)} blob{'s' if len(repaired) != 1 else ''} from {repair_from}")
    if as_json:
        emit_json({"store": store.describe(), "checked": [e.name.display for e in entries],
                    "ok": not problems, "problems": [p.to_json() for p in problems], "repaired": repaired})
    else:
        for p in problems:
            click.echo(f"{p.model}: {p.kind}: {p.digest} {p.detail}", err=True)
        if not problems and not quiet:
            click.echo(f"ok: {len(entries)} model{'s' if len(entries) != 1 else ''} verified"
                       f"{' (sizes only)' if quick else ''}")
    if problems:
        from ..errors import EXIT_INTEGRITY
        sys.exit(EXIT_INTEGRITY)


@cli.command(context_settings=CONTEXT)
@click.option("--grace", default="1h", show_default=True,
              help="Only files older than this (e.g. 30m, 2h, 0): blobs of a pack or pull still running stay.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@models_dir_option
@oci_option
@json_option
def prune(grace, dry_run, models_dir, oci_layout, as_json) -> None:
    """Delete blobs no model uses, and leftovers of interrupted packs and pulls.

    Refuses to delete anything while a manifest in the store cannot be read.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", grace.strip())
    if not m:
        raise click.BadParameter(f"{grace!r} is not a duration like 30m, 2h or 0", param_hint="--grace")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    store = existing_store(models_dir, oci_layout)
    removed, freed = store.prune(grace=seconds, dry_run=dry_run)
    if as_json:
        emit_json({"store": store.describe(), "dry_run": dry_run, "removed": removed, "bytes": freed})
        return
    for p in removed:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {p}")
    click.echo(f"{len(removed)} file{'s' if len(removed) != 1 else ''}, {human_size(freed)}"
               f"{' would be freed' if dry_run else ' freed'}")


cli.add_command(list_cmd, "ls")   # the short name people type after docker, oras, ollama

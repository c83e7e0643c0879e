"""Commands that move models between places: copy, export, import, volume, mirror."""

from __future__ import annotations

import sys

import click

from .app import CONTEXT, cli
from .common import (Progress, conversion_params_option, copy_report, destination, dry_run_option, emit_json,
                     human_size, json_option, local_store, model_name, models_dir_option, oci_option, parse_size,
                     plan_report, quiet_option, transport_options, warn)


@cli.command("copy", context_settings=CONTEXT)
@click.argument("src")
@click.argument("dst")
@models_dir_option
@click.option("--format", "manifest_format", type=click.Choice(["keep", "oci"]), default="keep", show_default=True,
              help="oci: write the manifest as an OCI image manifest.")
@click.option("--chunk-size", help="Upload in PATCH chunks of this size (e.g. 4M).")
@click.option("--to-ollama", is_flag=True,
              help="Turn a ModelPack or Docker model artifact into an Ollama model at DST (automatic when DST is "
                   "ollama:); inside one registry the weights are mounted, not uploaded.")
@click.option("--as", "as_format", type=click.Choice(["modelpack", "docker"]),
              help="Write a CNCF ModelPack or Docker Model Runner twin of the Ollama model SRC at DST (a registry "
                   "or oci:DIR:NAME), sharing the weight blob; Ollama-only layers are not carried.")
@conversion_params_option
@dry_run_option
@transport_options
@quiet_option
@json_option
def copy_cmd(src, dst, models_dir, manifest_format, chunk_size, to_ollama, as_format, params, dry_run, transport,
             quiet, as_json) -> None:
    """Copy a model between any two places, moving only what is missing.

    SRC and DST are each one of: a registry reference; oci:DIR[:NAME] (an OCI
    layout); ollama:NAME (the model store, see --models-dir); FILE.tar or
    FILE.tar.zst[:NAME] (a bundle). Digests are preserved, every blob is
    verified, and the manifest is written last. -u/--password-stdin are for the
    destination registry (or the source one, when the destination is local).

    \b
    Examples:
      ollama-oci copy ollama:gemma3:270m registry.example.com/ml/gemma3:270m
      ollama-oci copy registry.example.com/ml/gemma3:270m oci:./layout
      ollama-oci copy oci:./layout:gemma3:270m ollama:
      ollama-oci copy ollama:gemma3:270m ./gemma3.tar.zst
      ollama-oci copy ollama:gemma3:270m registry.example.com/ml/gemma3:270m-modelpack --as modelpack
    """
    from ..engine import CopyOptions
    from ..endpoints import parse_endpoint
    from ..places import copy_places
    s, d = parse_endpoint(src), parse_endpoint(dst)
    if d.kind == "registry":
        destination(dst)
    transport.check_plain_http(*(e.ref for e in (s, d) if e.kind == "registry"))
    login_for = d.ref.registry if d.kind == "registry" else s.ref.registry if s.kind == "registry" else None
    registries = transport.registries(credentials_for=login_for, chunk_size=parse_size(chunk_size))
    if dry_run:
        if as_format:
            raise click.UsageError("--dry-run does not plan a --as twin yet; run without it (only missing blobs move)")
        if "bundle" in (s.kind, d.kind):
            raise click.UsageError("--dry-run compares two stores; for a bundle, list it with tar -tf")
        from ..engine import plan_copy
        from ..places import open_place, only_model
        sstore, sref = open_place(s, models_dir=models_dir, registries=registries)
        sref = sref if sref is not None else only_model(sstore, s)
        dstore, dref = open_place(d, models_dir=models_dir, registries=registries)
        dref = dref if dref is not None else d.name_or(s) if d.kind != "registry" else dref
        return plan_report(plan_copy(sstore, sref, dstore, dref if dref is not None else sref,
                                     manifest_format=manifest_format), as_json, quiet)
    with Progress(not quiet and not as_json) as prog:
        from ..build import params_from_options
        report = copy_places(src, dst, models_dir=models_dir, registries=registries, warn=warn, to_ollama=to_ollama,
                             as_format=as_format, params=params_from_options(params, warn=warn) if params else None,
                             options=CopyOptions(concurrency=transport.concurrency, progress=prog,
                                                 manifest_format=manifest_format))
    if hasattr(report, "manifest_digest"):
        copy_report(report, as_json, "copied to", quiet)
    elif as_json:
        emit_json(report.to_json())
    elif quiet:
        return
    elif d.kind == "bundle":
        click.echo(f"exported {report.models[0]['name']} to {d.path} ({human_size(report.file_size)})")
    else:
        click.echo(f"imported {', '.join(m['name'] for m in report.models)} from {s.path}")


@cli.command("export", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The bundle file: NAME.tar, or NAME.tar.zst to compress with zstd.")
@click.option("--level", type=click.IntRange(1, 22), default=3, show_default=True, help="zstd level.")
@models_dir_option
@oci_option
@quiet_option
@json_option
def export_cmd(names, output, level, models_dir, oci_layout, quiet, as_json) -> None:
    """Write models into one offline bundle file (blobs shared between them stored once).

    The bundle is an OCI image layout in a tar (skopeo reads it as oci-archive:),
    zstd-compressed when the name ends in .tar.zst. Move it anywhere, then
    `ollama-oci import` it into a model store or straight into a registry.
    """
    from ..bundle import export_bundle
    store = local_store(models_dir, oci_layout)
    with Progress(not quiet and not as_json) as prog:
        report = export_bundle(store, [model_name(n) for n in names], output, level=level, progress=prog)
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        click.echo(f"exported {len(report.models)} model{'s' if len(report.models) != 1 else ''}, "
                   f"{report.blobs} blobs, to {output} ({human_size(report.file_size)})")


@cli.command("import", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True))
@click.argument("names", nargs=-1)
@click.option("--to", "to_registry", metavar="REGISTRY[/NAMESPACE]",
              help="Push into this registry instead of a local store (models keep their names; NAMESPACE "
                   "replaces theirs).")
@models_dir_option
@oci_option
@dry_run_option
@transport_options
@quiet_option
@json_option
def import_cmd(bundle, names, to_registry, models_dir, oci_layout, dry_run, transport, quiet, as_json) -> None:
    """Import models (all, or NAMES) from a bundle into the store, an OCI layout or a registry.

    Every blob is checked against its digest while it streams; if anything is
    wrong nothing becomes visible (no blob, no model).
    """
    from ..bundle import import_bundle
    from ..reference import Reference
    if dry_run:
        from ..bundle import plan_import
        if to_registry:
            registry, _, ns = to_registry.partition("/")
            plan = plan_import(bundle, transport.registry(registry), names=list(names) or None,
                               dst_ref_for=lambda n: Reference(registry, f"{ns or n.namespace}/{n.model}", n.tag))
        else:
            plan = plan_import(bundle, local_store(models_dir, oci_layout), names=list(names) or None)
        missing = sum(b["size"] for m in plan for b in m["blobs"] if b["action"] == "missing")
        if as_json:
            emit_json({"dry_run": True, "bundle": bundle, "models": plan, "bytes_to_transfer": missing})
        elif not quiet:
            for m in plan:
                n = sum(1 for b in m["blobs"] if b["action"] == "missing")
                click.echo(f"dry run: {m['name']} -> {m['destination']}: {n} of {len(m['blobs'])} blobs would move")
            click.echo(f"  {human_size(missing)} in all")
        return
    with Progress(not quiet and not as_json) as prog:
        if to_registry:
            registry, _, ns = to_registry.partition("/")
            dst = transport.registry(registry)

            def ref_for(n):
                return Reference(registry, f"{ns or n.namespace}/{n.model}", n.tag)
            report = import_bundle(bundle, dst, names=list(names) or None, progress=prog, dst_ref_for=ref_for)
        else:
            report = import_bundle(bundle, local_store(models_dir, oci_layout), names=list(names) or None,
                                   progress=prog)
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        for m in report.models:
            click.echo(f"imported {m['name']} ({m['manifest_digest'][7:19]})")


@cli.command(context_settings=CONTEXT)
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Resolve everything and report what would move; copy nothing.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Models at once (overrides the plan).")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Retries per request on connection errors, 429 and 5xx.")
@json_option
def mirror(plan, dry_run, concurrency, retries, as_json) -> None:
    """Mirror the models a plan file names from one registry to another.

    Idempotent: a second run of an unchanged plan moves no blob bytes (one
    manifest check per model). One model's failure does not stop the others;
    the exit code is then non-zero and the failures are named on stderr.
    Plan format: docs/cli.md ("mirror").
    """
    from ..mirror import load_plan, run_plan
    p = load_plan(plan)
    if concurrency:
        p.concurrency = concurrency

    def show(rep):
        if as_json:
            return
        extra = (f"{human_size(rep.get('bytes_transferred', rep.get('bytes_to_transfer', 0)))}"
                 if rep["status"] != "failed" else rep["error"])
        click.echo(f"{rep['status']:<11} {rep['source']} -> {rep['target']}  {extra}")
    results = run_plan(p, dry_run=dry_run, retries=retries, on_result=show)
    failed = [r for r in results if r["status"] == "failed"]
    if as_json:
        emit_json({"plan": plan, "dry_run": dry_run, "ok": not failed, "models": results,
                   "bytes_transferred": sum(r.get("bytes_transferred", 0) for r in results)})
    if failed:
        click.echo(f"error: {len(failed)} of {len(results)} failed: "
                   + "; ".join(f"{r['source']} ({r['error']})" for r in failed), err=True)
        sys.exit(failed[0]["exit_code"])


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("--to", "dest", required=True, metavar="REF|oci:DIR:NAME",
              help="Where the image goes: a registry reference, or an OCI layout.")
@click.option("--zstd", is_flag=True, help="Compress the layer with zstd (tar+zstd media type).")
@click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]",
              help="The image's platform (default linux/amd64); repeat (or comma-separate) for an image index "
                   "that serves nodes of every platform from the same layer.")
@click.option("--rebuild", is_flag=True,
              help="Send the layer even when the same models' layer is already in the registry.")
@models_dir_option
@oci_option
@transport_options
@quiet_option
@json_option
def volume(names, dest, zstd, platforms, rebuild, models_dir, oci_layout, transport, quiet, as_json) -> None:
    """Build an OCI image holding an Ollama models/ tree of NAMES, for Kubernetes image volumes.

    Mount the image read-only at the server's OLLAMA_MODELS (with
    OLLAMA_NOPRUNE=1), or copy it from an init container: the server starts
    with the models in place and downloads nothing. The layer is generated on
    the fly and streamed to the registry; the GGUF is not staged on disk again.
    The layer is reproducible: building the same models again sends no layer
    bytes when the registry has it. See docs/deploy.md.

    \b
    Examples:
      ollama-oci volume gemma3:270m --to registry.example.com/ml/gemma3-volume:270m
      ollama-oci volume gemma3:270m qwen3:0.6b --zstd --to oci:./volume:models:v1
      ollama-oci volume gemma3:270m --platform linux/amd64,linux/arm64 --to registry.example.com/ml/vol:270m
    """
    from ..endpoints import parse_endpoint
    from ..places import open_place
    from ..volume import build_volume_image
    src = local_store(models_dir, oci_layout)
    ep = parse_endpoint(dest)
    if ep.kind not in ("registry", "oci"):
        raise click.UsageError("--to must be a registry reference or oci:DIR:NAME")
    if ep.kind == "oci" and ep.ref is None:
        raise click.UsageError("--to oci:DIR:NAME needs a NAME for the image")
    if ep.kind == "registry":
        transport.check_plain_http(destination(dest, "--to"))
    registries = transport.registries(credentials_for=ep.ref.registry if ep.kind == "registry" else None)
    dst, ref = open_place(ep, registries=registries)
    with Progress(not quiet and not as_json) as prog:
        plats = [p for item in platforms for p in item.split(",") if p.strip()] or None
        report = build_volume_image(src, [model_name(n) for n in names], dst, ref, zstd=zstd, progress=prog,
                                    platforms=plats, reuse=not rebuild)
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        click.echo(f"built {dest} ({report.manifest_digest}): layer {human_size(report.layer_size)}"
                   f"{' zstd' if zstd else ''} ({'already there, not sent' if report.layer_action == 'exists' else 'sent'}), "
                   f"models {', '.join(report.models)}, {' '.join(report.platforms)}")


cli.add_command(copy_cmd, "cp")   # the short name people type after docker, oras, ollama

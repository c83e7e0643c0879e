"""``ollama-oci pack``: build a model from a GGUF (and a Modelfile) into stores."""

from __future__ import annotations

import click

from .app import CONTEXT, cli
from .common import Progress, emit_json, given, human_size, json_option, model_name, models_dir_option, warn


@cli.command(context_settings=CONTEXT)
@click.argument("gguf", required=False, type=click.Path(dir_okay=False))
@click.option("-f", "--file", "modelfile", type=click.Path(dir_okay=False, exists=True),
              help="A Modelfile (ollama's grammar). A GGUF argument replaces its FROM lines.")
@click.option("-n", "--name", help="Model name, e.g. mymodel:q4 (default: from the GGUF file name).")
@click.option("--template", type=click.Path(dir_okay=False, exists=True), help="File with the Go template (TEMPLATE).")
@click.option("--system", type=click.Path(dir_okay=False, exists=True), help="File with the system prompt (SYSTEM).")
@click.option("--license", "licenses", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="License file (LICENSE); repeat for several.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A PARAMETER, e.g. temperature=0.7 or stop='<|end|>'; repeat for several.")
@click.option("--message", "messages", multiple=True, metavar="ROLE=TEXT",
              help="A MESSAGE (role system, user or assistant); repeat for a conversation.")
@click.option("--adapter", "adapters", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A LoRA adapter GGUF (ADAPTER).")
@click.option("--requires", help="Minimum ollama version (REQUIRES), e.g. 0.14.0.")
@models_dir_option
@click.option("--oci-layout", "oci_layouts", multiple=True, metavar="DIR",
              help="Also (or only) write into this OCI image layout; repeatable.")
@click.option("--link-mode", type=click.Choice(["auto", "reflink", "hardlink", "copy"]), default="auto",
              show_default=True, help="How the GGUF enters a store on the same filesystem.")
@click.option("--strict", is_flag=True,
              help="Refuse a GGUF that Ollama's loader cannot read (big-endian, GGUF v1, arrays of arrays) "
                   "instead of packing it with a warning.")
@click.option("--template-mode", type=click.Choice(["auto", "go", "gguf"]), default="auto", show_default=True,
              help="auto: derive a Go template from the GGUF's Jinja chat template when none is given (none if it "
                   "cannot be derived, with a warning); go: a Go template or an error; gguf: no template layer, "
                   "so Ollama >= 0.30 renders the GGUF's own chat template (older versions: the raw prompt).")
@click.option("--no-auto-template", is_flag=True, help="The same as --template-mode gguf.")
@click.option("--legacy-rootfs", is_flag=True,
              help="Write the config as ollama <= 0.32.6 did (with rootfs), as on registry.ollama.ai.")
@click.option("--also", "also", multiple=True, type=click.Choice(["modelpack", "docker"]),
              help="Also tag a CNCF ModelPack or Docker model twin in each --oci-layout, as NAME's tag plus "
                   "-modelpack / -docker, sharing the blobs (docs/formats.md); repeatable.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing on success (warnings and errors still go to stderr).")
@json_option
def pack(gguf, modelfile, name, template, system, licenses, params, messages, adapters, requires,
         models_dir, oci_layouts, link_mode, template_mode, no_auto_template, legacy_rootfs, also, quiet, as_json,
         strict) -> None:
    """Build an Ollama model from a GGUF file (and optionally a Modelfile).

    Writes the GGUF, template, system, params, messages and license layers, the
    config and the manifest exactly as `ollama create` would, into the Ollama
    model store (so `ollama list` and `ollama run` see it) and/or OCI layouts.
    On the same filesystem the GGUF is reflinked or hard-linked, not copied.

    \b
    Examples:
      ollama-oci pack model.gguf --name mymodel:q4 -p temperature=0.7
      ollama-oci pack -f Modelfile --name team/model:1.0 --oci-layout ./out
      ollama-oci pack model.gguf --models-dir /srv/ollama/models --json
    """
    from ..build import default_name, pack as build_pack, recipe_for
    from ..stores import OCILayout, OllamaStore, default_models_dir
    if not gguf and not modelfile:
        raise click.UsageError("give a GGUF file, a Modelfile (-f), or both")
    recipe = recipe_for(gguf, modelfile, template_file=template, system_file=system, license_files=licenses,
                        params=params, messages=messages, adapters=adapters, requires=requires,
                        auto_template=not no_auto_template, warn=warn)
    recipe.template_mode = template_mode
    mname = model_name(name) if name else default_name(recipe)
    if mname.namespace != mname.namespace.lower() or mname.model != mname.model.lower():
        warn(f"{mname.display}: Ollama matches names in any case, but registries take repository names in "
             "lower case only: push it under a lower-case REF")
    if also and not oci_layouts:
        raise click.UsageError("--also tags twins in an OCI layout (--oci-layout DIR); the Ollama store holds only "
                               "Ollama models (or use push --also)")
    stores = []
    if given("models_dir") or not oci_layouts:
        stores.append(OllamaStore(models_dir or default_models_dir()))
    layouts = [OCILayout(d) for d in oci_layouts]
    stores.extend(layouts)
    with Progress(not quiet and not as_json) as prog:
        result = build_pack(recipe, mname, stores, legacy_rootfs=legacy_rootfs, link_mode=link_mode,
                            progress=prog, warn=warn, strict=strict)
    twins = []
    if also:
        from ..twin import make_twins, publish_twin
        # made once (one header read), tagged in every layout, each holding the model's blobs
        made = make_twins(layouts[0], mname, list(dict.fromkeys(also)), name=mname.model)
        for layout in layouts:
            for twin in made:
                dst = mname.with_tag(f"{mname.tag}-{twin.format}")
                publish_twin(twin, layout, mname, layout, dst)
                twins.append({"layout": layout.root, "name": dst.display, "format": twin.format,
                              "manifest_digest": str(twin.manifest_digest),
                              "not_carried": [k for k, _, _ in twin.not_carried]})
    if as_json:
        doc = result.to_json()
        if twins:
            doc["twins"] = twins
        emit_json(doc)
        return
    if quiet:
        return
    click.echo(f"packed {result.name.display} ({human_size(result.manifest.size)}, "
               f"id {result.manifest_digest[7:19]})")
    for l in result.manifest.layers:
        click.echo(f"  {l.kind:<10} {l.digest[7:19]}  {human_size(l.size)}")
    for s in result.stores:
        click.echo(f"  -> {s}")
    for sel in result.template_selection:
        click.echo(f"  template for Ollama {sel['ollama']}: {sel['source']}")
    for t in twins:
        click.echo(f"  {t['format']} twin {t['name']} in {t['layout']} (not carried: "
                   f"{', '.join(t['not_carried']) or 'nothing'})")

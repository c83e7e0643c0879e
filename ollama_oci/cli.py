"""The ``ollama-oci`` command line: a thin layer over the library.

Commands gather options, call the library and format what it returns; they
decide nothing.  Errors from the library become one line on stderr and the exit
code of their type (see :mod:`ollama_oci.errors` and docs/cli.md); ``-v`` adds
the traceback.
"""

from __future__ import annotations

import json
import logging
import threading
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Optional

import click

from ._version import __version__
from .errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_IO, EXIT_USAGE, InvalidInput, NotFound,
                     OllamaOCIError)

if TYPE_CHECKING:
    from .names import ModelName

# The library is imported by each command as it needs it: `ollama-oci push` never loads the
# GGUF reader, `ollama-oci inspect` never loads requests.

log = logging.getLogger("ollama_oci")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- output helpers ---------------------------------------------------------------------------

def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def _human_size(n: int) -> str:
    # ollama list uses decimal units
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _ago(ts: float) -> str:
    d = max(0, time.time() - ts)
    for unit, s in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= s:
            k = int(d // s)
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return "just now"


class _Progress:
    """Progress bars on stderr when it is a terminal; silent otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.lock = threading.Lock()   # events arrive from the threads moving blobs
        self.bars: dict[str, Any] = {}
        self.last: dict[str, int] = {}

    def __call__(self, ev) -> None:
        """Draw a :class:`~ollama_oci.progress.ProgressEvent` (one bar per blob or file)."""
        if not self.enabled:
            return
        with self.lock:
            self._draw(ev.label, ev.done, ev.total)

    def _draw(self, label: str, done: int, total: int) -> None:
        bar = self.bars.get(label)
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label=label[:40], file=sys.stderr,
                                    show_eta=True, show_percent=True, width=30)
            bar.__enter__()
            self.bars[label] = bar
            self.last[label] = 0
        bar.update(done - self.last[label])
        self.last[label] = done
        if done >= total:
            bar.__exit__(None, None, None)

    def close(self) -> None:
        for label, bar in self.bars.items():
            if self.last.get(label, 0) < bar.length:
                bar.__exit__(None, None, None)
        self.bars.clear()


# -- shared options -----------------------------------------------------------------------------

def _models_dir_option(f):
    return click.option("--models-dir", metavar="DIR", envvar="OLLAMA_MODELS", show_envvar=True,
                        help="Ollama model store (default: $OLLAMA_MODELS or ~/.ollama/models).")(f)


def _oci_option(f):
    return click.option("--oci-layout", "oci_layout", metavar="DIR",
                        help="Use an OCI image layout directory instead of the Ollama model store.")(f)


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(f)


def _explicit(param: str) -> bool:
    """Whether an option was given on the command line (not from its environment variable)."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE


def _store(models_dir: Optional[str], oci_layout: Optional[str]):
    from .stores import OCILayout, OllamaStore, default_models_dir
    if oci_layout and models_dir and _explicit("models_dir"):
        raise click.UsageError("give either --models-dir or --oci-layout, not both")
    if oci_layout:
        return OCILayout(oci_layout)
    return OllamaStore(models_dir or default_models_dir())


def _name(value: str) -> ModelName:
    from .names import parse_name
    return parse_name(value)


# -- the group ----------------------------------------------------------------------------------

@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="ollama-oci")
@click.option("-v", "--verbose", count=True, help="Log more (-v: info and tracebacks, -vv: debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Build Ollama models from GGUF files without ollama, and manage model stores.

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


# -- inspect ------------------------------------------------------------------------------------

def _kv_json(kv, full_arrays: bool) -> dict:
    from .gguf_header import GGUFArray
    v = kv.value
    if isinstance(v, GGUFArray):
        d: dict[str, Any] = {"type": "ARRAY", "elem_type": v.elem_type_name, "len": len(v)}
        if full_arrays or len(v) <= 64:
            d["value"] = _plain(v.to_list())
        else:
            d["head"] = _plain([x.to_list() if isinstance(x, GGUFArray) else x for x in v[:8]])
        return d
    return {"type": kv.type_name, "value": _plain(v)}


def _plain(v):
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _kv_text(kv, width: int = 100) -> str:
    from .gguf_header import GGUFArray
    v = kv.value
    if isinstance(v, GGUFArray):
        head = [x.to_list() if isinstance(x, GGUFArray) else x for x in v[:5]]
        more = ", ..." if len(v) > 5 else ""
        s = f"[{v.elem_type_name} x {len(v)}] {json.dumps(_plain(head), ensure_ascii=False)[:-1]}{more}]"
    elif isinstance(v, str):
        s = json.dumps(_plain(v), ensure_ascii=False)
    else:
        s = str(v).lower() if isinstance(v, bool) else str(v)
    return s if len(s) <= width else s[: width - 3] + "..."


@cli.command(context_settings=CONTEXT)
@click.argument("gguf", type=click.Path(dir_okay=False))
@click.option("--tensors", is_flag=True, help="List every tensor (name, type, shape, offset, bytes).")
@click.option("--full-arrays", is_flag=True, help="With --json: include every array element (large!).")
@_json_option
def inspect(gguf: str, tensors: bool, full_arrays: bool, as_json: bool) -> None:
    """Show what a GGUF header says, and what Ollama will make of it.

    Reads only the header (no tensor data), so it is fast on any size of model.
    The --json schema is documented in docs/cli.md ("ollama-oci.inspect/v1").
    """
    from .gguf_header import read_gguf
    from .modelinfo import model_info
    with read_gguf(gguf) as g:
        info = model_info(g)
        if as_json:
            doc = {
                "schema": "ollama-oci.inspect/v1",
                "path": gguf,
                "size": g.file_size,
                "gguf_version": g.version,
                "byte_order": g.byte_order,
                "alignment": g.alignment,
                "header_end": g.header_end,
                "data_offset": g.data_offset,
                **info.to_json(),
                "metadata": {k: _kv_json(kv, full_arrays) for k, kv in g.kv.items()},
            }
            if tensors:
                doc["tensors"] = [{"name": t.name, "type": t.type_name, "shape": list(t.shape),
                                   "offset": t.offset, "n_elements": t.n_elements, "n_bytes": t.n_bytes}
                                  for t in g.tensors]
            _emit_json(doc)
            return
        rows = [
            ("file", f"{gguf} ({g.file_size:,} bytes)"),
            ("format", f"GGUF v{g.version}, {g.byte_order}-endian, alignment {g.alignment}"),
            ("architecture", info.architecture),
            ("kind", info.kind),
            ("parameters", f"{info.parameter_count:,} ({info.model_type})"),
            ("file type", f"{info.file_type}" + (f" ({info.file_type_id})" if info.file_type_id is not None else "")),
            ("context length", str(info.context_length) if info.context_length is not None else "-"),
            ("tensors", f"{info.tensor_count}" + (
                " (" + ", ".join(f"{k} {v}" for k, v in info.tensor_types.items()) + ")" if info.tensor_types else "")),
            ("chat template", f"yes ({len(info.chat_template)} chars)" if info.chat_template else "no"),
        ]
        if info.split:
            rows.append(("split", f"shard {info.split.index + 1} of {info.split.count}"))
        for k, v in rows:
            click.echo(f"{k:<15} {v}")
        click.echo(f"\nmetadata ({len(g.kv)} keys):")
        for k, kv in g.kv.items():
            click.echo(f"  {k} = {_kv_text(kv)}")
        if tensors:
            click.echo(f"\ntensors ({len(g.tensors)}):")
            for t in g.tensors:
                shape = "x".join(map(str, t.shape)) or "scalar"
                click.echo(f"  {t.name:<40} {t.type_name:<8} {shape:<20} offset {t.offset:>12} "
                           f"bytes {t.n_bytes if t.n_bytes is not None else '?'}")


# -- pack ---------------------------------------------------------------------------------------

def _read_text(path: str, what: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise NotFound(f"{what} file {path}: no such file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} file {path} is not UTF-8 text") from None


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
@_models_dir_option
@click.option("--oci-layout", "oci_layouts", multiple=True, metavar="DIR",
              help="Also (or only) write into this OCI image layout; repeatable.")
@click.option("--link-mode", type=click.Choice(["auto", "reflink", "hardlink", "copy"]), default="auto",
              show_default=True, help="How the GGUF enters a store on the same filesystem.")
@click.option("--no-auto-template", is_flag=True,
              help="Do not derive a template from the GGUF's Jinja chat template when none is given.")
@click.option("--legacy-rootfs", is_flag=True,
              help="Write the config as ollama <= 0.32.6 did (with rootfs), as on registry.ollama.ai.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_json_option
def pack(gguf, modelfile, name, template, system, licenses, params, messages, adapters, requires,
         models_dir, oci_layouts, link_mode, no_auto_template, legacy_rootfs, quiet, as_json) -> None:
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
    from .build import Recipe, pack as build_pack, recipe_from_modelfile
    from .names import default_name_for_file
    from .params import format_params
    from .stores import OCILayout, OllamaStore, default_models_dir
    if not gguf and not modelfile:
        raise click.UsageError("give a GGUF file, a Modelfile (-f), or both")
    if modelfile:
        with open(modelfile, "rb") as f:
            text = f.read()
        src = text
        if gguf:
            # the positional GGUF replaces the Modelfile's FROM lines
            from .modelfile import Command, parse_modelfile
            mf = parse_modelfile(text)
            mf.commands = [c for c in mf.commands if c.name != "model"] + [Command("model", os.path.abspath(gguf))]
            src = mf
        recipe = recipe_from_modelfile(src, os.path.dirname(os.path.abspath(modelfile)), warn=_warn)
    else:
        recipe = Recipe(files=[gguf])
    if template:
        recipe.template = _read_text(template, "template")
    if system:
        recipe.system = _read_text(system, "system")
    for lic in licenses:
        recipe.licenses.append(_read_text(lic, "license"))
    if params:
        pairs = []
        for p in params:
            k, sep, v = p.partition("=")
            if not sep:
                raise click.BadParameter(f"{p!r} is not KEY=VALUE", param_hint="--param")
            pairs.append((k.strip(), v))
        extra = format_params(pairs, warn=_warn)
        for k, v in extra.items():
            if k == "stop" and k in recipe.params:
                recipe.params[k] = recipe.params[k] + v
            else:
                recipe.params[k] = v
    for m in messages:
        role, sep, text = m.partition("=")
        if not sep:
            raise click.BadParameter(f"{m!r} is not ROLE=TEXT", param_hint="--message")
        recipe.messages.append((role.strip(), text))
    recipe.adapters.extend(adapters)
    recipe.auto_template = not no_auto_template
    if requires:
        recipe.requires = requires[1:] if requires.startswith("v") else requires

    mname = _name(name) if name else _name(default_name_for_file(recipe.files[0] if recipe.files else "model"))
    stores = []
    if _explicit("models_dir") or not oci_layouts:
        stores.append(OllamaStore(models_dir or default_models_dir()))
    stores.extend(OCILayout(d) for d in oci_layouts)
    prog = _Progress(not quiet and not as_json)
    try:
        result = build_pack(recipe, mname, stores, legacy_rootfs=legacy_rootfs, link_mode=link_mode,
                            progress=prog, warn=_warn)
    finally:
        prog.close()
    if as_json:
        _emit_json(result.to_json())
        return
    click.echo(f"packed {result.name.display} ({_human_size(result.manifest.size)}, "
               f"id {result.manifest_digest[7:19]})")
    for l in result.manifest.layers:
        click.echo(f"  {l.kind:<10} {l.digest[7:19]}  {_human_size(l.size)}")
    for s in result.stores:
        click.echo(f"  -> {s}")


# -- list / show / rm / verify --------------------------------------------------------------------

@cli.command("list", context_settings=CONTEXT)
@_models_dir_option
@_oci_option
@_json_option
def list_cmd(models_dir, oci_layout, as_json) -> None:
    """List the models in a store (like `ollama list`)."""
    store = _store(models_dir, oci_layout)
    entries = store.list()
    if as_json:
        _emit_json({"store": store.describe(), "models": [e.to_json() for e in entries]})
        return
    rows = [("NAME", "ID", "SIZE", "MODIFIED")] + [
        (e.name.display, e.manifest_digest.short, _human_size(e.size), _ago(e.modified)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo(f"{r[0]:<{widths[0]}}    {r[1]:<{widths[1]}}    {r[2]:<{widths[2]}}    {r[3]}")


def _modelfile_text(store, name: ModelName, manifest, texts: dict) -> str:
    from .params import param_to_text
    from .spec import MT
    from .modelfile import quote_value
    lines = ['# Modelfile generated by "ollama-oci show"',
             "# To build a new Modelfile based on this, replace FROM with:",
             f"# FROM {name.display}", ""]
    for l in manifest.layers:
        if l.media_type == MT.MODEL:
            lines.append(f"FROM {store.find_blob(l.digest) or l.digest}")
    if "template" in texts:
        lines.append(f'TEMPLATE """{texts["template"]}"""')
    if "system" in texts:
        lines.append(f'SYSTEM """{texts["system"]}"""')
    for l in manifest.layers:
        if l.media_type == MT.ADAPTER:
            lines.append(f"ADAPTER {store.find_blob(l.digest) or l.digest}")
    for k, v in sorted((texts.get("params") or {}).items()):
        for item in (v if isinstance(v, list) else [v]):
            lines.append(f"PARAMETER {k} {quote_value(param_to_text(item))}")
    for lic in texts.get("licenses", []):
        lines.append(f'LICENSE """{lic}"""')
    for m in texts.get("messages") or []:
        lines.append(f"MESSAGE {m.get('role')} {quote_value(str(m.get('content', '')))}")
    return "\n".join(lines) + "\n"


def _read_texts(store, manifest) -> dict:
    from .spec import MT
    out: dict[str, Any] = {"licenses": []}
    limit = 16 << 20
    for l in manifest.layers:
        if l.media_type in (MT.TEMPLATE, MT.PROMPT):
            out["template"] = store.read_blob(l.digest, limit).decode("utf-8", "replace")
        elif l.media_type == MT.SYSTEM:
            out["system"] = store.read_blob(l.digest, limit).decode("utf-8", "replace")
        elif l.media_type == MT.LICENSE:
            out["licenses"].append(store.read_blob(l.digest, limit).decode("utf-8", "replace"))
        elif l.media_type == MT.PARAMS:
            out["params"] = json.loads(store.read_blob(l.digest, limit))
        elif l.media_type == MT.MESSAGES:
            out["messages"] = json.loads(store.read_blob(l.digest, limit))
    return out


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("--modelfile", is_flag=True, help="Print a Modelfile that rebuilds the model.")
@_models_dir_option
@_oci_option
@_json_option
def show(name, modelfile, models_dir, oci_layout, as_json) -> None:
    """Show a model's layers, config, parameters and texts."""
    from .gguf_header import read_gguf
    from .modelinfo import model_info
    from .params import param_to_text
    from .spec import MT
    store = _store(models_dir, oci_layout)
    n = _name(name)
    manifest, raw = store.get_manifest(n)
    config = store.get_config(manifest)
    texts = _read_texts(store, manifest)
    if modelfile:
        click.echo(_modelfile_text(store, n, manifest, texts), nl=False)
        return
    details: dict[str, Any] = {}
    model_layer = next((l for l in manifest.layers if l.media_type == MT.MODEL), None)
    if model_layer is not None:
        p = store.find_blob(model_layer.digest)
        if p is not None:
            with read_gguf(p) as g:
                info = model_info(g)
            details = {"architecture": info.architecture, "parameters": info.model_type,
                       "parameter_count": info.parameter_count, "context_length": info.context_length,
                       "embedding_length": info.embedding_length, "quantization": info.file_type}
    from .digest import digest_bytes
    source = None
    if texts.get("template") is not None:
        source = "given"
        if model_layer is not None and store.find_blob(model_layer.digest):
            from .build import derive_from_gguf
            try:
                d = derive_from_gguf(store.find_blob(model_layer.digest))
                if d is not None and d.template == texts["template"]:
                    source = "derived"
            except InvalidInput:
                pass
    if as_json:
        _emit_json({
            "name": n.display, "full_name": str(n), "store": store.describe(), "template_source": source,
            "manifest_digest": str(digest_bytes(raw)), "size": manifest.size,
            "config": config.to_go(), "details": details,
            "layers": [{"kind": l.kind, "mediaType": l.media_type, "digest": str(l.digest), "size": l.size,
                        **({"from": l.from_} if l.from_ else {})} for l in manifest.layers],
            "template": texts.get("template"), "system": texts.get("system"),
            "parameters": texts.get("params"), "messages": texts.get("messages"),
            "licenses": texts["licenses"],
        })
        return
    click.echo(f"  Model {n.display}  (id {digest_bytes(raw).short}, {_human_size(manifest.size)})")
    if details:
        click.echo(f"    architecture        {details['architecture']}")
        click.echo(f"    parameters          {details['parameters']}")
        if details["context_length"]:
            click.echo(f"    context length      {details['context_length']}")
        if details["embedding_length"]:
            click.echo(f"    embedding length    {details['embedding_length']}")
        click.echo(f"    quantization        {details['quantization']}")
    if source:
        click.echo(f"    template            {'derived from the GGUF chat template' if source == 'derived' else 'given'}")
    click.echo("\n  Layers")
    for l in manifest.layers:
        click.echo(f"    {l.kind:<10} {l.digest}  {_human_size(l.size)}")
    click.echo(f"    {'config':<10} {manifest.config.digest}  {manifest.config.size} B")
    if texts.get("params"):
        click.echo("\n  Parameters")
        for k, v in sorted(texts["params"].items()):
            for item in (v if isinstance(v, list) else [v]):
                click.echo(f"    {k:<20} {param_to_text(item) if not isinstance(item, str) else json.dumps(item)}")
    if texts.get("system"):
        click.echo("\n  System")
        for line in texts["system"].splitlines()[:10]:
            click.echo(f"    {line}")
    for lic in texts["licenses"]:
        click.echo("\n  License")
        for line in lic.splitlines()[:3]:
            click.echo(f"    {line}")


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@_models_dir_option
@_oci_option
@_json_option
def rm(names, models_dir, oci_layout, as_json) -> None:
    """Remove models. Blobs still used by another model are kept."""
    store = _store(models_dir, oci_layout)
    report = []
    for name in names:
        n = _name(name)
        deleted = store.remove(n, warn=_warn)
        report.append({"name": n.display, "deleted_blobs": [str(d) for d in deleted]})
        if not as_json:
            click.echo(f"deleted '{n.display}' ({len(deleted)} blob{'s' if len(deleted) != 1 else ''} freed)")
    if as_json:
        _emit_json({"removed": report})


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True, help="Check presence and sizes only; do not re-hash blobs.")
@_models_dir_option
@_oci_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_json_option
def verify(names, quick, models_dir, oci_layout, quiet, as_json) -> None:
    """Check that every blob of every model (or of NAMES) is present and intact.

    Re-hashes each blob once, even when several models share it. Exits with 5
    when something is wrong, listing each problem.
    """
    store = _store(models_dir, oci_layout)
    targets = [_name(n) for n in names] if names else None
    prog = _Progress(not quiet and not as_json)
    try:
        entries, problems = store.verify(targets, rehash=not quick,
                                         progress=prog)
    finally:
        prog.close()
    if as_json:
        _emit_json({"store": store.describe(), "checked": [e.name.display for e in entries],
                    "ok": not problems, "problems": [p.to_json() for p in problems]})
    else:
        for p in problems:
            click.echo(f"{p.model}: {p.kind}: {p.digest} {p.detail}", err=True)
        if not problems:
            click.echo(f"ok: {len(entries)} model{'s' if len(entries) != 1 else ''} verified"
                       f"{' (sizes only)' if quick else ''}")
    if problems:
        from .errors import EXIT_INTEGRITY
        sys.exit(EXIT_INTEGRITY)


@cli.command(context_settings=CONTEXT)
@click.option("--grace", default="1h", show_default=True,
              help="Only files older than this (e.g. 30m, 2h, 0): blobs of a pack or pull still running stay.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@_models_dir_option
@_oci_option
@_json_option
def prune(grace, dry_run, models_dir, oci_layout, as_json) -> None:
    """Delete blobs no model uses, and leftovers of interrupted packs and pulls.

    Refuses to delete anything while a manifest in the store cannot be read.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", grace.strip())
    if not m:
        raise click.BadParameter(f"{grace!r} is not a duration like 30m, 2h or 0", param_hint="--grace")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    store = _store(models_dir, oci_layout)
    removed, freed = store.prune(grace=seconds, dry_run=dry_run)
    if as_json:
        _emit_json({"store": store.describe(), "dry_run": dry_run, "removed": removed, "bytes": freed})
        return
    for p in removed:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {p}")
    click.echo(f"{len(removed)} file{'s' if len(removed) != 1 else ''}, {_human_size(freed)}"
               f"{' would be freed' if dry_run else ' freed'}")


# -- registries ---------------------------------------------------------------------------------

def _transport_options(f):
    opts = [
        click.option("--plain-http", is_flag=True, help="Talk to the registry over http:// (no TLS)."),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate verification (still https)."),
        click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA bundle (PEM)."),
        click.option("--cert", "cert_file", type=click.Path(dir_okay=False, exists=True),
                     help="Client certificate (PEM) for mutual TLS."),
        click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True),
                     help="Private key of --cert."),
        click.option("-u", "--username", help="Registry user (else: stored logins, docker/podman auth files)."),
        click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin."),
        click.option("--ollama-key", type=click.Path(dir_okay=False, exists=True),
                     help="Sign token requests with this ollama Ed25519 key (default for registry.ollama.ai: "
                          "~/.ollama/id_ed25519)."),
        click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Blobs (and download parts) moved at once."),
        click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
                     help="Retries on connection errors, 429 and 5xx (with backoff, honouring Retry-After), each "
                          "shown as it waits. A host name that does not resolve or a refused connection on "
                          "localhost fails at once unless --retries is given."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _given(param: str) -> bool:
    """Whether the user set an option on the command line (not its default)."""
    from click.core import ParameterSource
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE


def _read_password(password_stdin: bool) -> Optional[str]:
    if not password_stdin:
        return None
    pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        raise click.UsageError("--password-stdin: nothing on standard input")
    return pw


def _registry_store(registry: str, plain_http, insecure, ca_file, cert_file, key_file, username, password_stdin,
                    ollama_key, concurrency, retries, chunk_size=None):
    from .stores.registry import RegistryStore
    from .transport import Credentials, TransportOptions
    creds = None
    pw = _read_password(password_stdin)
    if username or pw:
        creds = Credentials(username or "", pw or "", source="command line")
    opts = TransportOptions(plain_http=plain_http, insecure=insecure, ca_file=ca_file, cert_file=cert_file,
                            key_file=key_file, credentials=creds, max_retries=retries, ollama_key=ollama_key,
                            ollama_auth=True if ollama_key else None,
                            unreachable_retries=retries if _given("retries") else None)
    return RegistryStore(registry, opts, chunk_size=chunk_size, concurrency=concurrency)


def _parse_size(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    v = value.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
    num = v[:-1] if v[-1:] in "KMG" else v
    try:
        n = int(float(num) * mult)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size like 4M or 65536", param_hint="--chunk-size") from None
    if n <= 0:
        raise click.BadParameter("must be positive", param_hint="--chunk-size")
    return n


def _copy_report(report, as_json: bool, verb: str) -> None:
    if as_json:
        _emit_json(report.to_json())
        return
    moved = [b for b in report.blobs if b.transferred]
    click.echo(f"{verb} {report.destination} ({report.manifest_digest})")
    for b in report.blobs:
        click.echo(f"  {b.action:<10} {b.digest[7:19]}  {_human_size(b.size)}")
    click.echo(f"  {len(moved)} of {len(report.blobs)} blobs moved, {_human_size(report.bytes_transferred)}")


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@click.argument("ref", required=False)
@_models_dir_option
@_oci_option
@click.option("--chunk-size", help="Upload in PATCH chunks of this size (e.g. 4M); default: one streamed PUT, "
                                   "falling back to chunks if the registry refuses the size.")
@click.option("--format", "manifest_format", type=click.Choice(["keep", "oci"]), default="keep", show_default=True,
              help="oci: send the manifest as an OCI image manifest, for tools that refuse Docker schema 2 "
                   "(`ollama pull` cannot fetch that form from Docker distribution; keep the default for it).")
@_transport_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def push(name, ref, models_dir, oci_layout, chunk_size, manifest_format, plain_http, insecure, ca_file, cert_file,
         key_file, username, password_stdin, ollama_key, concurrency, retries, quiet, as_json) -> None:
    """Push a local model to a registry.

    NAME is a model in the store; REF the destination, e.g.
    registry.example.com/team/model:tag (default: NAME itself, when it names a
    registry host). Blobs already there are skipped; the manifest goes last,
    with the bytes `ollama push` would send.

    \b
    Examples:
      ollama-oci push mymodel:q4 ghcr.io/acme/mymodel:q4
      ollama-oci push localhost:5000/team/model:1 --plain-http
      echo "$TOKEN" | ollama-oci push m registry.example.com/ns/m -u ci --password-stdin
    """
    from .engine import copy
    from .reference import Reference, parse_reference
    store = _store(models_dir, oci_layout)
    n = _name(name)
    dest = parse_reference(ref) if ref else Reference.from_model_name(n)
    reg = _registry_store(dest.registry, plain_http, insecure, ca_file, cert_file, key_file, username,
                          password_stdin, ollama_key, concurrency, retries, _parse_size(chunk_size))
    prog = _Progress(not quiet and not as_json)
    try:
        report = copy(store, n, reg, dest, concurrency=concurrency, progress=prog, manifest_format=manifest_format)
    finally:
        prog.close()
    _copy_report(report, as_json, "pushed")


@cli.command(context_settings=CONTEXT)
@click.argument("ref")
@click.option("-n", "--name", help="Local model name (default: from REF, e.g. localhost:5000/team/model:tag).")
@_models_dir_option
@_oci_option
@_transport_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def pull(ref, name, models_dir, oci_layout, plain_http, insecure, ca_file, cert_file, key_file, username,
         password_stdin, ollama_key, concurrency, retries, quiet, as_json) -> None:
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
    from .engine import copy
    from .reference import parse_reference
    src = parse_reference(ref)
    local = _name(name) if name else src.to_model_name()
    store = _store(models_dir, oci_layout)
    reg = _registry_store(src.registry, plain_http, insecure, ca_file, cert_file, key_file, username,
                          password_stdin, ollama_key, concurrency, retries)
    prog = _Progress(not quiet and not as_json)
    try:
        report = copy(reg, src, store, local, concurrency=concurrency, progress=prog)
    finally:
        prog.close()
    _copy_report(report, as_json, "pulled")


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
@click.option("-u", "--username", required=True, help="User name.")
@click.option("-p", "--password", help="Password (prefer --password-stdin: this one shows in `ps`).")
@click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin.")
@click.option("--plain-http", is_flag=True, help="The registry speaks http://.")
@click.option("--insecure", is_flag=True, help="Skip TLS certificate verification.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA bundle (PEM).")
def login(registry, username, password, password_stdin, plain_http, insecure, ca_file) -> None:
    """Check credentials against a registry and store them like `docker login`.

    They go to the Docker config ($DOCKER_CONFIG/config.json, or its credsStore
    helper), where docker, podman, oras and skopeo find them too.
    """
    from .transport import Credentials, RegistryClient, TransportOptions, save_login
    from .transport.http import error_from
    if password_stdin:
        password = _read_password(True)
    if not password:
        password = click.prompt("Password", hide_input=True)
    opts = TransportOptions(plain_http=plain_http, insecure=insecure, ca_file=ca_file,
                            credentials=Credentials(username, password, source="login"))
    client = RegistryClient(registry, opts)
    resp = client.request("GET", "/v2/", scope="")
    if resp.status_code != 200:
        raise error_from(resp, f"login to {registry}")
    resp.close()
    where = save_login(registry, username, password)
    click.echo(f"Login Succeeded ({registry}, saved in {where})")


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
def logout(registry) -> None:
    """Remove stored credentials for a registry."""
    from .errors import NotFound
    from .transport import remove_login
    if not remove_login(registry):
        raise NotFound(f"not logged in to {registry}")
    click.echo(f"Removed login credentials for {registry}")


# -- copy, export, import ---------------------------------------------------------------------------

def _registry_factory(plain_http, insecure, ca_file, cert_file, key_file, username, password_stdin, ollama_key,
                      concurrency, retries, chunk_size=None):
    made = {}

    def factory(registry: str):
        if registry not in made:
            made[registry] = _registry_store(registry, plain_http, insecure, ca_file, cert_file, key_file,
                                             username, password_stdin if not made else False, ollama_key,
                                             concurrency, retries, chunk_size)
        return made[registry]
    return factory


@cli.command("copy", context_settings=CONTEXT)
@click.argument("src")
@click.argument("dst")
@_models_dir_option
@click.option("--format", "manifest_format", type=click.Choice(["keep", "oci"]), default="keep", show_default=True,
              help="oci: write the manifest as an OCI image manifest.")
@click.option("--chunk-size", help="Upload in PATCH chunks of this size (e.g. 4M).")
@_transport_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def copy_cmd(src, dst, models_dir, manifest_format, chunk_size, plain_http, insecure, ca_file, cert_file, key_file,
             username, password_stdin, ollama_key, concurrency, retries, quiet, as_json) -> None:
    """Copy a model between any two places, moving only what is missing.

    SRC and DST are each one of: a registry reference; oci:DIR[:NAME] (an OCI
    layout); ollama:NAME (the model store, see --models-dir); FILE.tar or
    FILE.tar.zst[:NAME] (a bundle). Digests are preserved, every blob is
    verified, and the manifest is written last.

    \b
    Examples:
      ollama-oci copy ollama:gemma3:270m registry.example.com/ml/gemma3:270m
      ollama-oci copy registry.example.com/ml/gemma3:270m oci:./layout
      ollama-oci copy oci:./layout:gemma3:270m ollama:
      ollama-oci copy ollama:gemma3:270m ./gemma3.tar.zst
    """
    from .bundle import export_bundle, import_bundle
    from .engine import copy
    from .endpoints import parse_endpoint
    from .names import ModelName
    s, d = parse_endpoint(src), parse_endpoint(dst)
    factory = _registry_factory(plain_http, insecure, ca_file, cert_file, key_file, username, password_stdin,
                                ollama_key, concurrency, retries, _parse_size(chunk_size))
    prog = _Progress(not quiet and not as_json)
    try:
        if s.kind == "bundle" and d.kind == "bundle":
            raise click.UsageError("copy between two bundles is not supported; import one, export again")
        if d.kind == "bundle":
            store = s.store(models_dir=models_dir, registry_factory=factory)
            sref = s.ref if s.ref is not None else _only_model(store, s)
            report = export_bundle(store, [sref], d.path, names=[d.name_or(s) if d.ref else _as_name(sref)],
                                   progress=prog)
            if as_json:
                _emit_json(report.to_json())
            else:
                click.echo(f"exported {report.models[0]['name']} to {d.path} ({_human_size(report.file_size)})")
            return
        if s.kind == "bundle":
            store = d.store(models_dir=models_dir, registry_factory=factory)
            names = [s.ref.display] if s.ref else None
            rename = {s.ref.display: d.ref.display} if s.ref and isinstance(d.ref, ModelName) else None
            ref_for = (lambda n: d.ref if d.ref is not None else _registry_ref_for(d, n)) if d.kind == "registry" else None
            report = import_bundle(s.path, store, names=names, rename=rename, progress=prog, dst_ref_for=ref_for)
            if as_json:
                _emit_json(report.to_json())
            else:
                click.echo(f"imported {', '.join(m['name'] for m in report.models)} from {s.path}")
            return
        sstore = s.store(models_dir=models_dir, registry_factory=factory)
        dstore = d.store(models_dir=models_dir, registry_factory=factory)
        sref = s.ref if s.ref is not None else _only_model(sstore, s)
        if d.kind == "registry":
            dref = d.ref
        else:
            dref = d.ref if d.ref is not None else _as_name(sref)
        report = copy(sstore, sref, dstore, dref, concurrency=concurrency, progress=prog,
                      manifest_format=manifest_format)
    finally:
        prog.close()
    _copy_report(report, as_json, "copied to")


def _as_name(ref):
    from .names import ModelName
    return ref if isinstance(ref, ModelName) else ref.to_model_name()


def _only_model(store, ep):
    names = store.names() if hasattr(store, "names") else []
    if len(names) != 1:
        raise click.UsageError(f"{ep.text}: name the model ({ep.text}:NAME); it holds {len(names)} models")
    return names[0]


def _registry_ref_for(ep, name):
    from .reference import Reference
    return Reference(ep.ref.registry, f"{name.namespace}/{name.model}", name.tag)


@cli.command("export", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Bundle file: .tar, or .tar.zst for zstd.")
@click.option("--level", type=click.IntRange(1, 22), default=3, show_default=True, help="zstd level.")
@_models_dir_option
@_oci_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def export_cmd(names, output, level, models_dir, oci_layout, quiet, as_json) -> None:
    """Write models into one offline bundle file (blobs shared between them stored once).

    The bundle is an OCI image layout in a tar (skopeo reads it as oci-archive:),
    zstd-compressed when the name ends in .tar.zst. Move it anywhere, then
    `ollama-oci import` it into a model store or straight into a registry.
    """
    from .bundle import export_bundle
    store = _store(models_dir, oci_layout)
    prog = _Progress(not quiet and not as_json)
    try:
        report = export_bundle(store, [_name(n) for n in names], output, level=level, progress=prog)
    finally:
        prog.close()
    if as_json:
        _emit_json(report.to_json())
    else:
        click.echo(f"exported {len(report.models)} model{'s' if len(report.models) != 1 else ''}, "
                   f"{report.blobs} blobs, to {output} ({_human_size(report.file_size)})")


@cli.command("import", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True))
@click.argument("names", nargs=-1)
@click.option("--to", "to_registry", metavar="REGISTRY[/NAMESPACE]",
              help="Push into this registry instead of a local store (models keep their names; NAMESPACE "
                   "replaces theirs).")
@_models_dir_option
@_oci_option
@_transport_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def import_cmd(bundle, names, to_registry, models_dir, oci_layout, plain_http, insecure, ca_file, cert_file,
               key_file, username, password_stdin, ollama_key, concurrency, retries, quiet, as_json) -> None:
    """Import models (all, or NAMES) from a bundle into the store, an OCI layout or a registry.

    Every blob is checked against its digest while it streams; if anything is
    wrong nothing becomes visible (no blob, no model).
    """
    from .bundle import import_bundle
    prog = _Progress(not quiet and not as_json)
    try:
        if to_registry:
            from .reference import Reference
            registry, _, ns = to_registry.partition("/")
            dst = _registry_store(registry, plain_http, insecure, ca_file, cert_file, key_file, username,
                                  password_stdin, ollama_key, concurrency, retries)

            def ref_for(n):
                return Reference(registry, f"{ns or n.namespace}/{n.model}", n.tag)
            report = import_bundle(bundle, dst, names=list(names) or None, progress=prog, dst_ref_for=ref_for)
        else:
            report = import_bundle(bundle, _store(models_dir, oci_layout), names=list(names) or None,
                                   progress=prog)
    finally:
        prog.close()
    if as_json:
        _emit_json(report.to_json())
    else:
        for m in report.models:
            click.echo(f"imported {m['name']} ({m['manifest_digest'][7:19]})")


@cli.command(context_settings=CONTEXT)
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Resolve everything and report what would move; copy nothing.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Models at once (overrides the plan).")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Retries per request on connection errors, 429 and 5xx.")
@_json_option
def mirror(plan, dry_run, concurrency, retries, as_json) -> None:
    """Mirror the models a plan file names from one registry to another.

    Idempotent: a second run of an unchanged plan moves no blob bytes (one
    manifest check per model). One model's failure does not stop the others;
    the exit code is then non-zero and the failures are named on stderr.
    Plan format: docs/cli.md ("mirror").
    """
    from .mirror import load_plan, run_plan
    p = load_plan(plan)
    if concurrency:
        p.concurrency = concurrency

    def show(rep):
        if as_json:
            return
        extra = (f"{_human_size(rep.get('bytes_transferred', rep.get('bytes_to_transfer', 0)))}"
                 if rep["status"] != "failed" else rep["error"])
        click.echo(f"{rep['status']:<11} {rep['source']} -> {rep['target']}  {extra}")
    results = run_plan(p, dry_run=dry_run, retries=retries, on_result=show)
    failed = [r for r in results if r["status"] == "failed"]
    if as_json:
        _emit_json({"plan": plan, "dry_run": dry_run, "ok": not failed, "models": results,
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
@_models_dir_option
@_oci_option
@_transport_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_json_option
def volume(names, dest, zstd, models_dir, oci_layout, plain_http, insecure, ca_file, cert_file, key_file, username,
           password_stdin, ollama_key, concurrency, retries, quiet, as_json) -> None:
    """Build an OCI image holding an Ollama models/ tree of NAMES, for Kubernetes image volumes.

    Mount the image read-only at the server's OLLAMA_MODELS (with
    OLLAMA_NOPRUNE=1), or copy it from an init container: the server starts
    with the models in place and downloads nothing. The layer is generated on
    the fly and streamed to the registry; the GGUF is not staged on disk again.
    See docs/deploy.md.

    \b
    Examples:
      ollama-oci volume gemma3:270m --to registry.example.com/ml/gemma3-volume:270m
      ollama-oci volume gemma3:270m qwen3:0.6b --zstd --to oci:./volume:models:v1
    """
    from .endpoints import parse_endpoint
    from .volume import build_volume_image
    src = _store(models_dir, oci_layout)
    ep = parse_endpoint(dest)
    if ep.kind == "registry":
        dst = _registry_store(ep.ref.registry, plain_http, insecure, ca_file, cert_file, key_file, username,
                              password_stdin, ollama_key, concurrency, retries)
        ref = ep.ref
    elif ep.kind == "oci":
        if ep.ref is None:
            raise click.UsageError("--to oci:DIR:NAME needs a NAME for the image")
        dst, ref = ep.store(), ep.ref
    else:
        raise click.UsageError("--to must be a registry reference or oci:DIR:NAME")
    prog = _Progress(not quiet and not as_json)
    try:
        report = build_volume_image(src, [_name(n) for n in names], dst, ref, zstd=zstd, progress=prog)
    finally:
        prog.close()
    if as_json:
        _emit_json(report.to_json())
    else:
        click.echo(f"built {dest} ({report.manifest_digest}): layer {_human_size(report.layer_size)}"
                   f"{' zstd' if zstd else ''}, models {', '.join(report.models)}")


# -- entry point ----------------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> None:
    verbose = 0
    args = sys.argv[1:] if argv is None else argv
    for a in args:
        if a == "--":
            break
        if a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}):
            verbose += a.count("v") if not a.startswith("--") else 1
    try:
        rv = cli.main(args=args, prog_name="ollama-oci", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
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


if __name__ == "__main__":  # pragma: no cover
    console_main()

"""Build ollama artifacts: layers, config blob and manifest, byte for byte as ollama does.

Two ways in:

* :func:`pack` takes a :class:`Recipe` (GGUF files plus template, system,
  licenses, parameters, messages - what a Modelfile says) and writes every blob
  and the manifest into a store, reading each GGUF once.
* :func:`build_config` and :func:`build_manifest` work from descriptors alone,
  for build scripts that already know digests and sizes.

The layer order and encodings follow ollama's v0.5.5+ ``create``
(docs/ollama-format.md section 5.2): GGUF layers (sorted by file name), then
adapters, template, system, licenses, params, messages.  The config is the
current encoding (no ``rootfs``) unless ``legacy_rootfs=True`` selects the one of
ollama <= 0.32.6, which registry.ollama.ai's models carry.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from . import gojson
from .digest import Digest, digest_bytes
from .errors import GGUFError, InvalidInput, InvalidParameter, ModelfileError, NotFound, Unsupported
from .fsutil import discard_staged
from .gguf_header import read_gguf
from .modelinfo import ARCH_RENDERER as _ARCH_RENDERER
from .modelinfo import ModelInfo, model_info
from .names import ModelName, parse_name
from .progress import ProgressCallback, ProgressEvent
from .spec import MT, Config, Descriptor, Manifest

if TYPE_CHECKING:   # imported where used: `pack model.gguf` needs neither
    from .modelfile import Modelfile

__all__ = ["Recipe", "Blob", "text_layer", "params_layer", "messages_layer", "build_config",
           "build_manifest", "recipe_from_modelfile", "pack", "PackResult", "ModelFacts"]

#: golang.org/x/mod/semver's IsValid (what ollama checks REQUIRES with): vMAJOR and vMAJOR.MINOR are
#: shorthands (no pre-release or build suffix on them)
_SEMVER = re.compile(r"^v(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                     r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?)?)?$")

#: ollama attaches these to models of some architectures (v0.20+, v0.22.1+)
_ARCH_DEFAULT_STOP = {"gemma4": ["<turn|>"]}

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Blob:
    """A small blob held in memory (text and JSON layers, the config)."""

    descriptor: Descriptor
    data: bytes


def text_layer(media_type: str, text: str) -> Blob:
    """A template/system/license layer: the exact UTF-8 bytes, nothing added or trimmed."""
    data = text.encode("utf-8", "surrogateescape")
    return Blob(Descriptor(media_type, digest_bytes(data), len(data)), data)


def params_layer(params: dict[str, Any]) -> Blob:
    """The params layer: a Go map (sorted keys), HTML-escaped, trailing newline."""
    data = gojson.dumps(gojson.GoMap(params), newline=True)
    return Blob(Descriptor(MT.PARAMS, digest_bytes(data), len(data)), data)


def messages_layer(messages: Sequence[tuple[str, str] | dict]) -> Blob:
    """The messages layer: ``[{"role":…,"content":…}, …]`` plus a newline."""
    items = []
    for m in messages:
        role, content = (m["role"], m["content"]) if isinstance(m, dict) else m
        if role not in ROLES:
            raise InvalidInput(f"message role {role!r} must be one of system, user or assistant")
        items.append({"role": role, "content": content})
    data = gojson.dumps(items, newline=True)
    return Blob(Descriptor(MT.MESSAGES, digest_bytes(data), len(data)), data)


@dataclass(frozen=True)
class ModelFacts:
    """What the config needs from a model GGUF (see :class:`~ollama_oci.modelinfo.ModelInfo`)."""

    architecture: str
    model_type: str
    file_type: str
    model_format: str = "gguf"

    @classmethod
    def of(cls, info: ModelInfo) -> "ModelFacts":
        return cls(info.architecture, info.model_type, info.file_type)


def build_config(models: Sequence[ModelFacts | ModelInfo], layers: Sequence[Descriptor] = (), *,
                 renderer: str = "", parser: str = "", requires: str = "",
                 legacy_rootfs: bool = False) -> Config:
    """The config for a model whose GGUF model layers have these facts.

    ``models`` are the facts of the ``…image.model`` layers in manifest order
    (ollama v0.30+ reads only those); the first gives family, type and file type.
    ``layers`` matter only for ``legacy_rootfs`` (their digests become diff_ids).
    """
    facts = [m if isinstance(m, ModelFacts) else ModelFacts.of(m) for m in models]
    first = facts[0] if facts else None
    arch = first.architecture if first else ""
    return Config(
        model_format=first.model_format if first else "",
        model_family=arch,
        model_families=tuple(f.architecture for f in facts) if facts else None,
        model_type=first.model_type if first else "",
        file_type=first.file_type if first else "",
        renderer=renderer or _ARCH_RENDERER.get(arch, ""),
        parser=parser or _ARCH_RENDERER.get(arch, ""),
        requires=requires,
        rootfs_diff_ids=tuple(str(l.digest) for l in layers) if legacy_rootfs else None,
    )


def build_manifest(layers: Sequence[Descriptor], config: Config) -> tuple[Manifest, Blob]:
    """The manifest and config blob for ``layers`` (in order) and ``config``."""
    cdata = config.to_bytes()
    cdesc = Descriptor(MT.CONFIG, digest_bytes(cdata), len(cdata))
    return Manifest(config=cdesc, layers=tuple(layers)), Blob(cdesc, cdata)


@dataclass
class Recipe:
    """What to build: the inputs of ``ollama create`` (a Modelfile, resolved)."""

    files: list[str] = field(default_factory=list)        # FROM: GGUF model/projector files
    base: Optional[str] = None                            # FROM: an existing model (in the first store)
    adapters: list[str] = field(default_factory=list)     # ADAPTER: GGUF LoRA files
    template: Optional[str] = None
    system: Optional[str] = None
    licenses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # typed (see params.format_params)
    messages: list[tuple[str, str]] = field(default_factory=list)
    requires: str = ""
    renderer: str = ""
    parser: str = ""
    #: with no ``template``, derive one (and stop words) from the GGUF's Jinja chat template
    auto_template: bool = True
    #: auto: derive a Go template from the GGUF's chat template when none is given (skipped with a
    #: warning if it cannot be derived); go: a Go template or an error; gguf: no template layer, so
    #: Ollama >= 0.30 renders the GGUF's own Jinja (and older versions the raw prompt)
    template_mode: str = "auto"

    def check(self) -> None:
        if not self.files and not self.base:
            raise InvalidInput("nothing to pack: give a GGUF file (or a Modelfile with a FROM line)")
        if self.files and self.base:
            raise InvalidInput(f"FROM {self.base} (a model) and FROM files cannot be combined; use one kind")
        if self.requires and not _SEMVER.match("v" + self.requires):
            raise InvalidInput("requires must be a valid semver (e.g. 0.14.0)")
        from .params import check_param_values
        check_param_values(self.params)
        for role, _ in self.messages:
            if role not in ROLES:
                raise InvalidInput(f"message role {role!r} must be one of system, user or assistant")
        if self.template:
            # ollama's create refuses a template its Go parser cannot read ("template error: ...")
            from .gotemplate import TemplateError, check_ollama_template
            try:
                check_ollama_template(self.template)
            except TemplateError as e:
                raise TemplateError(f"template error: {e}; TEMPLATE must be a Go template "
                                    "(a Jinja chat template is converted only when TEMPLATE is not given)") from None


def _expand(path: str, base_dir: str) -> str:
    p = os.path.expanduser(path)
    if not os.path.isabs(p):
        p = os.path.join(base_dir, p)
    return os.path.normpath(p)


def read_text_file(path: str, what: str) -> str:
    """A TEMPLATE/SYSTEM/LICENSE file's text; a missing or non-UTF-8 file is a clear error."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise NotFound(f"{what} file {path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} file {path} is a directory") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} file {path} is not UTF-8 text") from None


def params_from_options(params: Sequence[str], *, warn=None) -> dict:
    """``KEY=VALUE`` strings (``--param``) typed as Ollama types a Modelfile's PARAMETER lines."""
    pairs = []
    for p in params:
        k, sep, v = p.partition("=")
        if not sep:
            raise InvalidInput(f"--param {p!r} is not KEY=VALUE")
        pairs.append((k.strip(), v))
    from .params import format_params
    return format_params(pairs, warn=warn)


def recipe_for(gguf: Optional[str] = None, modelfile: Optional[str] = None, *, template_file: Optional[str] = None,
               system_file: Optional[str] = None, license_files: Sequence[str] = (),
               params: Sequence[str] = (), messages: Sequence[str] = (), adapters: Sequence[str] = (),
               requires: Optional[str] = None, auto_template: bool = True, warn=None) -> Recipe:
    """The recipe a command line describes: a GGUF and/or a Modelfile, then overrides.

    A GGUF given with a Modelfile replaces its FROM lines. ``params`` are ``KEY=VALUE`` strings
    typed as ``ollama create`` types them; ``stop`` values add to the Modelfile's stop words
    (as repeated PARAMETER stop lines do), other keys replace. ``messages`` are ``ROLE=TEXT``.
    """
    if not gguf and not modelfile:
        raise InvalidInput("give a GGUF file, a Modelfile, or both")
    if modelfile:
        try:
            with open(modelfile, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            raise NotFound(f"Modelfile {modelfile}: no such file") from None
        try:
            from .modelfile import parse_modelfile
            mf = parse_modelfile(text)
        except ModelfileError as e:  # ollama's wording, with the file and line in front
            raise ModelfileError(e.bare, e.line, modelfile) from None
        if gguf:
            from .modelfile import Command
            mf.commands = [c for c in mf.commands if c.name != "model"] + [Command("model", os.path.abspath(gguf))]
        recipe = recipe_from_modelfile(mf, os.path.dirname(os.path.abspath(modelfile)), warn=warn, path=modelfile)
    else:
        recipe = Recipe(files=[gguf])
    if template_file:
        recipe.template = read_text_file(template_file, "template")
    if system_file:
        recipe.system = read_text_file(system_file, "system")
    for lic in license_files:
        recipe.licenses.append(read_text_file(lic, "license"))
    if params:
        for k, v in params_from_options(params, warn=warn).items():
            if k == "stop" and k in recipe.params:
                recipe.params[k] = recipe.params[k] + v
            else:
                recipe.params[k] = v
    for m in messages:
        role, sep, text = m.partition("=")
        if not sep:
            raise InvalidInput(f"--message {m!r} is not ROLE=TEXT")
        recipe.messages.append((role.strip(), text))
    recipe.adapters.extend(adapters)
    recipe.auto_template = auto_template
    if requires:
        recipe.requires = requires[1:] if requires.startswith("v") else requires
    return recipe


def default_name(recipe: Recipe) -> ModelName:
    """The model name when none is given: from the first GGUF's file name (``model`` otherwise)."""
    from .names import default_name_for_file
    return parse_name(default_name_for_file(recipe.files[0] if recipe.files else "model"))


def recipe_from_modelfile(mf: Modelfile | str | bytes, base_dir: str = ".", *, warn=None,
                          path: Optional[str] = None) -> Recipe:
    """Resolve a Modelfile into a :class:`Recipe` (paths relative to ``base_dir``; ``path``, the
    file's name, for messages)."""
    from .modelfile import Modelfile, parse_modelfile
    from .params import format_params
    if not isinstance(mf, Modelfile):
        mf = parse_modelfile(mf)
    r = Recipe()
    pairs: list[tuple[str, str]] = []
    lines: list[int] = []
    for c in mf.commands:
        if c.name == "model":
            p = _expand(c.args, base_dir)
            if not os.path.exists(p):
                # as in ollama: a FROM that is not a file is a model name
                try:
                    parse_name(c.args)
                except InvalidInput:
                    raise NotFound(f"FROM {c.args}: no such file, and not a model name") from None
                r.base = c.args
                continue
            if os.path.isdir(p):
                raise Unsupported(f"FROM {c.args}: is a directory; ollama-oci packs GGUF files, "
                                  "convert safetensors to GGUF with llama.cpp first")
            r.files.append(p)
        elif c.name == "adapter":
            p = _expand(c.args, base_dir)
            if not os.path.isfile(p):
                raise NotFound(f"ADAPTER {c.args}: no such file")
            r.adapters.append(p)
        elif c.name == "draft":
            raise Unsupported("DRAFT is not supported yet")
        elif c.name == "template":
            r.template = c.args
        elif c.name == "system":
            r.system = c.args
        elif c.name == "license":
            r.licenses.append(c.args)
        elif c.name == "renderer":
            r.renderer = c.args
        elif c.name == "parser":
            r.parser = c.args
        elif c.name == "requires":
            r.requires = c.args[1:] if c.args.startswith("v") else c.args
            if not _SEMVER.match("v" + r.requires):   # each one, as Ollama checks them (an empty one too)
                where = f"{path or 'Modelfile'}:{c.line}: " if c.line else ""
                raise InvalidInput(f"{where}requires must be a valid semver (e.g. 0.14.0)")
        elif c.name == "message":
            role, _, msg = c.args.partition(": ")
            r.messages.append((role, msg))
        else:
            pairs.append((c.name, c.args))
            lines.append(c.line)
    try:
        r.params = format_params(pairs, warn=warn)
    except InvalidParameter as e:
        # say which PARAMETER, and where: the first line whose value alone fails
        for (k, v), line in zip(pairs, lines):
            try:
                format_params([(k, v)])
            except InvalidParameter:
                where = f"{path or 'Modelfile'}:{line}: " if line else ""
                raise InvalidParameter(f"{where}PARAMETER {k} {v}: {e}") from None
        raise
    r.check()
    return r


def _request_names(paths: Sequence[str]) -> list[str]:
    """ollama's request file names: base name for one file, else relative to the common parent."""
    if len(paths) == 1:
        return [os.path.basename(paths[0])]
    absd = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(p) for p in absd])
    return [os.path.relpath(p, common).replace(os.sep, "/") for p in absd]


@dataclass
class PackResult:
    name: ModelName
    manifest: Manifest
    manifest_digest: str
    config: Config
    infos: list[ModelInfo]
    stores: list[str]
    #: how each Ollama version range will render the model (template_choice.template_selection)
    template_selection: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "name": self.name.display,
            "full_name": str(self.name),
            "template_selection": self.template_selection,
            "manifest_digest": str(self.manifest_digest),   # the ID `ollama list` shows
            # what a registry will hold after a push (Go's json.Marshal of the manifest: no newline)
            "registry_digest": str(digest_bytes(self.manifest.to_bytes(newline=False))),
            "size": self.manifest.size,
            "config": self.config.to_go(),
            "layers": [{"kind": l.kind, "mediaType": l.media_type, "digest": str(l.digest), "size": l.size}
                       for l in self.manifest.layers],
            "stores": self.stores,
        }


def _group_splits(paths: list[str]) -> tuple[list[str], dict]:
    """Paths with each split set reduced to its first shard, and {first shard: SplitSet}. One shard
    names its set (siblings by llama.cpp's naming rule); shards named otherwise must all be given.
    Only the names are looked at, unless several files are given: then a header may tell a shard
    (the one FROM file's header is parsed once, later, by ``_gguf_info``)."""
    from .gguf_split import is_split, names_a_set, open_split_set
    out: list[str] = []
    splits: dict = {}
    loose: list[str] = []
    for p in paths:
        if names_a_set(p):
            ss = open_split_set([p])
            if ss.first not in splits:
                splits[ss.first] = ss
                out.append(ss.first)
        elif len(paths) > 1 and is_split(p):
            loose.append(p)
        else:
            out.append(p)
    if loose:
        ss = open_split_set(loose)
        splits[ss.first] = ss
        out.append(ss.first)
    return out, splits


def _gguf_info(path: str, what: str, want_template: bool = False, split=None) -> tuple[ModelInfo, Optional[tuple]]:
    """The header facts of one GGUF, and (if asked and it has one) what deriving its chat template
    needs: the header is parsed once for both. ``split``: the set ``path`` starts, whose merged
    header is read instead."""
    from .modelinfo import shard_siblings
    if split is not None:
        with split.merged_header() as g:
            info = model_info(g)
            inputs = _template_inputs(g) if want_template and info.kind == "model" and info.chat_template else None
        return info, inputs
    with read_gguf(path, share_gil=True) as g:   # the file is hashed on another thread meanwhile
        info = model_info(g)
        inputs = _template_inputs(g) if want_template and info.kind == "model" and info.chat_template else None
    siblings = shard_siblings(path)
    if (info.split is not None and info.split.count > 1) or (siblings and len(siblings) > 1):
        if what == "FROM":   # a lone shard named otherwise than NAME-00001-of-0000N.gguf
            raise InvalidInput(f"{path}: is a shard of a split GGUF, but its name does not follow llama.cpp's "
                               f"NAME-00001-of-0000N.gguf rule; give every shard")
        raise Unsupported(
            f"{path}: is one shard of a split GGUF given as {what}; split sets are models (FROM), not "
            "adapters or projectors")
    return info, inputs


def _check_magic(path: str) -> None:
    """Refuse a file that is not GGUF at all before any store directory is created."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GGUFError("is a directory, not a GGUF file", None, path) from None
    parse_gguf_prefix(head, path)


def parse_gguf_prefix(head: bytes, path: str) -> None:
    from .gguf_header import GGUF_MAGIC, parse_gguf
    if head[:4] != GGUF_MAGIC:
        parse_gguf(head, path=path)  # raises the precise "not a GGUF file" error


def template_tokens(g) -> tuple[Optional[list], str, str]:
    """(special-token vocabulary, EOS token, BOS token) of an open GGUF, as a derived template needs
    them (None and empty strings where the vocabulary does not say)."""
    from .chat_template import special_tokens
    toks = g.get("tokenizer.ggml.tokens")
    if toks is None:
        return None, "", ""
    types = g.get("tokenizer.ggml.token_type")
    vocab = special_tokens(list(toks), list(types) if types is not None else None)

    def token(key: str) -> str:
        i = g.get_int(key)
        return toks[i] if i is not None and 0 <= i < len(toks) else ""
    return vocab, token("tokenizer.ggml.eos_token_id"), token("tokenizer.ggml.bos_token_id")


def _template_inputs(g) -> Optional[tuple]:
    """(chat template, special-token vocabulary, EOS and BOS tokens) of an open GGUF; None without one."""
    src = g.get_str("tokenizer.chat_template")
    if not src:
        return None
    return (src, *template_tokens(g))


def derive_from_gguf(path: str, **kw):
    """The template derived from a GGUF's chat template (None if it has none); may raise
    TemplateDerivationError."""
    with read_gguf(path) as g:
        inputs = _template_inputs(g)
    return _derive_from_inputs(inputs, **kw)


def _derive_from_inputs(inputs: Optional[tuple], **kw):
    from .chat_template import derive_template
    if inputs is None:
        return None
    src, vocab, eos, bos = inputs
    return derive_template(src, vocab=vocab, eos_token=eos, bos_token=bos, **kw)


def _derive(paths: Sequence[str], infos: Sequence[ModelInfo], inputs: Sequence[Optional[tuple]], warn,
            required: bool = False):
    for path, info, inp in zip(paths, infos, inputs):
        if info.kind != "model" or not info.chat_template:
            continue
        from .chat_template import TemplateDerivationError   # only for a model that has a chat template
        name = os.path.basename(path)
        try:
            d = _derive_from_inputs(inp)
        except TemplateDerivationError as e:
            if required:
                raise TemplateDerivationError(f"{name}: {e}; --template-mode go needs a Go template: give one with "
                                              f"TEMPLATE or --template, or use --template-mode gguf") from None
            if warn:
                warn(f"{name}: {e}; the model gets no template layer (give one with TEMPLATE or --template)")
            return None
        if d is not None and warn:
            note = {"unsupported": "; this chat template has no place for a system prompt, so SYSTEM is dropped",
                    "default": "; it supplies its own default system prompt"}.get(d.system, "")
            if d.tools:
                note += "; tool definitions, calls and results are written as the chat template writes them"
            elif d.tools_error:
                note += (f"; tools are left out ({d.tools_error}): with this template Ollama < 0.30 cannot call "
                         "tools (--template-mode gguf lets Ollama >= 0.30 render the chat template itself)")
            if d.think_switch:
                note += "; a request's think switches thinking on or off as the chat template's enable_thinking does"
            if d.think_levels:
                note += (f"; a request's thinking level ({', '.join(d.think_levels)}; think: true is medium) "
                         "sets the chat template's reasoning_effort")
            if d.thinking_error:
                note += f"; thinking is not switched by a request ({d.thinking_error})"
            if d.trims:
                note += ("; the chat template trims each message (| trim) and no Ollama template function can, so "
                         "a message with leading or trailing whitespace renders differently (--template-mode gguf "
                         "lets Ollama >= 0.30 render the chat template itself)")
            warn(f"{name}: using a template derived from its chat template (stop words "
                 f"{', '.join(d.stop) or 'none'}){note}")
        return d
    return None


def _media_type(kind: str) -> str:
    return {"model": MT.MODEL, "projector": MT.PROJECTOR, "adapter": MT.ADAPTER}[kind]


class _Cancelled(Exception):
    pass


def pack(recipe: Recipe, name: ModelName | str, stores: Sequence[Any], *, legacy_rootfs: bool = False,
         link_mode: str = "auto", progress: ProgressCallback = None,
         warn: Optional[Callable[[str], None]] = None, strict: bool = False) -> PackResult:
    """Build the model described by ``recipe`` into every store in ``stores``.

    A GGUF that Ollama's own decoder refuses (:func:`~ollama_oci.modelinfo.load_problems`) is
    packed with a ``warn`` message, or refused (``Unsupported``, nothing written) when ``strict``.

    Each GGUF is read once: linked (or reflinked) into the first store when it is
    on the same filesystem and hashed there, else copied and hashed in the same
    pass; while that runs, the headers are parsed on the other core.  Nothing
    becomes visible until every header is valid.  Later stores get the first store's
    verified blobs through the copy engine (linked where they can be).  Blobs go in first,
    the manifest last, each atomically.  ``progress`` is told a
    :class:`~ollama_oci.progress.ProgressEvent` (phase ``hash``, the file's name) while GGUF
    files are read.
    """
    if isinstance(name, str):
        name = parse_name(name)
    recipe.check()
    if not stores:
        raise InvalidInput("no destination: give a model store or an OCI layout")
    if recipe.base:
        return _pack_from_model(recipe, name, stores, legacy_rootfs, link_mode, warn)

    order = [p for _, p in sorted(zip(_request_names(recipe.files), recipe.files), key=lambda t: t[0])]
    for p in order + list(recipe.adapters):
        _check_magic(p)
    order, splits = _group_splits(order)      # a split set is one model blob, merged as ollama create merges it
    paths = order + list(recipe.adapters)

    def cb_for(path):
        if progress is None:
            return None
        label = splits[path].describe() if path in splits else os.path.basename(path)  # a set is one bar
        return lambda done, total: progress(ProgressEvent("hash", label, done, total))

    from concurrent.futures import ThreadPoolExecutor

    # Stage (link/copy + hash) into the first store on a worker thread while the headers
    # are parsed here: hashlib releases the GIL, so both cores work.
    first = stores[0]
    cancel = threading.Event()

    def stage_all():
        staged = []
        try:
            for p in paths:
                cb = cb_for(p)

                def tick(done, total, _cb=cb):
                    if cancel.is_set():
                        raise _Cancelled()
                    if _cb is not None:
                        _cb(done, total)
                if p in splits:
                    from .gguf_split import stage_merged
                    first.prepare()
                    staged.append(stage_merged(splits[p], first.tmp_dir(), progress=tick))
                else:
                    staged.append(first.stage_file(p, link_mode=link_mode, progress=tick))
        except BaseException:
            for st in staged:
                discard_staged(st)
            raise
        return staged

    mode = recipe.template_mode if recipe.auto_template else "gguf"
    if mode not in ("auto", "go", "gguf"):
        raise InvalidInput(f"template mode {mode!r} is not one of auto, go, gguf")
    if mode == "gguf" and recipe.template is not None and recipe.auto_template:
        raise InvalidInput("--template-mode gguf writes no template layer, but a TEMPLATE was given; drop one")
    want_template = recipe.template is None and mode != "gguf"
    from . import prehash
    if prehash.pending():
        for p in splits:       # a split set is merged, not linked: a hash started ahead is not wanted
            prehash.cancel(os.stat(p))
    with ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(stage_all)
        try:
            base = [_gguf_info(p, "FROM", want_template, splits.get(p)) for p in order]
            base_infos = [i for i, _ in base]
            adapter_infos = [_gguf_info(p, "ADAPTER")[0] for p in recipe.adapters]
            if "model" not in [i.kind for i in base_infos]:
                raise InvalidInput("no model GGUF among the FROM files (only adapters or projectors)")
            for p, info in zip(order + list(recipe.adapters), base_infos + adapter_infos):
                for problem in info.load_problems:
                    if strict:
                        raise Unsupported(f"{p}: Ollama cannot load this file: {problem} (--strict refuses it)")
                    if warn is not None:
                        warn(f"{p}: Ollama will not load this model: {problem}")
        except BaseException:
            cancel.set()
            try:
                for st in fut.result():
                    discard_staged(st)
            except _Cancelled:
                pass
            raise
        staged = fut.result()
    prehash.cancel()     # a hash the console script started that no staging took

    params = dict(recipe.params)
    arch = next(i.architecture for i in base_infos if i.kind == "model")
    template = recipe.template
    if template is None and mode != "gguf":
        # after staging: the derivation forks a sandbox, which must not happen while threads run
        derived = None
        try:
            derived = _derive(order, base_infos, [t for _, t in base], warn, required=mode == "go")
            if derived is None and mode == "go":
                raise InvalidInput("--template-mode go needs a Go template, and the GGUF has no chat template to "
                                   "derive one from: give one with TEMPLATE or --template")
        except BaseException:
            for st in staged:
                discard_staged(st)
            raise
        if derived is not None:
            template = derived.template
            if "stop" not in params and derived.stop:
                params["stop"] = list(derived.stop)
    if "stop" not in params and arch in _ARCH_DEFAULT_STOP:
        params["stop"] = list(_ARCH_DEFAULT_STOP[arch])

    small: list[Blob] = []
    if template:
        small.append(text_layer(MT.TEMPLATE, template))
    if recipe.system:
        small.append(text_layer(MT.SYSTEM, recipe.system))
    for lic in recipe.licenses:
        small.append(text_layer(MT.LICENSE, lic))
    if params:
        small.append(params_layer(params))
    if recipe.messages:
        small.append(messages_layer(recipe.messages))

    kinds = [_media_type(i.kind) for i in base_infos] + [MT.ADAPTER] * len(adapter_infos)  # ADAPTER lines are adapters
    model_facts = [i for i, mt in zip(base_infos, kinds) if mt == MT.MODEL]
    committed: list[tuple[Digest, int]] = []
    try:
        for st in staged:
            first.commit(st)
            committed.append((st.digest, st.size))
    except BaseException:
        for st in staged[len(committed):]:
            discard_staged(st)
        raise

    layers = [Descriptor(mt, d, n) for (d, n), mt in zip(committed, kinds)] + [b.descriptor for b in small]
    config = build_config(model_facts, layers, renderer=recipe.renderer, parser=recipe.parser,
                          requires=recipe.requires, legacy_rootfs=legacy_rootfs)
    manifest, cblob = build_manifest(layers, config)
    for b in small + [cblob]:
        first.put_blob_bytes(b.data, b.descriptor.digest)
    mdigest = first.put_manifest(name, manifest)
    _copy_to_others(first, stores[1:], name, manifest, link_mode, progress)
    from .template_choice import template_selection
    chat = next((i.chat_template for i in base_infos if i.kind == "model"), None)
    selection = template_selection(go_template=template or None, chat_template=chat, renderer=config.renderer,
                                   parser=config.parser, model_family=config.model_family)
    if warn is not None and template and selection[0]["source"] == "gguf_chat_template":
        warn(f"Ollama >= 0.30 will not use this Go template: {selection[0]['why']}; Ollama < 0.30 will")
    return PackResult(name, manifest, mdigest, config, base_infos + adapter_infos,
                      [s.describe() for s in stores], selection)


def _copy_to_others(first: Any, others: Sequence[Any], name: ModelName, manifest: Manifest, link_mode: str,
                    progress: ProgressCallback) -> None:
    """Later stores take the first store's verified blobs through the copy engine (linked or
    reflinked where they can be: the GGUF is read once), then the manifest in their own form."""
    if not others:
        return
    from .engine import CopyOptions, move_blobs
    opts = CopyOptions(link_mode=link_mode, progress=progress)
    blobs = list(dict.fromkeys(manifest.blobs))
    for store in others:
        move_blobs(first, store, blobs, opts)
        store.put_manifest(name, manifest)


def _pack_from_model(recipe: Recipe, name: ModelName, stores: Sequence[Any], legacy_rootfs: bool, link_mode: str,
                     warn) -> PackResult:
    """``FROM <existing model>``, as ollama v0.5.5+ builds it (docs/ollama-format.md section 5.2).

    The base's layers come first, in their order, each with ``from`` = the base's short
    name; TEMPLATE, SYSTEM and MESSAGE replace the inherited ones, LICENSE appends, and
    parameters merge (new keys win) into one params layer moved to the end.  Config facts
    come from the base's model GGUF; renderer, parser and requires are inherited unless given.
    """
    import json
    first = stores[0]
    base_name = parse_name(recipe.base)
    canonical = getattr(first, "canonical_name", None)  # ollama's case-insensitive name match
    if canonical is not None:
        base_name = canonical(base_name)
    try:
        base, _ = first.get_manifest(base_name)
    except NotFound:
        raise NotFound(f"FROM {recipe.base}: no such file, and no such model in {first.describe()}; pull it "
                       "first (ollama-oci pull) or give the path of a GGUF file") from None
    base_cfg = first.get_config(base)
    frm = base_name.display
    layers = [Descriptor(l.media_type, l.digest, l.size, frm, l.name) for l in base.layers]
    small: list[Blob] = []

    def replace(media_types, blob):
        nonlocal layers
        layers = [l for l in layers if l.media_type not in media_types] + [blob.descriptor]
        small.append(blob)
    if recipe.template:
        replace({MT.TEMPLATE, MT.PROMPT}, text_layer(MT.TEMPLATE, recipe.template))
    if recipe.system:
        replace({MT.SYSTEM}, text_layer(MT.SYSTEM, recipe.system))
    for lic in recipe.licenses:
        blob = text_layer(MT.LICENSE, lic)
        layers.append(blob.descriptor)
        small.append(blob)
    params: dict[str, Any] = {}
    for l in base.layers_of(MT.PARAMS):
        try:
            old = json.loads(first.read_blob(l.digest, 1 << 20))
        except (ValueError, RecursionError):
            raise InvalidInput(f"{frm}: its params layer is not JSON") from None
        if isinstance(old, dict):
            params.update(old)
    params.update(recipe.params)
    if params:
        replace({MT.PARAMS}, params_layer(params))
    if recipe.messages:
        replace({MT.MESSAGES}, messages_layer(recipe.messages))
    infos = []
    for l in base.layers_of(MT.MODEL):
        path = first.find_blob(l.digest)
        if path is None:
            raise NotFound(f"{frm}: its model blob {l.digest} is missing; run 'ollama-oci verify'")
        with read_gguf(path) as g:
            infos.append(model_info(g))
    config = build_config(infos, layers, renderer=recipe.renderer or base_cfg.renderer,
                          parser=recipe.parser or base_cfg.parser, requires=recipe.requires or base_cfg.requires,
                          legacy_rootfs=legacy_rootfs)
    if not infos:  # a base without a model layer (e.g. a remote model): keep its facts
        config = Config(**{**config.__dict__, "model_format": base_cfg.model_format,
                           "model_family": base_cfg.model_family, "model_families": base_cfg.model_families,
                           "model_type": base_cfg.model_type, "file_type": base_cfg.file_type})
    manifest, cblob = build_manifest(layers, config)
    for b in small + [cblob]:
        first.put_blob_bytes(b.data, b.descriptor.digest)
    mdigest = first.put_manifest(name, manifest)
    _copy_to_others(first, stores[1:], name, manifest, link_mode, None)
    return PackResult(name, manifest, mdigest, config, infos, [s.describe() for s in stores])

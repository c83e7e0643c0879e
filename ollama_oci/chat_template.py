"""Derive an Ollama Go template and stop words from a GGUF's Jinja chat template.

``ollama create`` recognises about twenty known templates by edit distance and packs no
template otherwise (ollama#6371).  Here the Jinja template itself is rendered, in a
sandbox, on probe conversations whose contents are marker strings; from where the markers
land we read each role's prefix and suffix, the text before the first turn, the
generation prompt, and how a system message is placed (its own turn, folded into the
first user turn, or not supported).  From those we write a ``.Messages`` Go template, then
*check* it: the derived template, rendered by :mod:`ollama_oci.gotemplate`, must give
exactly the Jinja template's text on a set of real-looking conversations, or nothing is
derived.  Stop words are the special tokens the turn markers use (and that the vocabulary
has, when it is known).

The sandbox: Jinja's ``ImmutableSandboxedEnvironment`` (no attribute access to Python
internals, no mutation), string and list repetition capped, output capped, all in a
child process that is killed after a few seconds (loops), with a CPU-time limit.
``bos_token`` renders as the model's BOS, and one leading BOS is taken off each rendering: the runtime
adds that one itself (Llama 2 writes BOS before every later turn too).
"""

from __future__ import annotations

import dataclasses
import datetime
import multiprocessing as mp
import os
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .errors import InvalidInput

__all__ = ["DerivedTemplate", "TemplateDerivationError", "derive_template", "render_jinja"]

MAX_OUTPUT = 1 << 20          # characters one rendering may produce
MAX_REPEAT = 1 << 20          # size of a string or list made with "*"
TIMEOUT = 5.0                 # seconds for all renderings of one template
DATE_OPEN, DATE_CLOSE = "\ue000", "\ue001"   # private-use characters around strftime_now's format
MAX_MEMORY = 192 << 20        # bytes the rendering child may allocate beyond what it was forked with

_M = {"sys": "@@SYS_7a1@@", "u1": "@@USR1_7a1@@", "a1": "@@AST1_7a1@@", "u2": "@@USR2_7a1@@"}

#: turn markers: <|im_start|>, full-width <｜User｜> (DeepSeek), [|endofturn|] (EXAONE), <start_of_turn>,
#: <extra_id_1> (Nemotron), </s>, [INST]
_SPECIAL = re.compile(r"<\|[^<>|\s]{1,40}\|>|<\uff5c[^<>\uff5c\s]{1,40}\uff5c>|\[\|[^\[\]|\s]{1,40}\|\]"
                      r"|<(?:start|end)_of_[a-z]+>|<[a-z_][a-z0-9_]{1,30}>|</s>|<s>|\[/?[A-Z][A-Z_]{1,15}\]")


class TemplateDerivationError(InvalidInput):
    """No template could be derived (the reason says why); nothing is packed for it."""


@dataclass
class DerivedTemplate:
    template: str                 # the Go template
    stop: list[str]               # stop words
    system: str                   # "turn", "first-user", "default", "header", or "unsupported"
    checked: int = 0              # conversations on which Go and Jinja renderings agreed
    parts: dict = field(default_factory=dict)
    #: the Jinja template strips each message (``| trim``), which no Ollama template function can do:
    #: a message with leading or trailing whitespace renders differently in the Go template
    trims: bool = False
    #: the Go template writes tool definitions, calls and results as the chat template does
    tools: bool = False
    #: why it does not, when the chat template writes tools (None: it does, or there are none)
    tools_error: Optional[str] = None
    #: thinking (``.Thinking``) is written where the chat template writes it: in earlier turns, or
    #: (with tools) in the turns after the last user message, with tags Ollama infers from it
    thinking: bool = False
    #: the template follows a request's ``think`` (``.IsThinkSet``/``.Think``) as ``enable_thinking``
    think_switch: bool = False
    #: why not, when the chat template switches on ``enable_thinking``
    thinking_error: Optional[str] = None
    #: the ``reasoning_effort`` levels the template follows from a request's level (``.ThinkLevel``)
    think_levels: list = field(default_factory=list)


# -- sandboxed rendering --------------------------------------------------------------------------

def _make_env():
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                        raise SecurityError("repetition too large")
            if operator == "**" and isinstance(right, (int, float)) and right > 64:
                raise SecurityError("power too large")
            return super().call_binop(context, operator, left, right)

    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        """``{% generation %}...{% endgeneration %}``, which transformers allows to mark the assistant's
        part for training masks; it renders its body unchanged."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    env = Sandbox(trim_blocks=True, lstrip_blocks=True,                 # as transformers renders
                  extensions=["jinja2.ext.loopcontrols", Generation])

    def raise_exception(msg):
        raise ValueError(f"template raised: {msg}")

    import json as _json

    def tojson(x, indent=None, ensure_ascii=False, separators=None, sort_keys=False):
        return _json.dumps(x, indent=indent, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys)

    env.globals["raise_exception"] = raise_exception
    # never a date baked into a template: a marker that names the format, turned into Ollama's
    # currentDate (or a Go expression built from it) by the derivation
    env.globals["strftime_now"] = lambda fmt: f"{DATE_OPEN}{str(fmt)[:40]}{DATE_CLOSE}"
    env.filters["tojson"] = tojson
    return env


def _render_all(src: str, jobs: list[tuple[list[dict], bool]], extra: dict) -> list:
    """Render every job; each result is the text or ("error", message)."""
    env = _make_env()
    try:
        tmpl = env.from_string(src)
    except Exception as e:
        return [("error", f"the template does not compile: {type(e).__name__}: {e}")] * len(jobs)
    out = []
    for job in jobs:
        messages, gen = job[0], job[1]
        tools = job[2] if len(job) > 2 else None
        try:
            pieces, n = [], 0
            for piece in tmpl.generate(messages=messages, add_generation_prompt=gen, tools=tools, **extra):
                n += len(piece)
                if n > MAX_OUTPUT:
                    raise ValueError(f"output larger than {MAX_OUTPUT} characters")
                pieces.append(piece)
            out.append("".join(pieces))
        except RecursionError:
            out.append(("error", "recursion too deep"))
        except MemoryError:
            out.append(("error", f"memory limit ({MAX_MEMORY >> 20} MiB) reached: a string or list grows without bound"))
        except Exception as e:
            out.append(("error", f"{type(e).__name__}: {str(e)[:200]}"))
    return out


def _vm_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _child(conn, src, jobs, extra):
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CPU, (int(TIMEOUT) + 2, int(TIMEOUT) + 3))
        # memory: what the forked child already has, plus MAX_MEMORY. RLIMIT_DATA counts the heap and
        # private anonymous mappings (Linux 4.7+), so a string grown by ljust/center/format/% fails
        # with MemoryError at once instead of taking gigabytes; mapped model files do not count.
        data = _vm_kib("VmData") * 1024
        if data:
            resource.setrlimit(resource.RLIMIT_DATA, (data + MAX_MEMORY, data + MAX_MEMORY))
    except (ImportError, ValueError, OSError):
        pass
    try:
        conn.send(_render_all(src, jobs, extra))
    except Exception as e:  # pragma: no cover - the child reports whatever happened
        conn.send([("error", f"{type(e).__name__}: {e}")] * len(jobs))
    conn.close()


def render_jinja(src: str, jobs: Sequence[tuple], *, bos_token: str = "", eos_token: str = "",
                 timeout: float = TIMEOUT, variables: Optional[dict] = None) -> list:
    """Render a chat template on several conversations in a sandboxed child process: each job is
    (messages, add_generation_prompt) or (messages, add_generation_prompt, tools).

    Raises TemplateDerivationError when the child does not finish in ``timeout`` seconds.
    """
    # import what the child needs before forking: a fork while another thread holds the import
    # lock would otherwise leave the child waiting on it forever
    try:
        import jinja2.sandbox  # noqa: F401
    except ImportError:
        raise TemplateDerivationError("cannot render chat templates: the jinja2 package is missing "
                                      "(pip install jinja2)") from None
    import resource  # noqa: F401
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, src, list(jobs), {**(variables or {}), "bos_token": bos_token,
                                                                  "eos_token": eos_token}), daemon=True)
    p.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise TemplateDerivationError(f"rendering the chat template took more than {timeout:g} s "
                                          "(an endless or huge loop?); it was stopped")
        try:
            return parent.recv()
        except EOFError:
            raise TemplateDerivationError("rendering the chat template was killed (CPU or memory limit)") from None
    finally:
        if p.is_alive():
            p.kill()
        p.join(1)
        parent.close()


# -- derivation ------------------------------------------------------------------------------------

def _msg(role: str, key: str) -> dict:
    return {"role": role, "content": _M[key]}


def _go_lit(s: str) -> str:
    """Literal text for a Go template (:func:`gotemplate.go_lit`)."""
    from .gotemplate import go_lit
    return go_lit(s)


def _cut(text, marker):
    i = text.find(marker)
    if i < 0 or text.find(marker, i + 1) >= 0:
        return None
    return text[:i], text[i + len(marker):]


def _fail(why: str):
    raise TemplateDerivationError(f"cannot turn the chat template into an Ollama template: {why}")


def _solve(r: dict, eos: str = "", bos: str = "") -> dict:
    """Role affixes from the probe renderings (see the module docstring)."""
    for k in ("g0", "g1", "t", "t2"):
        if isinstance(r[k], tuple):
            _fail(f"rendering a plain conversation failed ({r[k][1]})")
    # Phi-3.5/4-mini end a conversation with EOS when no generation prompt follows; Ollama always
    # renders for generation, so that EOS is never written: solve on the renderings without it
    if eos and not r["g1"].startswith(r["g0"]) and all(isinstance(r[k], str) and r[k].endswith(eos)
                                                       for k in ("g0", "t")) \
            and r["g1"].startswith(r["g0"][:-len(eos)]):
        r = dict(r)
        for k in ("g0", "t", "s", "s0"):
            if isinstance(r.get(k), str) and r[k].endswith(eos):
                r[k] = r[k][:-len(eos)]
    cut = _cut(r["g0"], _M["u1"])
    if cut is None:
        _fail("the user message does not appear exactly once in the output")
    pre_u, u_post = cut
    if not r["g1"].startswith(r["g0"]):
        _fail("the generation prompt is not appended after the conversation")
    gen = r["g1"][len(r["g0"]):]
    if not r["t2"].startswith(r["g0"]):
        _fail("a user turn renders differently when an assistant turn follows")
    t = r["t"]
    direct = None
    if t.startswith(r["g0"]) and _cut(t[len(r["g0"]):], _M["a1"]) is not None and r["t2"].startswith(t):
        a_pre, a_post = _cut(t[len(r["g0"]):], _M["a1"])
        cut = _cut(r["t2"][len(t):], _M["u2"])
        if cut is None:
            _fail("the second user message does not appear exactly once in the output")
        u_pre, rest = cut
        fits = pre_u.endswith(u_pre) or (bos and u_pre.startswith(bos) and pre_u.endswith(u_pre[len(bos):]))
        direct = (a_pre, a_post, u_pre, rest) if fits else None
    if direct is not None:
        a_pre, a_post, u_pre, rest = direct
    else:
        # the last assistant turn renders unlike earlier ones (Qwen3 opens it with an empty <think>
        # block, OLMo 2 leaves out the newline after its EOS): Ollama renders for the next answer,
        # so take the turns from a conversation whose assistant turn is history, and split
        # "assistant suffix + user prefix" where the first user turn's prefix ends
        cut = _cut(r["t2"][len(r["g0"]):], _M["a1"])
        if cut is None:
            _fail("the assistant message does not appear exactly once in the output")
        a_pre, after = cut
        cut = _cut(after, _M["u2"])
        if cut is None:
            _fail("the second user message does not appear exactly once in the output")
        joined, rest = cut
        k = 0
        while k < min(len(joined), len(pre_u)) and joined[len(joined) - 1 - k] == pre_u[len(pre_u) - 1 - k]:
            k += 1
        if k == 0:
            _fail("earlier turns render differently when more turns follow")
        a_post, u_pre = joined[:len(joined) - k], joined[len(joined) - k:]
    if rest != u_post + gen:
        _fail("the second user turn does not end like the first")
    bos_user = False
    if not pre_u.endswith(u_pre) and bos and u_pre.startswith(bos) and pre_u.endswith(u_pre[len(bos):]):
        # every user turn opens with BOS (Llama 2), the first one's being the runtime's
        u_pre, bos_user = u_pre[len(bos):], True
    if not pre_u.endswith(u_pre):
        _fail("the first user turn does not start like the later ones")
    parts = {"pre": pre_u[:len(pre_u) - len(u_pre)], "u_pre": u_pre, "u_post": u_post, "a_pre": a_pre,
             "a_post": a_post, "gen": gen, "system": "unsupported", "bos_user": bos if bos_user else ""}
    s = r["s"]
    if isinstance(s, tuple) or _M["sys"] not in s:
        return parts  # system messages raise or are ignored: they are dropped
    tail = u_pre + _M["u1"] + u_post
    pre = parts["pre"]
    if s.endswith(tail):
        head = s[:-len(tail)]
        cut = _cut(head, _M["sys"])
        if cut is not None:
            x, y = cut
            if x.startswith(pre):
                parts.update(system="turn", s_pre=x[len(pre):], s_post=y)
                # an empty system message written as no turn at all (Phi-3.5's "and message['content']")
                parts["skip_empty_system"] = isinstance(r.get("s0"), str) and r["s0"] == r["g0"]
                return parts
            if pre.startswith(x) and pre.endswith(y) and len(pre) >= len(x) + len(y):
                # the template writes a default system turn when none is given
                parts.update(system="default", s_pre=x, s_post=y, default=pre[len(x):len(pre) - len(y)], pre="")
                s0 = r.get("s0")
                if isinstance(s0, str) and s0 == r["g0"]:
                    # an empty system message is no system message: the default stands in (MiniMax-M2)
                    parts.update(skip_empty_system=True, empty_means_default=True)
                    return parts
                if isinstance(s0, str) and s0.endswith(tail) and x.startswith(s0[:-len(tail)]):
                    # an empty system message opts out of the default and writes no system turn
                    # (Laguna): what the empty one leaves is an opener written in every case
                    opener = s0[:-len(tail)]
                    parts.update(opener=opener, s_pre=x[len(opener):], skip_empty_system=True)
                return parts
            # a fixed header the system prompt goes into, before every turn (Nemotron's
            # "<extra_id_0>System" + "\n" + system + "\n\n"): A [B SYSTEM D] C, where D is written
            # only with a system prompt (Nemotron Nano 2's "\n\n" before its tool instructions)
            k = 0
            while k < min(len(y), len(pre)) and y[len(y) - 1 - k] == pre[len(pre) - 1 - k]:
                k += 1
            while k >= 0 and not x.startswith(pre[:len(pre) - k]):
                k -= 1
            if k >= 0:
                a = pre[:len(pre) - k]
                parts.update(system="header", h_pre=a, h_sys=x[len(a):], h_sep=y[:len(y) - k],
                             h_post=y[len(y) - k:], pre="")
                # an empty system message adds nothing to the header (Qwen 3's reasoning-effort header)
                parts["skip_empty_system"] = isinstance(r.get("s0"), str) and r["s0"] == r["g0"]
                return parts
    first = pre + u_pre
    if s.startswith(first):
        # folded into the first user turn, after an optional opener (Llama 2's "<<SYS>>\n")
        cut = _cut(s[len(first):], _M["sys"])
        if cut is not None and _M["u1"] not in cut[0]:
            cut2 = _cut(cut[1], _M["u1"])
            if cut2 is not None and cut2[1] == u_post:
                parts.update(system="first-user", sys_pre=cut[0], sep=cut2[0])
                return parts
    _fail("a system message is placed in a way this converter does not know")


def _go_template(p: dict) -> str:
    L = _go_lit
    out = []
    if p["system"] == "first-user":
        out.append('{{ $system := "" }}{{ $hasSystem := false }}')
    if p["system"] == "header":
        out.append('{{ $sys := false }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $sys = true }}{{ end }}{{ end }}')
        cond = "$.System" if p.get("skip_empty_system") else "$sys"
        out.append(f'{L(p["h_pre"])}{{{{ if {cond} }}}}{L(p["h_sys"])}{{{{ $.System }}}}{L(p.get("h_sep", ""))}'
                   f'{{{{ end }}}}{L(p["h_post"])}')
    if p["system"] == "default":
        # the default system prompt stands in only when the conversation has no system message at all:
        # an empty one is a system turn of its own, as in the Jinja template (never two system turns)
        has = 'and (eq .Role "system") .Content' if p.get("empty_means_default") else 'eq .Role "system"'
        out.append(f'{{{{ $sys := false }}}}{{{{ range .Messages }}}}{{{{ if {has} }}}}{{{{ $sys = true }}}}{{{{ end }}}}'
                   '{{ end }}')
        out.append(f'{L(p.get("opener", ""))}{{{{ if not $sys }}}}{L(p["s_pre"])}{L(p["default"])}{L(p["s_post"])}'
                   '{{ end }}')
    out.append(L(p["pre"]))
    if p.get("bos_user"):
        out.append("{{ $later := false }}")
    out.append("{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}")
    if p["system"] in ("turn", "default"):
        cond = 'and (eq .Role "system") .Content' if p.get("skip_empty_system") else 'eq .Role "system"'
        out.append(f'{{{{ if {cond} }}}}{L(p["s_pre"])}{{{{ .Content }}}}{L(p["s_post"])}{{{{ else if eq .Role "user" }}}}')
    elif p["system"] == "first-user":
        out.append('{{ if eq .Role "system" }}{{ $system = .Content }}{{ $hasSystem = true }}{{ else if eq .Role "user" }}')
    else:
        out.append('{{ if eq .Role "user" }}')
    if p.get("bos_user"):
        out.append(f'{{{{ if $later }}}}{L(p["bos_user"])}{{{{ end }}}}{{{{ $later = true }}}}')
    out.append(L(p["u_pre"]))
    if p.get("first_user_tools"):
        out.append(f'{{{{ if not $toolsDone }}}}{L(p["first_user_tools"])}{{{{ end }}}}{{{{ $toolsDone = true }}}}')
    if p["system"] == "first-user":
        out.append(f'{{{{ if $hasSystem }}}}{L(p.get("sys_pre", ""))}{{{{ $system }}}}{L(p["sep"])}'
                   f'{{{{ $hasSystem = false }}}}{{{{ end }}}}')
    out.append(f'{{{{ .Content }}}}{L(p["u_post"])}')
    if p["gen"]:
        out.append(f'{{{{ if $last }}}}{L(p["gen"])}{{{{ end }}}}')
    a_pre = L(p["a_pre"])
    th = p.get("think")
    recent = p.get("recent_think")
    cuts = []       # (where in the opener, what it replaces there, Go text), thinking after the last user first
    if recent:
        # thinking written only in turns after the last user message (an agent loop's turns). Where
        # the block has tags of its own (or takes the empty pair the opener writes, "<think></think>",
        # into it), it names .Thinking, from which Ollama infers the model's thinking tags
        # (thinking.InferTags: the text at the ends of the block); else the range variable's, which
        # Ollama does not read tags from
        o, c = recent.get("fold", ("", ""))
        field = ".Thinking" if recent["tags"] else "$_.Thinking"
        other = f'{{{{ else }}}}{L(o + c)}' if o + c else ""
        cuts.append((recent["at"] - len(o), len(o + c),
                     f'{{{{ if and {field} (gt $i $lastUser) }}}}{L(o + recent["pre"])}{{{{ {field} }}}}'
                     f'{L(recent["post"] + c)}{other}{{{{ end }}}}'))
    if th is not None:
        at, drop = th["at"], th["drop"]
        if th.get("hidden"):
            # through the range variable: a .Thinking field here would make Ollama infer thinking tags
            mid = f'{{{{ if $_.Thinking }}}}{L(th["pre"])}{{{{ end }}}}'
        else:
            body = f'{L(th["pre"])}{{{{ .Thinking }}}}{L(th["post"])}'
            mid = f'{{{{ if .Thinking }}}}{body}{{{{ else }}}}{L(th["pre"] + th["post"])}{{{{ end }}}}' if th["always"] \
                else f"{{{{ if .Thinking }}}}{body}{{{{ end }}}}"
        if recent:
            mid = f'{{{{ if not (and $_.Thinking (gt $i $lastUser)) }}}}{mid}{{{{ end }}}}'
        cuts.append((at, drop, mid))

    def opener(raw: str, shift: int = 0) -> str:
        """``raw`` (the assistant turn's opener, or one that ends with it: ``shift`` characters more
        before it) with the thinking blocks in it."""
        pieces, pos = [], 0
        for at, drop, text in sorted(cuts, key=lambda c: c[0]):
            pieces += [L(raw[pos:at + shift]), text]
            pos = at + shift + drop
        return "".join(pieces) + L(raw[pos:])
    a_pre = opener(p["a_pre"])
    calls = p.get("calls")
    if calls is None:
        out.append(f'{{{{ else if eq .Role "assistant" }}}}{a_pre}{{{{ .Content }}}}{L(p["a_post"])}'
                   f'{{{{ end }}}}{{{{ end }}}}')
        return "".join(out)
    from .chat_tools import TM, calls_snippet
    res = p["results"]

    def named(text: str) -> str:       # a result's opening, with its tool's name
        return "{{ .ToolName }}".join(L(x) for x in text.split(TM["rn1"]))
    if res.get("a_pre") is not None:    # an answer right after a tool result opens its own way
        after = res["a_pre"]
        # (Qwen 3 closes the results' turn there, then opens the answer as any other: an agent loop's
        # thinking goes into that opener too; thinking in earlier turns never gets here)
        after = opener(after, len(after) - len(p["a_pre"])) if recent and after.endswith(p["a_pre"]) else L(after)
        a_pre = f'{{{{ if eq $prev "tool" }}}}{after}{{{{ else }}}}{a_pre}{{{{ end }}}}'
    text = "{{ if not .ToolCalls }}{{ .Content }}{{ end }}" if calls.get("drops_text") else "{{ .Content }}"
    body = calls_snippet(calls, L) + text if calls.get("text_after") else text + calls_snippet(calls, L)
    if calls.get("whole_turn"):       # a turn that calls is its calls, opener and closer their own
        before = ""           # thinking before the calls, only when there is some (Glimmer's "to=self" message)
        if calls.get("think"):
            before = f'{{{{ if .Thinking }}}}{L(calls["think"][0])}{{{{ .Thinking }}}}{L(calls["think"][1])}{{{{ end }}}}'
        # through the range variable: Ollama's tool parser takes its tag from the first {{ if }} on a
        # .ToolCalls field, which must be the calls' own (tools.parseTag)
        turn = (f'{{{{ if $_.ToolCalls }}}}{before}{calls_snippet(calls, L)}{{{{ else }}}}{a_pre}{{{{ .Content }}}}'
                f'{L(p["a_post"])}{{{{ end }}}}')
    else:
        turn = f'{a_pre}{body}{L(p["a_post"])}'
    out.append(f'{{{{ else if eq .Role "assistant" }}}}{turn}{{{{ else if eq .Role "tool" }}}}'
               # the roles before and after this message: consecutive results share one turn
               '{{ $next := "" }}{{ range $j, $m := slice $.Messages $i }}{{ if eq $j 1 }}{{ $next = $m.Role }}'
               '{{ break }}{{ end }}{{ end }}'
               f'{{{{ if eq $prev "tool" }}}}{named(res["join"])}{{{{ else }}}}{named(res["pre"])}{{{{ end }}}}'
               f'{"{{ json .Content }}" if res.get("quoted") else "{{ .Content }}"}'
               f'{{{{ if ne $next "tool" }}}}{L(res["post"])}{{{{ end }}}}')
    gen = res.get("gen", p["gen"])     # the generation prompt after a tool result
    if gen:
        out.append(f'{{{{ if $last }}}}{L(gen)}{{{{ end }}}}')
    out.append("{{ end }}{{ $prev = .Role }}{{ end }}")
    start = '{{ $prev := "" }}' + ("{{ $toolsDone := false }}" if p.get("first_user_tools") else "")
    if recent:
        start += ('{{ $lastUser := -1 }}{{ range $li, $lm := .Messages }}{{ if eq $lm.Role "user" }}'
                  '{{ $lastUser = $li }}{{ end }}{{ end }}')
    return "".join(out).replace("{{ range $i, $_ := .Messages }}", start + "{{ range $i, $_ := .Messages }}", 1)


_CHECKS = [
    [("user", "Hello!")],
    [("user", "Hello!"), ("assistant", "Hi. How can I help?"), ("user", "What is 2+2? Answer\nbriefly.")],
    [("system", "You are a terse assistant."), ("user", "Name a prime.")],
    [("system", "Be kind."), ("user", "Hi."), ("assistant", "Hello there."), ("user", "Tell me a joke.")],
    [("user", "One"), ("assistant", "Two"), ("user", "Three"), ("assistant", "Four"), ("user", "Five")],
    [("system", ""), ("user", "Hi.")],        # an empty system message is still a system turn
]


def _stop_words(p: dict, vocab: Optional[set], bos: str) -> list[str]:
    # not the generation prompt's own additions: the model writes after them, not them (DeepSeek-R1's
    # "<think>" would otherwise stop every answer before it starts)
    texts = [p.get(k, "") for k in ("u_pre", "u_post", "a_pre", "a_post", "s_pre", "s_post", "sep", "pre")]
    seen: list[str] = []
    for t in texts:
        for m in _SPECIAL.findall(t):
            if m == bos or m in seen or m == "<s>" or "think" in m.lower():
                continue    # not BOS, and not thinking tags (an answer opens with <think>, Qwen's history has it)
            if vocab is not None and m not in vocab:
                continue
            seen.append(m)
    if not seen and p["u_pre"].strip():
        seen.append(p["u_pre"].strip())   # no special tokens: stop before the model writes a user turn
    return seen


def derive_template(jinja_src: str, *, vocab: Optional[Sequence[str]] = None, bos_token: str = "",
                    eos_token: str = "", timeout: float = TIMEOUT) -> DerivedTemplate:
    """An Ollama Go template and stop words equivalent to ``jinja_src`` (or TemplateDerivationError).

    ``vocab``: the model's special tokens (stop words are kept only if they are tokens);
    ``eos_token`` is what the template's ``eos_token`` renders as.
    """
    from .chat_tools import with_py_json
    d = _derive_one(jinja_src, vocab, bos_token, eos_token, timeout, {})
    if "enable_thinking" in jinja_src:
        _think_variants(d, jinja_src, vocab, bos_token, eos_token, timeout)
    d.template = with_py_json(d.template)
    return d


def _think_variants(d: DerivedTemplate, src: str, vocab, bos: str, eos: str, timeout: float) -> None:
    """A chat template switched by ``enable_thinking`` (Qwen 3, Laguna, Nemotron) is derived three times:
    as it renders by default, with thinking on and with it off; Ollama's ``.IsThinkSet`` and ``.Think``
    (a request's ``think``) pick one. Variants that render alike are written once."""
    try:
        on = _derive_one(src, vocab, bos, eos, timeout, {"enable_thinking": True})
        off = _derive_one(src, vocab, bos, eos, timeout, {"enable_thinking": False})
    except TemplateDerivationError as e:
        d.thinking_error = str(e).replace("cannot turn the chat template into an Ollama template: ", "")
        return
    if on.tools != d.tools or off.tools != d.tools:
        d.thinking_error = "tools are written with thinking on or off but not in both"
        return
    on_t = _level_variants(d, on, src, vocab, bos, eos, timeout)
    if on_t == d.template and off.template == d.template:
        return
    on = dataclasses.replace(on, template=on_t)
    if on.template == d.template:
        d.template = f"{{{{ if and .IsThinkSet (not .Think) }}}}{off.template}{{{{ else }}}}{d.template}{{{{ end }}}}"
    elif off.template == d.template:
        d.template = f"{{{{ if and .IsThinkSet .Think }}}}{on.template}{{{{ else }}}}{d.template}{{{{ end }}}}"
    else:
        d.template = (f"{{{{ if and .IsThinkSet .Think }}}}{on.template}{{{{ else if .IsThinkSet }}}}{off.template}"
                      f"{{{{ else }}}}{d.template}{{{{ end }}}}")
    d.think_switch = True
    d.thinking = d.thinking or on.thinking or off.thinking


#: the levels Ollama hands a template in ``.ThinkLevel`` (``think: true`` is "medium")
OLLAMA_THINK_LEVELS = ("low", "medium", "high", "max")


def _level_variants(d: DerivedTemplate, on: DerivedTemplate, src: str, vocab, bos: str, eos: str,
                    timeout: float) -> str:
    """The "thinking on" template, choosing by ``.ThinkLevel`` among the chat template's
    ``reasoning_effort`` levels that Ollama's level names (Qwen 3.8 takes low and medium; a request's
    ``think: true`` is Ollama's "medium", as its own Qwen 3.8 renderer has it). A level the chat
    template refuses, or renders as with no level, is left to the plain "on" template."""
    if "reasoning_effort" not in src:
        return on.template
    branches = []
    for level in OLLAMA_THINK_LEVELS:
        try:
            v = _derive_one(src, vocab, bos, eos, timeout, {"enable_thinking": True, "reasoning_effort": level})
        except TemplateDerivationError:
            continue        # the chat template refuses the level (raise_exception): not one of its own
        if v.tools == on.tools and v.template != on.template:
            branches.append((level, v.template))
    if not branches:
        return on.template
    d.think_levels = [level for level, _ in branches]
    out = "".join(f'{{{{ {"if" if i == 0 else "else if"} eq .ThinkLevel "{level}" }}}}{t}'
                  for i, (level, t) in enumerate(branches))
    return f"{out}{{{{ else }}}}{on.template}{{{{ end }}}}"


def _derive_one(jinja_src: str, vocab, bos_token: str, eos_token: str, timeout: float,
                variables: dict) -> DerivedTemplate:
    """One derivation, with the chat template's ``variables`` (``enable_thinking``) set as given."""
    from .gotemplate import check_ollama_template
    if not jinja_src or not jinja_src.strip():
        _fail("the chat template is empty")
    probes = {
        "g0": ([_msg("user", "u1")], False),
        "g1": ([_msg("user", "u1")], True),
        "t": ([_msg("user", "u1"), _msg("assistant", "a1")], False),
        "t2": ([_msg("user", "u1"), _msg("assistant", "a1"), _msg("user", "u2")], True),
        "s": ([_msg("system", "sys"), _msg("user", "u1")], False),
        "w": ([{"role": "user", "content": " \n" + _M["u1"] + " \n"}], False),   # does it trim messages?
        "s0": ([{"role": "system", "content": ""}, _msg("user", "u1")], False),     # an empty system message
    }
    checks = [([{"role": r, "content": c} for r, c in conv], True) for conv in _CHECKS]
    # BOS is what the template writes (Llama 2 opens every turn with it); the runtime adds the first
    # one itself, so one leading BOS is taken off every rendering
    results = render_jinja(jinja_src, list(probes.values()) + checks + [_think_probe()], bos_token=bos_token,
                           eos_token=eos_token, timeout=timeout, variables=variables)
    if bos_token:
        results = [x[len(bos_token):] if isinstance(x, str) and x.startswith(bos_token) else x for x in results]
    r = dict(zip(probes, results))
    r["th"] = results[-1]
    wants = results[len(probes):-1]
    first_error = None
    for cand in _candidates(r):
        try:
            p = _solve(cand, eos_token, bos_token)
            _find_thinking(p, cand)
            go = _dates_to_go(_go_template(p))
            nodes = check_ollama_template(go)
            agreed = _verify(nodes, p, wants)
            if "think" in p:
                _verify_thinking(nodes, p, cand["th"])
            break
        except TemplateDerivationError as e:
            first_error = first_error or e
    else:
        raise first_error
    vocab_set = set(vocab) if vocab is not None else None
    w = r["w"]
    trims = isinstance(w, str) and _M["u1"] in w and " \n" + _M["u1"] + " \n" not in w
    d = DerivedTemplate(go, _stop_words(p, vocab_set, bos_token), p["system"], agreed, p, trims)
    d.thinking = "think" in p and not p["think"].get("hidden")
    if "tool" in jinja_src:
        try:
            tgo, tp = _derive_tools(jinja_src, r, probes, bos_token, eos_token, timeout, variables, p)
        except TemplateDerivationError as e:
            d.tools_error = str(e).replace("cannot turn the chat template into an Ollama template: ", "")
        except Exception as e:   # a bug in the optional part: keep the template without tools, and say so
            d.tools_error = f"internal error ({type(e).__name__}: {e}); please report it"
        else:
            if tgo is not None:
                d.template = "{{ if .Tools }}" + tgo + "{{ else }}" + go + "{{ end }}"
                d.tools = True
                d.parts = dict(p, tools=tp)
                # thinking written in an agent loop's turns, with the tags Ollama infers from it
                d.thinking = d.thinking or bool((tp.get("recent_thinking") or {}).get("tags"))
    return d


_THINK = "@@TH_7a1@@"


def _think_probe() -> tuple:
    """user, assistant (with a thinking marker under every name templates read it by), user."""
    a = {"role": "assistant", "content": _M["a1"], "reasoning_content": _THINK, "reasoning": _THINK,
         "thinking": _THINK}
    return ([_msg("user", "u1"), a, _msg("user", "u2")], True)


def _find_thinking(p: dict, r: dict) -> None:
    """Where an earlier assistant turn's thinking goes (``p["think"]``), from the thinking probe
    against the same conversation without it: at an offset of the assistant prefix, always (an
    empty thinking writes the same tags) or only when there is some."""
    th, t2 = r.get("th"), r.get("t2")
    if not isinstance(th, str) or not isinstance(t2, str) or th == t2:
        return
    if th.count(_THINK) > 1:
        _fail("an assistant turn's thinking is written more than once")
    n = 0
    while n < min(len(th), len(t2)) and th[n] == t2[n]:
        n += 1
    m = 0
    while m < min(len(th), len(t2)) - n and th[len(th) - 1 - m] == t2[len(t2) - 1 - m]:
        m += 1
    inserted, mid = th[n:len(th) - m], t2[n:len(t2) - m]
    ia = t2.find(_M["a1"])
    start = ia - len(p["a_pre"])
    if ia < 0 or not start <= n <= ia or t2[start:ia] != p["a_pre"]:
        _fail("an assistant turn's thinking is written outside the turn's opening")
    at = n - start
    if _THINK not in inserted:
        # the thinking itself is not written, but its presence changes the turn (Nemotron adds a
        # newline after an empty <think></think>)
        if mid:
            _fail("an assistant turn with thinking changes more than the thinking")
        p["think"] = {"at": at, "pre": inserted, "post": "", "always": False, "drop": 0, "hidden": True}
        return
    pre, post = _cut(inserted, _THINK)
    if mid == pre + post:
        a = p["a_pre"]
        if not pre and not post:
            # no tag of its own around it (Qwen's "<think>\n" + thinking + "\n</think>"): take the tags
            # of the prefix around the insertion, so that Ollama infers them (thinking.InferTags)
            lt = a.rfind("<", 0, at)
            gt = a.find(">", at)
            if lt >= 0 and gt >= 0:
                gt += 1
                while gt < len(a) and a[gt] in " \n":
                    gt += 1
                pre, post, at = a[lt:at], a[at:gt], lt
                mid = pre + post
        p["think"] = {"at": at, "pre": pre, "post": post, "always": True, "drop": len(mid)}
    elif mid == "":
        p["think"] = {"at": at, "pre": pre, "post": post, "always": False, "drop": 0}
    else:
        _fail("an assistant turn with thinking changes more than the thinking")


def _check_rendering(nodes, p: dict, messages: list[dict], want: str, day, tools: Optional[list] = None,
                     what: str = "") -> None:
    """The derived template, rendered on ``messages`` (chat-template form) with Ollama's data and
    ``day`` as Ollama's date, must give ``want`` (the chat template's text, its date markers set to
    ``day``), or TemplateDerivationError."""
    from . import gotemplate
    from .chat_tools import go_message, go_tools
    data = {"Messages": [go_message(m) for m in messages], "Tools": go_tools(tools),
            "System": "\n\n".join(m.get("content") or "" for m in messages if m["role"] == "system")}
    if p["system"] == "unsupported":
        data["Messages"] = [m for m in data["Messages"] if m["Role"] != "system"]
    want = _DATE_MARK.sub(lambda m: day.strftime(m.group(1)), want)
    gotemplate.TODAY = lambda: day
    try:
        got = gotemplate.render(nodes, data)
    finally:
        gotemplate.TODAY = None
    if got != want:
        at, a, b = _first_difference(got, want)
        _fail(f"{what}the derived template renders {a!r} where the chat template gives {b!r} (from character {at})")


def _first_difference(got: str, want: str, before: int = 30, after: int = 50) -> tuple[int, str, str]:
    """Where two renderings part, and each one's text around that place (a few characters of the
    common text before it, so the reader sees where it is)."""
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    start = max(0, i - before)

    def cut(s: str) -> str:
        return ("..." if start else "") + s[start:i + after] + ("..." if len(s) > i + after else "")
    return i, cut(got), cut(want)


_CHECK_DAYS = (datetime.date(2031, 2, 3), datetime.date(2029, 11, 28))


def _verify_thinking(nodes, p: dict, want: str) -> None:
    """The thinking probe, rendered by the derived template with the thinking as Ollama's
    ``.Thinking``, must give what the chat template gave."""
    msgs, _gen = _think_probe()
    _check_rendering(nodes, p, [dict(m, thinking=m.get("reasoning_content", "")) for m in msgs], want,
                     _CHECK_DAYS[0], what="with thinking, ")


def _tool_checks() -> list:
    """Conversations with tools the derived template is checked on: (messages, tools)."""
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                "parameters": {"type": "object", "required": ["city"], "properties": {
                                                    "city": {"type": "string", "description": "The city"},
                                                    "days": {"type": "integer", "description": "How many days"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}}}}}
    clock = {"type": "function", "function": {"name": "now", "description": "The time",
                                              "parameters": {"type": "object", "properties": {}}}}
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "unit": "c", "hourly": True}}}
    call2 = {"function": {"name": "now", "arguments": {}}}
    u = {"role": "user", "content": "Weather in Paris, and the time?"}
    return [
        ([u], [weather]),
        ([{"role": "system", "content": "Use tools."}, u], [weather, clock]),
        ([u, {"role": "assistant", "content": "", "tool_calls": [call]},
          {"role": "tool", "content": "21 C", "name": "get_weather"}], [weather]),
        ([{"role": "system", "content": "Be brief."}, u,
          {"role": "assistant", "content": "Checking.", "tool_calls": [call, call2]},
          {"role": "tool", "content": "21 C"}, {"role": "tool", "content": "10:00"},
          {"role": "assistant", "content": "21 C at 10:00."}, {"role": "user", "content": "Thanks"}], [weather, clock]),
        # a second turn that calls: a flag the template sets at the first call must not change it
        ([u, {"role": "assistant", "content": "", "tool_calls": [call]}, {"role": "tool", "content": "21 C"},
          {"role": "assistant", "content": "21 C."}, {"role": "user", "content": "And the time?"},
          {"role": "assistant", "content": "", "tool_calls": [call2]}, {"role": "tool", "content": "10:00"}],
         [weather, clock]),
    ]


def _derive_tools(src: str, r: dict, probes: dict, bos: str, eos: str, timeout: float, variables: dict,
                  plain: dict):
    """The Go template of a conversation with tools (None: the chat template ignores tools) and the
    parts found, or TemplateDerivationError with the reason. Calls' arguments go to the chat template
    as a map (transformers' convention); a template that splices them in as text (DeepSeek's, or one
    that prints them as they are) is tried again with the JSON string of that map."""
    try:
        return _derive_tools_with(src, r, probes, bos, eos, timeout, variables, plain, False)
    except _NotationTurn as n:
        # Gemma 4's notation in turns of the usual kind (results as tool turns, the shape of an earlier
        # Gemma 4 template): its definitions and calls, solved the general way; else both reasons
        try:
            return _derive_tools_with(src, r, probes, bos, eos, timeout, variables, plain, False, n.quote)
        except TemplateDerivationError as general:
            why = str(general).replace("cannot turn the chat template into an Ollama template: ", "")
            raise TemplateDerivationError(f"{n.error} (and as turns of the usual kind: {why})") from None
    except TemplateDerivationError as first:
        try:
            return _derive_tools_with(src, r, probes, bos, eos, timeout, variables, plain, True)
        except TemplateDerivationError as second:
            # the reason of the convention the template takes: strings, if maps did not even render
            raise (second if "concatenate str" in str(first) else first) from None


class _NotationTurn(Exception):
    """Tools in Gemma 4's notation whose turn is not Gemma 4's: the notation's reason, and its quote."""

    def __init__(self, error: TemplateDerivationError, quote: str):
        super().__init__(str(error))
        self.error, self.quote = error, quote


def _derive_tools_with(src: str, r: dict, probes: dict, bos: str, eos: str, timeout: float, variables: dict,
                       plain: dict, string_args: bool, notation: Optional[str] = None):
    """``plain``: the parts of the conversation without tools (``_solve``'s, as derived and checked);
    ``notation``: the quote of Gemma 4's notation, whose definitions and calls are then found in turns
    solved the general way."""
    from .chat_tools import (TM, ToolShapeError, call_view, find_calls, find_definitions,
                             json_snippet, probe_calls, probe_tools, tool_view, with_py_json)
    from .gotemplate import check_ollama_template
    t1, t2 = probe_tools()
    tv = [tool_view(t1)]
    u1, u2 = _msg("user", "u1"), _msg("user", "u2")

    def tool(key):
        # a result with its tool's name, as Ollama hands a tool_name to a chat template ("name")
        return {"role": "tool", "content": TM[key], "name": TM["rn" + key[-1]]}

    def jobs_for(string_args: bool):
        """The probes and checks; calls' arguments as a map (transformers' convention) or, for
        templates that splice them in as text (DeepSeek), as the JSON string of that map."""
        c = {k: call_view(v, string_args) for k, v in probe_calls().items()}

        def asst(*calls, content=""):
            return {"role": "assistant", "content": content, "tool_calls": list(calls)}
        extra = {
            "tt": ([u1], False, [tool_view(t1), tool_view(t2)]),
            "k1": ([u1, asst(c["c1"]), u2], True, tv), "k2": ([u1, asst(c["c1b"]), u2], True, tv),
            "k0": ([u1, asst(c["c0"]), u2], True, tv), "kk": ([u1, asst(c["c1"], c["c0"]), u2], True, tv),
            "kb": ([u1, asst(c["cb"]), u2], True, tv), "kn": ([u1, asst(c["cn"]), u2], True, tv),
            "km": ([u1, asst(c["cm"]), u2], True, tv),
            # a turn that calls, with thinking (where a turn that calls is written whole: is it there?)
            "kt": ([u1, dict(asst(c["c1"]), reasoning_content=_THINK, reasoning=_THINK, thinking=_THINK), u2],
                   True, tv),
            # the same after the last user message, with its result (Gemma 4, Nemotron 3, GLM and MiniMax
            # write thinking only there: an agent loop's turns), and two such turns
            "kt2": ([u1, dict(asst(c["c1"]), reasoning_content=_THINK, reasoning=_THINK, thinking=_THINK),
                     tool("tr1")], True, tv),
            "kt3": ([u1, dict(asst(c["c1"]), reasoning_content=_THINK, reasoning=_THINK, thinking=_THINK),
                     tool("tr1"), dict(asst(c["c1b"]), reasoning_content=_M["a1"], reasoning=_M["a1"],
                                       thinking=_M["a1"]), tool("tr2")], True, tv),
            "kc": ([u1, asst(c["c1"], content=_M["a1"]), u2], True, tv),
            "r1": ([u1, asst(c["c1"]), tool("tr1"), u2], True, tv),
            "r2": ([u1, asst(c["c1"], c["c0"]), tool("tr1"), tool("tr2"), u2], True, tv),
            # after a result: the generation prompt, and the answer turn (DeepSeek writes neither's opener)
            "rg": ([u1, asst(c["c1"]), tool("tr1")], True, tv),
            "ra": ([u1, asst(c["c1"]), tool("tr1"), _msg("assistant", "a1"), u2], True, tv),
        }
        checked = [([dict(m, tool_calls=[call_view(x, string_args) for x in m["tool_calls"]])
                     if m.get("tool_calls") else m for m in msgs], True, [tool_view(t) for t in tools])
                   for msgs, tools in checks]
        return extra, [(m, g, tv) for m, g in probes.values()] + list(extra.values()) + checked
    checks = _tool_checks()
    extra, jobs = jobs_for(string_args)
    out = render_jinja(src, jobs, bos_token=bos, eos_token=eos, timeout=timeout, variables=variables)
    if bos:
        out = [x[len(bos):] if isinstance(x, str) and x.startswith(bos) else x for x in out]
    names = list(probes) + list(extra)
    rt = dict(zip(names, out))
    wants = out[len(names):]
    single = isinstance(rt["kk"], tuple) and isinstance(rt["r2"], tuple) and "raised" in rt["kk"][1]
    if single:     # the template refuses two calls in one turn (Llama 3.1): one call per turn is all there is
        del rt["kk"], rt["r2"]
    for k in ("rg", "ra", "kb", "kn", "km", "kt", "kt2", "kt3"):   # not every template takes these: then they are not written differently
        if isinstance(rt[k], tuple):
            del rt[k]
    for k, v in rt.items():
        if isinstance(v, tuple):
            _fail(f"a conversation with tools does not render ({v[1]})")
    from .chat_tool_notation import quote, recognises

    def render(more):          # the chat template's renderings of more jobs, without the leading BOS
        out = render_jinja(src, more, bos_token=bos, eos_token=eos, timeout=timeout, variables=variables)
        return [x[len(bos):] if bos and isinstance(x, str) and x.startswith(bos) else x for x in out]
    if notation is None and recognises(rt["g0"], TM["tn1"], TM["td1"]):
        # Gemma 4's notation: written as it is, its tokens learned, every probe and check rendered
        jobs = dict(zip(names, ((m, g, t) for m, g, t in
                                [(m, g, tv) for m, g in probes.values()] + list(extra.values()))))
        try:
            return _notation_tools(rt, plain, jobs, checks, wants, render)
        except TemplateDerivationError as e:
            q = quote(rt["g0"], TM["tn1"], TM["td1"])
            if not q:
                raise
            raise _NotationTurn(e, q) from None
    defs = None
    if rt["g0"] == r["g0"] and rt["tt"] == r["g0"]:
        if TM["tn1"] not in rt["k1"]:
            return None, None         # tools are ignored: the template without them is the answer
        # no definitions, but calls and results are written (DeepSeek-R1's distills)
    try:
        if defs is None and rt["g0"] != r["g0"]:
            try:
                defs = find_definitions(rt["g0"], rt["tt"], t1, t2)
            except ToolShapeError as e:
                if "not written as JSON" not in str(e):
                    raise
                defs = _notation_definitions(rt, t1, t2, notation) if notation else \
                    _field_definitions(src, rt, bos, eos, timeout, variables, e)
        marked = {k: v.replace(defs["text"], TM["tools"]) if defs else v for k, v in rt.items() if k != "tt"}
        for n in range(len((defs or {}).get("names") or [])):   # lists of names too: the first names are theirs
            marked = {k: v.replace(TM["tn1"], f'{TM["names"]}{n}@', 1) for k, v in marked.items()}
        if any(TM[x] in v for k, v in marked.items() if k in probes for x in ("tn1", "td1", "tp1", "tpd1")):
            raise ToolShapeError("a tool's name or description is written outside its definition")
        # tool definitions in the first user message, before its text (Llama 3.1): that block is taken
        # out of every rendering, the rest solved as usual, and the block written back in the first
        # user turn
        first_user = None
        cut = _cut(marked["g0"], _M["u1"])
        if cut is not None and TM["tools"] in cut[0]:
            before = cut[0]
            u_pre = plain["u_pre"]
            at = before.rfind(u_pre, 0, before.find(TM["tools"]))
            if at >= 0:
                start = at + len(u_pre)
                block = before[start:]
                if TM["tools"] in block and _M["sys"] not in block:
                    first_user = block
                    marked = {k: v.replace(block + _M["u1"], _M["u1"], 1) for k, v in marked.items()}
        p = None
        first_error = None
        for cand in _candidates(marked):
            try:
                p = _solve(cand, eos, bos)
                break
            except TemplateDerivationError as e:
                first_error = first_error or e
        if p is None:
            raise first_error
        # the assistant turn with calls, between what the plain probes put around an assistant turn
        t2r, g0 = marked["t2"], marked["g0"]
        ia = t2r.find(_M["a1"], len(g0))
        if not t2r.startswith(g0) or ia < 0:
            raise ToolShapeError("an assistant turn renders differently with tools")
        head, tail = t2r[:ia], t2r[ia + len(_M["a1"]):]
        if not tail.startswith(p["a_post"]):
            raise ToolShapeError("an assistant turn ends differently with tools")
        a_post = p["a_post"]   # what closes a turn that calls: the plain turn's closer (none if written whole)
        probed = [k for k in ("k1", "k2", "k0", "kk", "kc", "kb", "kn", "km") if k in marked]
        whole = not all(marked[k].startswith(head) and marked[k].endswith(tail) for k in probed)
        if whole:
            # a turn that calls is written whole, opener and closer its own (Glimmer's
            # "<|start|>assistant to=NAME<|message|>...<|eom|>" per call): calls stand where the turn would
            if not head.endswith(p["a_pre"]):
                raise ToolShapeError("an assistant turn with tool calls is placed unlike one without")
            head, tail, a_post = head[:len(head) - len(p["a_pre"])], tail[len(a_post):], ""

        def middle(key):
            v = marked[key]
            if not v.startswith(head) or not v.endswith(tail):
                raise ToolShapeError("an assistant turn with tool calls is placed unlike one without")
            return v[len(head):len(v) - len(tail)]
        # the turn's text before its calls, after them (LFM2), or (Llama 3.1) not at all in a turn that calls
        drops_text = middle("kc") == middle("k1")
        text_after = middle("kc") == middle("k1") + _M["a1"]
        calls = find_calls({"k1": middle("k1"), "k2": middle("k2"), "k0": middle("k0"),
                            "kk": None if single else middle("kk"),
                            **{k: middle(k) for k in ("kb", "kn", "km") if k in marked},
                            "kc": middle("k1") if drops_text or text_after else
                            middle("kc")[len(_M["a1"]):] if middle("kc").startswith(_M["a1"]) else ""},
                           tokens=_SPECIAL, quotes=(notation,) if notation else ())
        calls["drops_text"], calls["text_after"], calls["whole_turn"] = drops_text, text_after, whole
        if whole and not drops_text:
            raise ToolShapeError("a turn that calls is written whole, with its text in a place of its own")
        after = tail[len(a_post):]          # the next user turn and the generation prompt

        def results(key, calls_text):
            v = marked[key]
            start = head + calls_text + a_post
            if not v.startswith(start) or not v.endswith(after):
                raise ToolShapeError("a tool result is placed unlike a turn after the assistant's")
            return v[len(start):len(v) - len(after)]
        one = results("r1", middle("k1"))
        i1 = one.find(TM["tr1"])
        if i1 < 0:
            raise ToolShapeError("a tool result's text is not written")
        pre, post = one[:i1], one[i1 + len(TM["tr1"]):]
        join = post + pre                     # one call per turn: results never follow each other
        if not single:
            two = results("r2", middle("kk"))
            j1, j2 = two.find(TM["tr1"]), two.find(TM["tr2"])
            if j1 < 0 or j2 < j1 or two[:j1] != pre or two[j2 + len(TM["tr2"]):] != post:
                raise ToolShapeError("two tool results are not written like one")
            join = two[j1 + len(TM["tr1"]):j2]
        # the tool's name, where a result is written with it (Glimmer's "<|start|>tool NAME<|message|>"):
        # in what opens a result, as the result's own .ToolName
        if TM["rn1"] in post or TM["rn1"] in join:
            raise ToolShapeError("a tool result's name is written after the result")
        join = join.replace(TM["rn2"], TM["rn1"])
        res = {"pre": pre, "post": post, "join": join}
        # what follows a result where a turn would open: the generation prompt, and an answer turn's
        # opening (DeepSeek V3.1 continues its answer straight after the tool's output)
        done = head + middle("k1") + a_post + one
        if "rg" in marked:
            if not marked["rg"].startswith(done):
                raise ToolShapeError("a conversation that ends with a tool result renders unlike one going on")
            gen = marked["rg"][len(done):]
            if gen != p["gen"]:
                res["gen"] = gen
        if "ra" in marked:
            v = marked["ra"]
            ia = v.find(_M["a1"], len(done))
            if not v.startswith(done) or ia < 0 or v[ia + len(_M["a1"]):] != p["a_post"] + after:
                raise ToolShapeError("an answer after a tool result is written unlike another assistant turn")
            if v[len(done):ia] != p["a_pre"]:
                if "think" in plain:
                    raise ToolShapeError("an answer after a tool result opens differently, and thinking goes "
                                         "into assistant turns")
                res["a_pre"] = v[len(done):ia]
        # a result written as a JSON string (Llama 3.1's tojson of the content)
        quoted = pre.endswith('"') and post.startswith('"') and join.startswith('"') and join.endswith('"')
        if quoted:
            res.update(pre=pre[:-1], post=post[1:], join=join[1:-1])
        res["quoted"] = quoted
        p.update(calls=calls, results=res, first_user_tools=first_user)
        if "think" in plain:
            if p["a_pre"] != plain["a_pre"]:
                raise ToolShapeError("an assistant turn opens differently with tools, and thinking goes into it")
            th = plain["think"]
            if whole:
                # thinking written before the turn's opener, only when there is some (Glimmer's
                # "to=self" message): the same before a turn that calls, or not derived
                kt, k1 = (middle("kt") if "kt" in marked else ""), middle("k1")
                block = kt[:len(kt) - len(k1)] if kt.endswith(k1) else ""
                if th.get("always") or th.get("hidden") or block.count(_THINK) != 1:
                    raise ToolShapeError("a turn that calls is written whole, and its thinking is written "
                                         "unlike a plain turn's")
                calls["think"] = block.split(_THINK)
            p["think"] = plain["think"]
    except ToolShapeError as e:
        _fail(str(e))
    rng = "" if defs is None else (
        f'{{{{ range $ti, $tool := $.Tools }}}}{{{{ if $ti }}}}{_go_lit(defs["join"])}{{{{ end }}}}'
        f'{defs.get("go") or json_snippet("$tool", indent=defs["indent"], root=defs["root"])}{{{{ end }}}}')

    def build(p: dict) -> str:
        go = _dates_to_go(_go_template(p)).replace(TM["tools"], rng)
        for n, between in enumerate((defs or {}).get("names") or []):
            go = go.replace(f'{TM["names"]}{n}@', f'{{{{ range $ni, $nt := $.Tools }}}}{{{{ if $ni }}}}{_go_lit(between)}'
                                                    f'{{{{ end }}}}{{{{ $nt.Function.Name }}}}{{{{ end }}}}')
        return go

    # Gemma 4's notation: every kind of property and value, as the notation path checks
    more = [_every_kind(render)] if notation else []

    def check(go: str):
        # the definitions that write nested JSON values go at the top of the whole template (Go takes a
        # {{ define }} nowhere else): derive_template puts them there
        nodes = check_ollama_template(with_py_json(go))
        _check_tool_conversations(nodes, p, checks, wants, more)
        return nodes
    go = build(p)
    check(go)
    recent = None if whole or "kt2" not in rt else _recent_thinking(p, rt["kt2"], rt.get("rg"))
    if recent is not None:
        # kept only if the agent-loop probes then render exactly, and the checks still do
        p2 = dict(p, recent_think=recent)
        go2 = build(p2)
        try:
            nodes = check(go2)
            for key in ("kt2", "kt3"):
                if isinstance(rt.get(key), str):
                    msgs, _gen, _tools = extra[key]
                    _check_rendering(nodes, p2, msgs, rt[key], _CHECK_DAYS[0], [t1], what=f"with tools ({key}), ")
        except TemplateDerivationError:
            pass
        else:
            go, p = go2, p2
    return go, {"definitions": None if defs is None else {k: v for k, v in defs.items() if k not in ("text", "go")},
                "calls": calls,
                "results": p["results"], "recent_thinking": p.get("recent_think")}


def _recent_thinking(p: dict, with_thinking: str, without: Optional[str]) -> Optional[dict]:
    """Thinking a template writes only in turns after the last user message, the turns of an agent
    loop (Nemotron 3, GLM-4.5 and 4.6, MiniMax-M2, LFM2.5: what a turn before it drops): where in the
    assistant turn's opener, and between what, from a calling turn with thinking after the last user
    message against the same turn without (the ``kt2`` and ``rg`` probes); None where they differ by
    more than one block around the thinking, or the block is not in the opener."""
    from .chat_tools import _once
    if not isinstance(without, str) or with_thinking == without:
        return None
    t = _once(with_thinking, _THINK)
    if t < 0:
        return None
    after = len(with_thinking) - t - len(_THINK)
    a_pre, th = p["a_pre"], p.get("think")
    # where the block goes: the longest shared start that ends inside the calling turn's opener
    # (LFM2.5's "<think>" and "<|tool_call_start|>" share their "<", which belongs to the calls)
    for a in range(len(os.path.commonprefix([with_thinking[:t], without])), -1, -1):
        if len(without) - a > after or not with_thinking.endswith(without[a:]):
            return None      # more than one block around the thinking differs
        start = without.rfind(a_pre, 0, a + len(a_pre))
        if start >= 0 and start <= a <= start + len(a_pre):
            break
    else:
        return None
    at = a - start
    if th and th["at"] < at < th["at"] + th["drop"]:
        return None         # inside what thinking in earlier turns replaces
    out = {"at": at, "pre": with_thinking[a:t], "post": with_thinking[t + len(_THINK):len(with_thinking) - (len(without) - a)]}
    # a block between an empty pair of tags in the opener (Nemotron's "<think></think>", GLM's):
    # the pair goes into the block, so that the block has the tags Ollama infers
    m = re.search(r"<([A-Za-z_][\w.-]{0,30})>$", a_pre[:at])
    close = f"</{m.group(1)}>" if m else ""
    if m and a_pre.startswith(close, at) and not (out["pre"] + out["post"]).strip() and \
            not (th and at - len(m.group(0)) <= th["at"] < at + len(close)):
        out["fold"] = (m.group(0), close)
    o, c = out.get("fold", ("", ""))
    out["tags"] = bool((o + out["pre"]).strip() and (out["post"] + c).strip())    # what Ollama infers
    return out


def _notation_tools(rt: dict, plain: dict, jobs: dict, checks: list, wants: list, render):
    """Tools in Gemma 4's declaration notation (:mod:`ollama_oci.chat_tool_notation`): the Go
    template of a conversation with tools, from the tokens the probe renderings ``rt`` show, used
    only if it renders every probe that asks for a generation prompt, the notation's own probe
    conversation (every kind of property and value) and every check conversation exactly as the chat
    template does (``render``: the chat template's renderings of more jobs)."""
    from . import chat_tool_notation as nt
    from .chat_tools import TM, with_py_json
    from .gotemplate import check_ollama_template
    markers = {"tn1": TM["tn1"], "tn2": TM["tn2"], "td1": TM["td1"], "ak1": TM["ak1"], "av1": TM["av1"],
               "tr1": TM["tr1"], "u1": _M["u1"], "u2": _M["u2"], "sys": _M["sys"], "a1": _M["a1"], "th": _THINK}
    try:
        parts = nt.learn(rt, plain, markers)
    except nt.NotationError as e:
        _fail(f"tools are written as declarations in a notation of their own, but {e}")
    go = nt.go_template(parts)
    nodes = check_ollama_template(with_py_json(go))
    for key, (msgs, gen, tools) in jobs.items():
        # a probe without a generation prompt that ends with the user cannot be asked of Ollama
        if not gen or not isinstance(rt.get(key), str):
            continue
        _check_rendering(nodes, plain, msgs, rt[key], _CHECK_DAYS[0], tools, what=f"with tools ({key}), ")
    _check_tool_conversations(nodes, plain, checks, wants, [_every_kind(render)])
    return go, {"definitions": {"notation": "declaration", "quote": parts["q"]},
                "calls": {"form": "notation", "quote": parts["q"]}, "results": {"in_turn": True}}


def _every_kind(render) -> tuple[list, list, str]:
    """The notation's conversation with every kind of property and argument value
    (:func:`chat_tool_notation.probe_conversation`): its messages as the chat template gets them, its
    tools, and the chat template's rendering (``render``)."""
    from .chat_tool_notation import probe_conversation
    from .chat_tools import call_view, tool_view
    msgs, tools = probe_conversation()
    jinja = [dict(m, tool_calls=[call_view(c) for c in m["tool_calls"]]) if m.get("tool_calls") else m for m in msgs]
    (want,) = render([(jinja, True, [tool_view(t) for t in tools])])
    if isinstance(want, tuple):
        _fail(f"a conversation with tools does not render ({want[1]})")
    return jinja, tools, want


def _check_tool_conversations(nodes, p: dict, checks: list, wants: list, more=()) -> None:
    """The derived template with tools (``nodes``) must render every check conversation the chat
    template renders (``wants``; one it refuses, as Llama 3.1 refuses two calls in a turn, has nothing
    to match), at least three of them, and each of ``more`` (messages, tools, rendering)."""
    agreed = 0
    for (msgs, tools), want in zip(checks, wants):
        if isinstance(want, tuple):
            continue
        _check_rendering(nodes, p, msgs, want, _CHECK_DAYS[0], tools, what="with tools, ")
        agreed += 1
    if agreed < 3:
        _fail("too few conversations with tools render with the chat template to check a derived one")
    for msgs, tools, want in more:
        _check_rendering(nodes, p, msgs, want, _CHECK_DAYS[0], tools, what="with tools of every kind, ")


def _notation_definitions(rt: dict, t1: dict, t2: dict, q: str) -> dict:
    """Tool definitions in Gemma 4's notation, found as :func:`chat_tool_notation.declaration` writes
    each probe tool (for the general solver: the definitions' text, what comes between two, the Go
    text for one)."""
    from .chat_tool_notation import declaration, with_defines
    from .chat_tools import ToolShapeError, _once, go_tools
    from .gotemplate import check_ollama_template, render
    go = declaration(q, "$tool")
    nodes = check_ollama_template(with_defines(f"{{{{ range $ti, $tool := .Tools }}}}{go}{{{{ end }}}}"))
    one, two = (render(nodes, {"Tools": go_tools([t]), "Messages": []}) for t in (t1, t2))
    i, j = _once(rt["g0"], one), _once(rt["tt"], one)
    k = _once(rt["tt"], two)
    if i < 0 or j < 0 or k < j + len(one):
        raise ToolShapeError("tool declarations are not written as Gemma 4's notation writes them")
    return {"text": one, "join": rt["tt"][j + len(one):k], "go": go, "indent": None, "root": "notation",
            "names": None}


def _field_definitions(src: str, rt: dict, bos: str, eos: str, timeout: float, variables: dict,
                       not_json: Exception) -> dict:
    """Tool definitions written field by field (Qwen3-Coder's tags): learned from more probes
    (:mod:`ollama_oci.chat_tool_fields`); ``not_json`` is the reason given when that fails too."""
    from .chat_tool_fields import field_probe_tools, learn_field_definitions, tool_check
    from .chat_tools import ToolShapeError, tool_view
    from .gotemplate import render
    lists = field_probe_tools()
    out = render_jinja(src, [([_msg("user", "u1")], False, [tool_view(t) for t in v]) for v in lists.values()],
                       bos_token=bos, eos_token=eos, timeout=timeout, variables=variables)
    r = {"g0": rt["g0"], "tt": rt["tt"]}
    for k, v in zip(lists, out):
        if isinstance(v, tuple):
            raise ToolShapeError(f"{not_json}, and a tool written field by field does not render ({v[1]})")
        r[k] = v[len(bos):] if bos and v.startswith(bos) else v
    try:
        defs = learn_field_definitions(r, tool_check(render))
    except ToolShapeError as e:
        raise ToolShapeError(f"{not_json}, nor field by field: {e}") from None
    return {"text": defs["text"], "join": defs["join"], "go": defs["go"], "indent": None, "root": "fields",
            "names": None}


def _candidates(r: dict):
    """The probe renderings as they are, then, for a template that writes its generation prompt
    whether or not one is asked for (CodeLlama 70B), with that tail moved into the generation prompt:
    the longest common tail first. Which split is right shows in the check that follows."""
    yield r
    g0, t = r["g0"], r["t"]
    if r["g1"] != g0 or not isinstance(t, str):
        return
    k = 0
    while k < min(len(g0), len(t)) and g0[len(g0) - 1 - k] == t[len(t) - 1 - k]:
        k += 1
    for n in range(min(k, 200), 0, -1):
        tail = g0[len(g0) - n:]
        if any(m in tail for m in _M.values()):
            continue
        c = dict(r)
        for key in ("g0", "t", "s", "s0", "w"):
            if isinstance(c.get(key), str) and c[key].endswith(tail):
                c[key] = c[key][:-n]
        c["g1"] = c["g0"] + tail
        yield c


def _verify(nodes, p: dict, wants: list) -> int:
    """Render the derived template on the check conversations (two clocks) and compare with the
    chat template's renderings; the number that agreed, or TemplateDerivationError."""
    agreed = 0
    # two clocks: a date must come from Ollama's currentDate at chat time, never from the pack's clock
    for day in _CHECK_DAYS:
        for conv, want in zip(_CHECKS, wants):
            if isinstance(want, tuple):
                continue  # the Jinja template refuses this conversation (e.g. a system message): nothing to match
            _check_rendering(nodes, p, [{"role": r, "content": c} for r, c in conv], want, day)
            agreed += 1
    agreed //= 2
    if agreed < 2:
        _fail("too few test conversations render with the chat template to check a derived one")
    return agreed


_DATE_MARK = re.compile(DATE_OPEN + "([^" + DATE_CLOSE + "]*)" + DATE_CLOSE)
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _month(names: list[str]) -> str:
    parts = [f'{{{{ {"if" if i == 0 else "else if"} eq (slice currentDate 5 7) "{i + 1:02d}" }}}}{n}'
             for i, n in enumerate(names)]
    return "".join(parts) + "{{ end }}"


def _unpadded(a: int, b: int) -> str:
    return (f'{{{{ if eq (slice currentDate {a} {a + 1}) "0" }}}}{{{{ slice currentDate {a + 1} {b} }}}}'
            f'{{{{ else }}}}{{{{ slice currentDate {a} {b} }}}}{{{{ end }}}}')


_STRFTIME = {
    "Y": "{{ slice currentDate 0 4 }}", "y": "{{ slice currentDate 2 4 }}", "m": "{{ slice currentDate 5 7 }}",
    "d": "{{ slice currentDate 8 10 }}", "-d": _unpadded(8, 10), "-m": _unpadded(5, 7),
    "b": _month([m[:3] for m in _MONTHS]), "h": _month([m[:3] for m in _MONTHS]), "B": _month(_MONTHS),
    "F": "{{ currentDate }}", "%": "%",
}


def _strftime_to_go(fmt: str) -> str:
    """A strftime format as Go template text built from Ollama's ``currentDate`` (YYYY-MM-DD)."""
    if fmt in ("%Y-%m-%d", "%F"):
        return "{{ currentDate }}"
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(_go_lit(c))
            i += 1
            continue
        code = fmt[i + 1:i + 3] if fmt[i + 1:i + 2] == "-" else fmt[i + 1:i + 2]
        if code not in _STRFTIME:
            _fail(f"the chat template writes today's date as strftime_now({fmt!r}); '%{code}' cannot be built "
                  "from Ollama's currentDate (YYYY-MM-DD), and a date is never baked into a template: pass a "
                  "TEMPLATE, or pack with --no-auto-template")
        out.append(_STRFTIME[code])
        i += 1 + len(code)
    return "".join(out)


def _dates_to_go(go: str) -> str:
    """Replace each strftime_now marker in a derived template with Ollama's date at chat time."""
    return _DATE_MARK.sub(lambda m: _strftime_to_go(m.group(1)), go)


def special_tokens(tokens: Sequence[str], types: Optional[Sequence[int]]) -> list[str]:
    """The control and user-defined tokens of a vocabulary (GGUF token types 3 and 4)."""
    if types is None:
        return [t for t in tokens if _SPECIAL.fullmatch(t)]
    return [t for t, ty in zip(tokens, types) if ty in (3, 4)]

"""Tools in Gemma 4's notation: definitions, calls and results written as ``key:value`` text.

Gemma 4's chat template (and FunctionGemma's before it) writes none of its tool text as JSON. A
definition is ``declaration:NAME{description:Q...Q,parameters:{properties:{...},required:[...],
type:QOBJECTQ}}``: keys bare, strings between a quote token ``Q`` (``<|"|>`` in Gemma 4), types in
capitals, and which fields a property has depends on its type (``enum`` only for a string, ``items``
only for an array, ``properties`` for an object). A call is ``call:NAME{key:value,...}`` in the same
notation; the results of a turn's calls are written inside that model turn, after its calls and
before its text (the template scans forward over the tool messages that follow), each as
``response:NAME{value:Q...Q}``; a turn whose calls have no results yet ends with the results' opening
token, and an answer after the results goes on in the same turn.

Marker probes cannot learn this (a marker is no type, so the type-dependent fields never show), and
the turn structure is not a placement the general derivation has. So the notation is written here
as it is, in Go, and only its tokens are learned from the probe renderings: the quote, what opens and
closes a definition, a call and a result, the system block, the thinking block, and what follows a
turn that calls. A template that writes anything else fails the checks the caller runs (every probe
and check conversation rendered exactly as the chat template renders it); one whose turns are of the
usual kind (results as tool turns, the shape of an earlier Gemma 4 template) is then solved the
general way with this notation's definitions (:func:`declaration`) and values (:func:`value`) in
place of JSON, and checked on :func:`probe_conversation` too. What Go cannot do is listed in
docs/design.md: keys sorted by bytes where Jinja's ``dictsort`` ignores case, ``| trim`` and the
removal of thinking from a message's text, numbers written as Python writes floats, and type names
other than JSON Schema's seven.
"""

from __future__ import annotations

import os
import re

from .gotemplate import go_lit, go_quote

__all__ = ["recognises", "quote", "value", "declaration", "learn", "go_template", "defines", "with_defines",
           "DEFINE_PREFIX"]

#: the named templates a notation template calls are ``{{ define "notation-<part>-<hex of Q>" }}``
DEFINE_PREFIX = "notation-"

#: JSON Schema's type names, and what Jinja's ``| upper`` makes of them
_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


class NotationError(ValueError):
    """The probe renderings are not in the notation (the reason says where they part)."""


def recognises(text: str, name: str, description: str) -> bool:
    """Does ``text`` (a rendering with a probe tool) write that tool as a ``declaration:``?"""
    return f"declaration:{name}{{description:" in text and description in text


def quote(text: str, name: str, description: str) -> str:
    """The notation's quote in ``text`` (what stands before a probe tool's ``description``), or ""."""
    start = f"declaration:{name}{{description:"
    i = text.find(start)
    j = text.find(description, i + len(start)) if i >= 0 else -1
    return text[i + len(start):j] if j >= 0 else ""


def value(q: str, expr: str) -> str:
    """Go text writing the value in ``expr`` as the notation's ``format_argument(..., escape_keys=False)``
    does (a call's argument)."""
    return f'{{{{ template "{_name(q, "bare")}" {expr} }}}}'


def _name(q: str, part: str) -> str:
    return f"{DEFINE_PREFIX}{part}-{q.encode('utf-8').hex()}"


def _upper(expr: str) -> str:
    """Go text writing the type name ``expr`` (a string) as Jinja's ``| upper`` does, for JSON
    Schema's names (any other name is written as it is)."""
    out = [f'{{{{ if eq {expr} "{t}" }}}}{t.upper()}' if n == 0 else f'{{{{ else if eq {expr} "{t}" }}}}{t.upper()}'
           for n, t in enumerate(_TYPES)]
    return "".join(out) + f"{{{{ else }}}}{{{{ {expr} }}}}{{{{ end }}}}"


def _type_text(expr: str) -> str:
    """Go text writing a property's type (``expr``: Ollama's ``PropertyType``, one name or several) as
    ``value['type'] | upper`` writes what transformers hands Jinja: the name, or Python's ``str()``
    of the list of names (``['STRING', 'NULL']``); nothing for a property without a type."""
    return (f'{{{{ if eq (len {expr}) 1 }}}}{_upper(f"(index {expr} 0)")}{{{{ else if {expr} }}}}[{{{{ range $yi, $yt := {expr} }}}}'
            f'{{{{ if $yi }}}}, {{{{ end }}}}\'{_upper("$yt")}\'{{{{ end }}}}]{{{{ end }}}}')


def defines(q: str) -> str:
    """The named templates a notation template with quote ``q`` calls (they go at the template's top)."""
    Q = go_lit(q)
    val, bare, props, raw = (_name(q, p) for p in ("value", "bare", "props", "raw"))
    out = []
    # format_argument: null, strings between the quotes, booleans, maps in key order (keys quoted, or
    # bare where the template says escape_keys=False), lists, numbers as JSON writes them
    for name, key in ((val, f"{Q}{{{{ $k }}}}{Q}"), (bare, "{{ $k }}")):
        out.append(
            f'{{{{ define "{name}" }}}}{{{{ $T := printf "%T" . }}}}{{{{ if eq $T "<nil>" }}}}null'
            f'{{{{ else if eq $T "string" }}}}{Q}{{{{ . }}}}{Q}'
            f'{{{{ else if eq $T "bool" }}}}{{{{ if . }}}}true{{{{ else }}}}false{{{{ end }}}}'
            f'{{{{ else if or (eq $T "map[string]interface {{}}") (eq $T "template.templateArgs") }}}}{{{{ "{{" }}}}'
            f'{{{{ $f := false }}}}{{{{ range $k, $v := . }}}}{{{{ if $f }}}},{{{{ end }}}}{{{{ $f = true }}}}{key}:'
            f'{{{{ template "{name}" $v }}}}{{{{ end }}}}{{{{ "}}" }}}}'
            f'{{{{ else if eq $T "[]interface {{}}" }}}}[{{{{ range $i, $v := . }}}}{{{{ if $i }}}},{{{{ end }}}}'
            f'{{{{ template "{name}" $v }}}}{{{{ end }}}}]'
            f'{{{{ else }}}}{{{{ json . }}}}{{{{ end }}}}{{{{ end }}}}')
    # format_parameters over Ollama's properties (api.ToolProperty): fields by type, in key order
    out.append(
        f'{{{{ define "{props}" }}}}{{{{ $f := false }}}}{{{{ range $k, $v := . }}}}{{{{ if $f }}}},{{{{ end }}}}'
        f'{{{{ $f = true }}}}{{{{ $k }}}}:{{{{ "{{" }}}}{{{{ $c := false }}}}'
        f'{{{{ if $v.Description }}}}description:{Q}{{{{ $v.Description }}}}{Q}{{{{ $c = true }}}}{{{{ end }}}}'
        f'{{{{ $t := "" }}}}{{{{ if eq (len $v.Type) 1 }}}}{{{{ $t = index $v.Type 0 }}}}{{{{ end }}}}'
        f'{{{{ if eq $t "string" }}}}{{{{ if $v.Enum }}}}{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}'
        f'enum:{{{{ template "{val}" $v.Enum }}}}{{{{ end }}}}'
        f'{{{{ else if eq $t "array" }}}}{{{{ if and (eq (printf "%T" $v.Items) "map[string]interface {{}}") $v.Items }}}}'
        f'{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}items:{{{{ "{{" }}}}{_items(q, "$v.Items")}{{{{ "}}" }}}}'
        f'{{{{ end }}}}{{{{ end }}}}'
        f'{{{{ if eq $t "object" }}}}{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}properties:{{{{ "{{" }}}}'
        f'{{{{ if $v.Properties }}}}{{{{ template "{props}" $v.Properties.ToMap }}}}{{{{ end }}}}{{{{ "}}" }}}}'
        f'{{{{ if $v.Required }}}},required:[{{{{ range $ri, $r := $v.Required }}}}{{{{ if $ri }}}},{{{{ end }}}}'
        f'{Q}{{{{ $r }}}}{Q}{{{{ end }}}}]{{{{ end }}}}{{{{ end }}}}'
        f'{{{{ if $c }}}},{{{{ end }}}}type:{Q}{_type_text("$v.Type")}{Q}{{{{ "}}" }}}}{{{{ end }}}}{{{{ end }}}}')
    # format_parameters over plain JSON (the properties inside an array's items): keys, not fields
    out.append(
        f'{{{{ define "{raw}" }}}}{{{{ $f := false }}}}{{{{ range $k, $v := . }}}}{{{{ if $f }}}},{{{{ end }}}}'
        f'{{{{ $f = true }}}}{{{{ $k }}}}:{{{{ "{{" }}}}{{{{ $c := false }}}}{{{{ $t := "" }}}}'
        f'{{{{ if eq (printf "%T" $v) "map[string]interface {{}}" }}}}'
        f'{{{{ if $v.description }}}}description:{Q}{{{{ $v.description }}}}{Q}{{{{ $c = true }}}}{{{{ end }}}}'
        f'{{{{ if eq (printf "%T" $v.type) "string" }}}}{{{{ $t = $v.type }}}}{{{{ end }}}}'
        f'{{{{ if eq $t "string" }}}}{{{{ if $v.enum }}}}{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}'
        f'enum:{{{{ template "{val}" $v.enum }}}}{{{{ end }}}}'
        f'{{{{ else if eq $t "array" }}}}{{{{ if and (eq (printf "%T" $v.items) "map[string]interface {{}}") $v.items }}}}'
        f'{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}items:{{{{ "{{" }}}}{_items(q, "$v.items")}{{{{ "}}" }}}}'
        f'{{{{ end }}}}{{{{ end }}}}'
        f'{{{{ if $v.nullable }}}}{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}nullable:true{{{{ end }}}}'
        f'{{{{ if eq $t "object" }}}}{{{{ if $c }}}},{{{{ end }}}}{{{{ $c = true }}}}properties:{{{{ "{{" }}}}'
        f'{{{{ if eq (printf "%T" $v.properties) "map[string]interface {{}}" }}}}{{{{ template "{raw}" $v.properties }}}}'
        f'{{{{ end }}}}{{{{ "}}" }}}}'
        f'{{{{ if $v.required }}}},required:[{{{{ range $ri, $r := $v.required }}}}{{{{ if $ri }}}},{{{{ end }}}}'
        f'{Q}{{{{ $r }}}}{Q}{{{{ end }}}}]{{{{ end }}}}{{{{ end }}}}'
        f'{{{{ if $c }}}},{{{{ end }}}}type:{Q}{{{{ if $t }}}}{_upper("$t")}{{{{ end }}}}{Q}{{{{ end }}}}'
        f'{{{{ "}}" }}}}{{{{ end }}}}{{{{ end }}}}')
    return "".join(out)


def _items(q: str, expr: str) -> str:
    """An array property's ``items`` (plain JSON), its keys in order, ``null`` values left out."""
    Q = go_lit(q)
    val, raw = _name(q, "value"), _name(q, "raw")
    return (f'{{{{ $g := false }}}}{{{{ range $ik, $iv := {expr} }}}}{{{{ if ne (printf "%T" $iv) "<nil>" }}}}'
            f'{{{{ if $g }}}},{{{{ end }}}}{{{{ $g = true }}}}'
            f'{{{{ if eq $ik "properties" }}}}properties:{{{{ "{{" }}}}{{{{ if eq (printf "%T" $iv) "map[string]interface {{}}" }}}}'
            f'{{{{ template "{raw}" $iv }}}}{{{{ end }}}}{{{{ "}}" }}}}'
            f'{{{{ else if eq $ik "required" }}}}required:[{{{{ range $ri, $r := $iv }}}}{{{{ if $ri }}}},{{{{ end }}}}'
            f'{Q}{{{{ $r }}}}{Q}{{{{ end }}}}]'
            f'{{{{ else if eq $ik "type" }}}}type:{{{{ if eq (printf "%T" $iv) "string" }}}}{Q}{_upper("$iv")}{Q}'
            f'{{{{ else }}}}[{{{{ range $yi, $yt := $iv }}}}{{{{ if $yi }}}},{{{{ end }}}}{Q}{_upper("$yt")}{Q}{{{{ end }}}}]'
            f'{{{{ end }}}}{{{{ else }}}}{{{{ $ik }}}}:{{{{ template "{val}" $iv }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}')


def declaration(q: str, var: str) -> str:
    """Go text writing the tool in ``var`` as a ``declaration:`` (format_function_declaration)."""
    Q = go_lit(q)
    f, p = f"{var}.Function", f"{var}.Function.Parameters"
    return (f'declaration:{{{{ {f}.Name }}}}{{{{ "{{" }}}}description:{Q}{{{{ {f}.Description }}}}{Q},parameters:'
            f'{{{{ "{{" }}}}{{{{ if {p}.Properties }}}}properties:{{{{ "{{" }}}}'
            f'{{{{ template "{_name(q, "props")}" {p}.Properties }}}}{{{{ "}}" }}}},{{{{ end }}}}'
            f'{{{{ if {p}.Required }}}}required:[{{{{ range $ri, $r := {p}.Required }}}}{{{{ if $ri }}}},{{{{ end }}}}'
            f'{Q}{{{{ $r }}}}{Q}{{{{ end }}}}],{{{{ end }}}}'
            f'{{{{ if {p}.Type }}}}type:{Q}{_upper(p + ".Type")}{Q}{{{{ "}}" }}}}{{{{ end }}}}{{{{ "}}" }}}}')


def learn(r: dict, plain: dict, markers: dict) -> dict:
    """The tokens around the notation, from the probe renderings ``r`` (one leading BOS taken off):
    ``g0`` (one probe tool, one user message), ``tt`` (two tools), ``s`` (a system message too),
    ``k1``/``kk``/``kc`` (a turn with one call, two calls, text and a call, then a user message),
    ``r1`` (one call and its result, then a user message), ``rg`` (ending with that result), ``kt2``
    (a calling turn with thinking, then its result) where rendered. ``plain``: the parts derived for
    conversations without tools (turn openers, closers, generation prompt). ``markers``: the probes'
    marker texts (tool names ``tn1``/``tn2``, descriptions ``td1``, user texts ``u1``/``u2``, ``sys``,
    ``a1``, argument ``ak1``/``av1``, result ``tr1``, thinking ``th``)."""
    M = markers
    g0 = r["g0"]
    q = quote(g0, M["tn1"], M["td1"])
    if not q or not g0[g0.find(M["td1"]) + len(M["td1"]):].startswith(q):
        raise NotationError("a tool's description is not quoted alike on both sides")
    u_pre, u_post, a_pre, a_post = plain["u_pre"], plain["u_post"], plain["a_pre"], plain["a_post"]
    # a turn opener names its role: "<|turn>user\n" and "<|turn>model\n"
    head = len(os.path.commonprefix([u_pre, a_pre]))
    tail = len(os.path.commonprefix([u_pre[head:][::-1], a_pre[head:][::-1]]))
    if u_pre[head:len(u_pre) - tail] != "user" or u_post != a_post:
        raise NotationError("turns do not open with their role's name")
    parts = {"q": q, "turn": (u_pre[:head], u_pre[len(u_pre) - tail:]),
             "model": a_pre[head:len(a_pre) - tail], "close": a_post, "gen": plain["gen"]}
    # the system block: what comes before the first definition, and after the last
    d1 = g0.find(f'declaration:{M["tn1"]}{{')
    user = u_pre + M["u1"] + u_post
    end = g0.find(user, d1)
    if d1 < 0 or end < 0 or not g0.endswith(user):
        raise NotationError("tool definitions are not written before the first user turn")
    s = r["s"]
    i = s.find(M["sys"])
    if i < 0 or not s.endswith(user):
        raise NotationError("a system message is not written with the tools")
    parts["sys_open"], parts["tool_open"] = s[:i], g0[len(s[:i]):d1]
    if g0[:d1] != parts["sys_open"] + parts["tool_open"] or not s[i + len(M["sys"]):].startswith(parts["tool_open"]):
        raise NotationError("a system message is not written before the tool definitions")
    tt = r["tt"]
    d2 = tt.find(f'declaration:{M["tn2"]}{{')
    # between two definitions: what closes one and opens the next ("<tool|><|tool>")
    j = tt.rfind("}", 0, d2)
    if d2 < 0 or j < 0 or not tt[j + 1:d2].endswith(parts["tool_open"]):
        raise NotationError("two tool definitions are not written one after the other")
    parts["tool_close"] = tt[j + 1:d2 - len(parts["tool_open"])]
    after_last = g0[g0.rfind("}", 0, end) + 1:end]
    if not after_last.startswith(parts["tool_close"]):
        raise NotationError("the last tool definition is not closed like the others")
    parts["sys_close"] = after_last[len(parts["tool_close"]):]
    # calls: "<|tool_call>call:NAME{...}<tool_call|>", then (no results yet) the results' opener
    k1 = r["k1"]
    body = f'call:{M["tn1"]}{{{M["ak1"]}:{q}{M["av1"]}{q}}}'
    c = k1.find(body)
    at = k1.rfind(a_pre, 0, c)
    if c < 0 or at < 0:
        raise NotationError("a call is not written as call:NAME{key:value}")
    parts["call_open"] = k1[at + len(a_pre):c]
    nxt = u_pre + M["u2"] + u_post
    rest = k1[c + len(body):]
    kk = r.get("kk")
    if isinstance(kk, str):
        c2 = kk.find(f'call:{M["tn2"]}{{}}')
        between = kk[kk.find(body) + len(body):c2] if c2 >= 0 else ""
        if not between.endswith(parts["call_open"]):
            raise NotationError("a second call is not written like the first")
        parts["call_close"] = between[:len(between) - len(parts["call_open"])]
    else:
        raise NotationError("a turn with two calls does not render")
    if not rest.startswith(parts["call_close"]) or nxt not in rest:
        raise NotationError("a call is not closed like the others")
    parts["pending"] = rest[len(parts["call_close"]):rest.find(nxt)]
    # a result: "<|tool_response>response:NAME{value:Q...Q}<tool_response|>", inside the calling turn
    r1 = r["r1"]
    res = f'response:{M["tn1"]}{{value:{q}{M["tr1"]}{q}}}'
    e = r1.find(res)
    call_end = r1.find(body) + len(body) + len(parts["call_close"])
    if e < 0 or r1.find(body) < 0:
        raise NotationError("a tool result is not written as response:NAME{value:...}")
    parts["result_open"] = r1[call_end:e]
    after = r1[e + len(res):]
    closed = a_post + nxt + plain["gen"]      # the turn's closer, the next user turn, the prompt
    if not after.endswith(closed):
        raise NotationError("a turn with a tool result is not closed like a turn")
    parts["result_close"] = after[:len(after) - len(closed)]
    rg = r.get("rg")
    if not isinstance(rg, str) or res not in rg:
        raise NotationError("a conversation that ends with a tool result does not render")
    tail_rg = rg[rg.find(res) + len(res):]
    if not tail_rg.startswith(parts["result_close"]):
        raise NotationError("a conversation that ends with a tool result renders unlike one going on")
    parts["gen_after_result"] = tail_rg[len(parts["result_close"]):]
    # thinking in a turn that calls (written only after the last user message)
    kt = r.get("kt2")
    parts["think"] = None
    if isinstance(kt, str) and M["th"] in kt:
        t = kt.find(M["th"])
        o = kt.rfind(a_pre, 0, t)
        c = kt.find(parts["call_open"] + f'call:{M["tn1"]}', t)
        if o < 0 or c < 0:
            raise NotationError("thinking in a turn that calls is not written before its calls")
        parts["think"] = (kt[o + len(a_pre):t], kt[t + len(M["th"]):c])
    return parts


def go_template(parts: dict) -> str:
    """The whole Go template of a conversation with tools (``.Tools`` not empty), from :func:`learn`'s
    parts: the chat template's message loop as it is, in Go (its definitions go at the top:
    :func:`defines`)."""
    L = go_lit
    q = parts["q"]
    Q = L(q)
    t_open, t_close = parts["turn"]
    bare = _name(q, "bare")

    def turn(role_expr: str) -> str:
        return f'{L(t_open)}{{{{ if eq {role_expr} "assistant" }}}}{L(parts["model"])}{{{{ else }}}}{{{{ {role_expr} }}}}{{{{ end }}}}{L(t_close)}'
    think = ""
    if parts.get("think"):
        pre, post = parts["think"]
        # through the range variable: a .Thinking field would make Ollama infer thinking tags
        think = f'{{{{ if and $_.Thinking (gt $i $lastUser) }}}}{L(pre)}{{{{ $_.Thinking }}}}{L(post)}{{{{ end }}}}'
    # the calls' opening as a string action: Ollama's template-derived tool parser reads only JSON
    # calls; with no tag to find (tools.parseTag stops at the action) the calls reach the client as text
    call = (f'{{{{ range $ci, $c := .ToolCalls }}}}{{{{ {go_quote(parts["call_open"] + "call:")} }}}}{{{{ $c.Function.Name }}}}'
            f'{{{{ "{{" }}}}{{{{ $f := false }}}}{{{{ range $ak, $av := $c.Function.Arguments }}}}{{{{ if $f }}}},{{{{ end }}}}'
            f'{{{{ $f = true }}}}{{{{ $ak }}}}:{{{{ template "{bare}" $av }}}}{{{{ end }}}}{{{{ "}}" }}}}{L(parts["call_close"])}{{{{ end }}}}')
    results = (f'{{{{ $calls := .ToolCalls }}}}{{{{ range $j, $r := $.Messages }}}}{{{{ if gt $j $i }}}}'
               f'{{{{ if ne $r.Role "tool" }}}}{{{{ break }}}}{{{{ end }}}}'
               f'{{{{ $rn := $r.ToolName }}}}{{{{ if not $rn }}}}{{{{ $rn = "unknown" }}}}{{{{ end }}}}'
               f'{{{{ range $calls }}}}{{{{ if eq .ID $r.ToolCallID }}}}{{{{ $rn = .Function.Name }}}}{{{{ end }}}}{{{{ end }}}}'
               f'{L(parts["result_open"])}response:{{{{ $rn }}}}{{{{ "{{" }}}}value:{Q}{{{{ $r.Content }}}}{Q}{{{{ "}}" }}}}'
               f'{L(parts["result_close"])}{{{{ $out = true }}}}{{{{ $prev = "tool_response" }}}}{{{{ end }}}}{{{{ end }}}}')
    decls = (f'{{{{ range $ti, $tool := .Tools }}}}{{{{ if $ti }}}}{L(parts["tool_close"] + parts["tool_open"])}{{{{ end }}}}'
             f'{declaration(q, "$tool")}{{{{ end }}}}')
    return (
        '{{ $sys0 := false }}{{ $system := "" }}{{ if .Messages }}{{ $m0 := index .Messages 0 }}'
        '{{ if or (eq $m0.Role "system") (eq $m0.Role "developer") }}{{ $sys0 = true }}{{ $system = $m0.Content }}'
        '{{ end }}{{ end }}'
        f'{L(parts["sys_open"])}{{{{ $system }}}}'
        f'{L(parts["tool_open"])}{decls}{L(parts["tool_close"] + parts["sys_close"])}'
        '{{ $lastUser := -1 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}'
        '{{ $prev := "tool" }}{{ $prevRole := "" }}{{ $lastRole := "" }}'
        '{{ range $i, $_ := .Messages }}{{ $lastRole = .Role }}'
        '{{ if and (ne .Role "tool") (not (and $sys0 (eq $i 0))) }}{{ $prev = "" }}'
        f'{{{{ if not (and (eq .Role "assistant") (eq $prevRole "assistant")) }}}}{turn(".Role")}{{{{ end }}}}'
        f'{think}{{{{ $out := false }}}}{{{{ if .ToolCalls }}}}{call}{{{{ $prev = "tool_call" }}}}{results}{{{{ end }}}}'
        '{{ .Content }}'
        '{{ $next := "" }}{{ range $j, $r := $.Messages }}{{ if and (gt $j $i) (ne $r.Role "tool") }}'
        '{{ $next = $r.Role }}{{ break }}{{ end }}{{ end }}'
        f'{{{{ if and (eq $prev "tool_call") (not $out) }}}}{L(parts["pending"])}'
        '{{ else if and (eq .Role "assistant") (eq $next "assistant") (or (not .ToolCalls) $out) }}'
        f'{{{{ else if not (and $out (not .Content) (not $next)) }}}}{L(parts["close"])}{{{{ end }}}}'
        '{{ $prevRole = .Role }}{{ end }}{{ end }}'
        '{{ if or (eq $lastRole "user") (eq $lastRole "tool") }}'
        f'{{{{ if and (ne $prev "tool_response") (ne $prev "tool_call") }}}}{L(parts["gen"])}'
        f'{{{{ else if eq $prev "tool_response" }}}}{L(parts["gen_after_result"])}{{{{ end }}}}{{{{ end }}}}')


def with_defines(template: str) -> str:
    """``template`` with the notation definitions it calls at its top (none if it calls none)."""
    quotes = []
    for hexq in re.findall(r'\{\{ template "' + re.escape(DEFINE_PREFIX) + r'[a-z]+-([0-9a-f]+)" ', template):
        q = bytes.fromhex(hexq).decode("utf-8")
        if q not in quotes:
            quotes.append(q)
    return "".join(defines(q) for q in quotes) + template


def probe_conversation() -> tuple[list[dict], list[dict]]:
    """A conversation (messages, tools) with every kind of property the notation writes by type (enum,
    items with properties, nested objects, several types, no parameters) and every kind of argument
    value (strings, numbers, booleans, null, objects, lists), two calls with their results, one of them
    named by a call id, and thinking in the turn that calls: it must render exactly before the
    notation is used."""
    args = {"query": "a \"quoted\" <b>", "limit": 3, "score": 0.25, "safe": False, "either": None,
            "tags": ["x", 2, True], "filters": {"site": "example.org", "inner": {"deep": True}}}
    msgs = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Look it up."},
            {"role": "assistant", "content": "", "thinking": "Search first.", "reasoning_content": "Search first.",
             "tool_calls": [{"id": "c1", "function": {"name": "search", "arguments": args}},
                            {"id": "c2", "function": {"name": "ping", "arguments": {}}}]},
            {"role": "tool", "content": "2 hits", "tool_call_id": "c1"},
            {"role": "tool", "content": "pong", "name": "ping", "tool_call_id": "c2"},
            {"role": "assistant", "content": "Found 2."}, {"role": "user", "content": "Thanks."}]
    return msgs, _PROBE_TOOLS


_PROBE_TOOLS = [
        {"type": "function", "function": {"name": "search", "description": "Search the web", "parameters": {
            "type": "object", "required": ["query", "filters"], "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "limit": {"type": "integer"},
                "mode": {"type": "string", "enum": ["fast", "deep"], "description": "How"},
                "score": {"type": "number", "description": "Least score"},
                "safe": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"},
                "points": {"type": "array", "items": {"type": "object", "required": ["x"], "properties": {
                    "x": {"type": "number", "description": "X"}, "label": {"type": "string", "enum": ["a", "b"]},
                    "extra": {"type": "object", "properties": {"z": {"type": "integer"}}}}}},
                "filters": {"type": "object", "description": "Filters", "required": ["site"], "properties": {
                    "site": {"type": "string"}, "after": {"type": "string", "description": "A date"},
                    "inner": {"type": "object", "properties": {"deep": {"type": "boolean"}}}}},
                "loose": {"type": "object", "description": "Anything"},
                "either": {"type": ["string", "null"], "description": "Two types"},
                "note": {"description": "No type at all"}}}}},
        {"type": "function", "function": {"name": "ping", "description": "", "parameters": {"type": "object",
                                                                                              "properties": {}}}},
    ]


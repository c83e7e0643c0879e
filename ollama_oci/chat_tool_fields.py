"""Tool definitions a chat template writes field by field (not as the JSON of each tool).

Qwen3-Coder's template and the ones built on it (NVIDIA's Nemotron 3) write each tool as tagged
fields::

    <function>
    <name>get_weather</name>
    <description>Weather for a city</description>
    <parameters>
    <parameter>
    <name>city</name>
    <type>string</type>
    ...

Nothing here knows those tags. The chat template is rendered with probe tools whose names,
descriptions, property names, types and enum values are markers, in variants that each leave one
field out (a property without a type, without a description, without an enum; a tool without
``required``) or write a list longer (two properties, two enum values, two types). What a variant
adds or removes is the field's text; what sits around two list items is the list's form. From them a
Go template for one tool is built over Ollama's ``.Tools`` (``$tool.Function.Name``,
``.Parameters.Properties`` ranged in key order, as Ollama's template data holds them):

* literal text is kept as it is; a marker becomes the field it stands for;
* a field that a variant leaves out is written under ``{{ if }}`` of that field;
* a list (``required``, ``enum``, several types) is written with a ``range``, items in JSON quotes
  as Python's ``json.dumps`` writes them (``printf "%q"``) or bare.

Fields a variant does not change are not written; fields whose texts would share a separator are
written one after the other with the separator between those present (``{type: X, enum: Y}``).
The result is checked on every probe tool, rendered by this project's Go renderer, before it is
used, and then, with the rest of the derived template, on the conversations with real tools
(``chat_template._tool_checks``). What markers cannot show is not derived: a template that compares
a type with ``"string"`` or writes it in capitals fails the probes and is left without tools, with
the reason (Gemma 4, which does both, has its notation written as it is:
:mod:`ollama_oci.chat_tool_notation`). A description the template trims is written as it is: it
differs only for a description with spaces at its ends (the whitespace case of per-message
``trim``).
"""

from __future__ import annotations

import json
import re
from typing import Callable, Optional

from .chat_tools import TM, ToolShapeError, _once, go_tools, probe_tools, py_json, val, with_py_json
from .gotemplate import go_lit as _go_lit

__all__ = ["FIELD_MARKS", "field_probe_tools", "learn_field_definitions"]

#: markers of the field probes, beyond chat_tools.TM's
FIELD_MARKS = {"ty1": "@@TY1_7a1@@", "ty2": "@@TY2_7a1@@", "ev1": "@@EV1_7a1@@", "ev2": "@@EV2_7a1@@",
               "tp2": "@@TP2_7a1@@", "tpd2": "@@TPD2_7a1@@"}
_MARK = re.compile(r"@@[A-Z0-9]+_7a1@@")
#: the ``items`` of the property in the "fp_items" probe
ITEMS_PROBE = {"type": FIELD_MARKS["ty2"]}
F = FIELD_MARKS


def _tool(props: dict, required: Optional[list] = None) -> dict:
    params: dict = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": TM["tn1"], "description": TM["td1"], "parameters": params}}


def field_probe_tools() -> dict[str, list]:
    """The probe tool lists (each rendered alone in the conversation of the plain ``g0`` probe)."""
    p1 = {"type": F["ty1"], "description": TM["tpd1"]}
    p2 = {"type": F["ty2"], "description": F["tpd2"]}
    enum2 = [F["ev1"], F["ev2"]]
    return {
        "b": [probe_tools()[1]],     # the second plain probe tool alone
        "fa": [_tool({TM["tp1"]: p1}, [TM["tp1"]])],
        "fa_nr": [_tool({TM["tp1"]: p1})],
        "fa2": [_tool({TM["tp1"]: p1, F["tp2"]: p2}, [TM["tp1"], F["tp2"]])],
        "fa2_nr": [_tool({TM["tp1"]: p1, F["tp2"]: p2})],
        "fa_only2_nr": [_tool({F["tp2"]: p2})],
        "fp_full": [_tool({TM["tp1"]: dict(p1, enum=enum2)})],
        "fp_enum1": [_tool({TM["tp1"]: dict(p1, enum=[F["ev1"]])})],
        "fp_notype": [_tool({TM["tp1"]: {"description": TM["tpd1"], "enum": enum2}})],
        "fp_nodesc": [_tool({TM["tp1"]: {"type": F["ty1"], "enum": enum2}})],
        "fp_types": [_tool({TM["tp1"]: {"type": [F["ty1"], F["ty2"]], "description": TM["tpd1"], "enum": enum2}})],
        "fp_items": [_tool({TM["tp1"]: dict(p1, enum=enum2, items=ITEMS_PROBE)})],
    }


# -- text helpers --------------------------------------------------------------------------------------

def _unsplit(text: str, n: int) -> int:
    """``n`` moved back so that ``text[:n]`` does not end inside a marker."""
    for m in _MARK.finditer(text):
        if m.start() < n < m.end():
            return m.start()
    return n


def _head(a: str, b: str, limit: Optional[int] = None) -> int:
    """How many characters ``a`` and ``b`` start with alike (at most ``limit``)."""
    n, limit = 0, min(len(a), len(b), len(a) if limit is None else limit)
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def _tail(a: str, b: str, limit: Optional[int] = None) -> int:
    """How many characters ``a`` and ``b`` end with alike (at most ``limit``)."""
    n, limit = 0, min(len(a), len(b), len(a) if limit is None else limit)
    while n < limit and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


def _prefix(a: str, b: str) -> int:
    n = _head(a, b)
    return min(_unsplit(a, n), _unsplit(b, n))


def _suffix(a: str, b: str, limit: int) -> int:
    n = _tail(a, b, limit)
    # not from inside a marker: the cut is at len - n
    while n and (_unsplit(a, len(a) - n) != len(a) - n or _unsplit(b, len(b) - n) != len(b) - n):
        n -= 1
    return n


def split_two(one: str, other: str, both: str, what: str = "two tool definitions") -> tuple[str, str, str, str, str]:
    """``one`` and ``other`` write one item each, ``both`` the two in a row: (before, the first
    item's text, between, the second's, after), such that one = before + first + after."""
    p = _prefix(one, other)
    s = _suffix(one, other, min(len(one), len(other)) - p)
    head, tail = one[:p], one[len(one) - s:]
    x1, x2 = one[p:len(one) - s], other[p:len(other) - s]
    if len(both) < len(head) + len(x1) + len(x2) + len(tail) or not both.startswith(head + x1) \
            or not both.endswith(x2 + tail):
        raise ToolShapeError(f"{what} are not written one after the other")
    mid = both[len(head) + len(x1):len(both) - len(x2) - len(tail)]
    # mid = (the end the items share) + between + (the start they share). Any split writes the same
    # text; the one taken cuts the items where a reader would (after a tag or at a line break, not
    # inside a word), then leaves as little as can be between them
    max_c, max_d = _tail(mid, head), _head(mid, tail)
    best = None
    if (max_c + 1) * (max_d + 1) > 40_000:        # a long shared run (hostile or odd text): no scoring
        max_c, max_d = max(0, max_c - 1), 0
    for c in range(max_c + 1):
        if _unsplit(head, len(head) - c) != len(head) - c:
            continue
        for d in range(min(max_d, len(mid) - c) + 1):
            if _unsplit(tail, d) != d:
                continue
            score = (_good(one, len(head) - c) + _good(one, len(one) - len(tail) + d), c + d, c)
            if best is None or score > best[0]:
                best = (score, c, d)
    _score, c, d = best
    start, end = head[len(head) - c:], tail[:d]
    return head[:len(head) - c], start + x1 + end, mid[d:len(mid) - c], start + x2 + end, tail[d:]


def _good(text: str, x: int) -> int:
    """1 where a cut at ``x`` falls where a reader would cut: at either end, at whitespace, after a
    closing tag or bracket, before an opening one."""
    if x <= 0 or x >= len(text):
        return 1
    a, b = text[x - 1], text[x]
    return int(a.isspace() or b.isspace() or a in ">]}),;:" or b in "<[{()")


def _starts(full: str, less: str, what: str) -> tuple[list[int], int]:
    """Where the text ``less`` lacks may start in ``full``, and its length: for each start i,
    full = less[:i] + full[i:i + n] + less[i:], and neither end cuts through a marker. ``what``
    names the field, for the error."""
    n = len(full) - len(less)
    if n <= 0:
        raise ToolShapeError(f"{what} is not written on its own (fields chosen by a property's type, or written "
                             "in a notation of their own?)")
    p, s = _head(full, less), _tail(full, less)
    out = [x for x in range(max(0, len(less) - s), p + 1)
           if _unsplit(full, x) == x and _unsplit(full, x + n) == x + n]
    if not out:
        raise ToolShapeError(f"{what} left out changes more than its own text")
    return out, n


def _removed(full: str, less: str, what: str, taken: list = ()) -> tuple[int, int]:
    """The span of ``full`` that ``less`` lacks: where more than one would do, one that does not
    overlap the spans ``taken`` by other fields, cut where a reader would (:func:`_good`) at both
    ends, else at one, the leftmost of those (the same choice for every field keeps the spans of
    neighbouring fields apart)."""
    starts, n = _starts(full, less, what)
    free = [x for x in starts if not any(x < b and a < x + n for a, b, *_ in taken)] or starts
    i = max(free, key=lambda x: (_good(full, x) + _good(full, x + n), -x))
    return i, i + n


def _between(text: str, a: str, b: str) -> Optional[tuple[str, str, str]]:
    """text = head + a + mid + b + tail, each marker once: (head, mid, tail)."""
    i, j = _once(text, a), _once(text, b)
    if i < 0 or j < i + len(a):
        return None
    return text[:i], text[i + len(a):j], text[j + len(b):]


def _lit(s: str) -> str:
    if _MARK.search(s):
        raise ToolShapeError("a tool's field is written in a form this converter does not know")
    return _go_lit(s)


def _list(expr: str, var: str, head: str, mid: str, tail: str) -> str:
    """A list written item by item: in JSON's quotes (strings as Python's json.dumps writes them),
    or bare."""
    if head.endswith('"') and tail.startswith('"') and mid.startswith('"') and mid.endswith('"') and len(mid) >= 2:
        head, mid, tail = head[:-1], mid[1:-1], tail[1:]
        item = val(var)
    else:
        item = f"{{{{ {var} }}}}"
    i = var + "i"
    return (f"{_lit(head)}{{{{ range {i}, {var} := {expr} }}}}{{{{ if {i} }}}}{_lit(mid)}{{{{ end }}}}"
            f"{item}{{{{ end }}}}{_lit(tail)}")


def _fill(text: str, fields: dict[str, str]) -> str:
    """Literal text with each marker in ``fields`` replaced by its Go text."""
    out, at = [], 0
    for m in _MARK.finditer(text):
        if m.group() not in fields:
            raise ToolShapeError("a tool's field is written in a form this converter does not know")
        out.append(_lit(text[at:m.start()]))
        out.append(fields[m.group()])
        at = m.end()
    out.append(_lit(text[at:]))
    return "".join(out)


def _with_spans(text: str, spans: list[tuple[int, int, str]], fields: dict[str, str]) -> str:
    """``text`` with each (start, end, Go text) span replaced, the rest filled as :func:`_fill`."""
    out, at = [], 0
    for i, j, go in sorted(spans, key=lambda t: (t[0], t[1])):
        if i < at:
            raise ToolShapeError("two optional fields of a tool are written overlapping")
        out.append(_fill(text[at:i], fields))
        out.append(go)
        at = j
    out.append(_fill(text[at:], fields))
    return "".join(out)


# -- learning -----------------------------------------------------------------------------------------

def _prop_go(units: dict[str, str], pre: str, post: str) -> str:
    """Go text of one property (``$pk``, ``$p``) from the units of the single-property probes: each
    optional field a span of its own, or (where their spans would share text) fields written one
    after the other with one separator between those present (``{type: X, enum: Y}``)."""
    def inner(key):
        u = units[key]
        if not u.startswith(pre) or not u.endswith(post) or len(u) < len(pre) + len(post):
            raise ToolShapeError("a property's fields change more than the property's own text")
        return u[len(pre):len(u) - len(post)]
    full = inner("fp_full")

    def enum_go(i: int, j: int) -> str:        # two values in fp_full, one in fp_enum1
        parts = _between(full[i:j], F["ev1"], F["ev2"])
        if parts is None or inner("fp_enum1") != full[:i] + parts[0] + F["ev1"] + parts[2] + full[j:]:
            raise ToolShapeError("a property's enum is not written as a list")
        return _list("$p.Enum", "$ev", *parts)

    def desc_go(i: int, j: int) -> str:
        return _fill(full[i:j], {TM["tpd1"]: "{{ $p.Description }}"})

    def type_go(i: int, j: int) -> str:         # one written as it is, several as a list
        one, types = full[i:j], inner("fp_types")
        if not types.startswith(full[:i]) or not types.endswith(full[j:]):
            raise ToolShapeError("a property with several types changes more than its type")
        parts = _between(types[i:len(types) - (len(full) - j)], F["ty1"], F["ty2"])
        if parts is None or one.count(F["ty1"]) != 1:
            raise ToolShapeError("a property's type is not written as it is (in capitals, or chosen among?)")
        return (f"{{{{ if eq (len $p.Type) 1 }}}}{_fill(one, {F['ty1']: '{{ index $p.Type 0 }}'})}{{{{ else }}}}"
                f"{_list('$p.Type', '$ty', *parts)}{{{{ end }}}}")
    # the fields written (a field whose variant renders the same is not written at all)
    fields = [(name, cond, inner(variant), make, mark) for name, cond, variant, make, mark in (
        ("enum", "$p.Enum", "fa_nr", enum_go, F["ev1"]),
        ("description", "$p.Description", "fp_nodesc", desc_go, TM["tpd1"]),
        ("type", "$p.Type", "fp_notype", type_go, F["ty1"])) if inner(variant) != full]
    with_items = inner("fp_items")
    try:
        spans: list = []
        for name, cond, less, make, _mark in fields:
            i, j = _removed(full, less, f"a property's {name}", spans)
            spans.append((i, j, f"{{{{ if {cond} }}}}{make(i, j)}{{{{ end }}}}"))
        # items (typed any in Ollama): written, if at all, as Python's json.dumps writes them
        if with_items != full:
            starts, n = _starts(with_items, full, "a property's items")
            at = [x for x in starts if not any(a < x < b for a, b, _ in spans)]
            at = [x for x in at if _good(with_items, x) and _good(with_items, x + n)] or at
            if not at:
                raise ToolShapeError("a property's items are written inside another of its fields")
            seg = with_items[at[0]:at[0] + n]
            parts = seg.split(json.dumps(ITEMS_PROBE, ensure_ascii=False))
            if len(parts) != 2:
                raise ToolShapeError("a property's items are not written as JSON")
            spans.append((at[0], at[0], f"{{{{ if $p.Items }}}}{_fill(parts[0], {})}{py_json('$p.Items')}"
                                        f"{_fill(parts[1], {})}{{{{ end }}}}"))
        return _with_spans(full, spans, {TM["tp1"]: "{{ $pk }}"})
    except ToolShapeError as e:
        if "overlapping" not in str(e) or len(fields) < 2 or with_items != full:
            raise
    # one separator between the fields present: the first field's text ends with it, the last's
    # starts with it, and between any two fields there is nothing else
    fields.sort(key=lambda f: full.find(f[4]))
    cands = [_starts(full, f[2], f"a property's {f[0]}") for f in fields]
    for sa in cands[0][0]:
        span_a = full[sa:sa + cands[0][1]]
        for sz in cands[-1][0]:
            span_z = full[sz:sz + cands[-1][1]]
            for k in range(min(len(span_a), len(span_z)) - 1, 0, -1):
                sep = span_a[len(span_a) - k:]
                if not span_z.startswith(sep) or _MARK.search(sep):
                    continue
                cores = [(sa, sa + len(span_a) - k)]
                for (starts, n) in cands[1:-1]:
                    core = next(((x + k, x + n) if full[x:x + n].startswith(sep) else (x, x + n - k)
                                 for x in starts if full[x:x + n].startswith(sep) or full[x:x + n].endswith(sep)),
                                None)
                    if core is None:
                        break
                    cores.append(core)
                else:
                    cores.append((sz + k, sz + len(span_z)))
                    if all(full[cores[m][1]:cores[m + 1][0]] == sep for m in range(len(cores) - 1)):
                        body = "".join(f"{{{{ if {f[1]} }}}}{{{{ if $fs }}}}{_lit(sep)}{{{{ end }}}}{{{{ $fs = true }}}}"
                                       f"{f[3](i, j)}{{{{ end }}}}" for f, (i, j) in zip(fields, cores))
                        names = {TM["tp1"]: "{{ $pk }}"}
                        return (_fill(full[:cores[0][0]], names) + "{{ $fs := false }}" + body
                                + _fill(full[cores[-1][1]:], names))
    raise ToolShapeError("a property's fields are written in a form this converter does not know")


def learn_field_definitions(r: dict[str, str], check: Callable[[str, dict, str], bool]) -> dict:
    """How tools are written, field by field. ``r``: renderings of the plain conversation with the
    tool lists of :func:`field_probe_tools` (``g0``: the first probe tool, ``tt``: both, ``b``: the
    second alone). ``check(go_unit, tool, text)``: whether the Go text of one tool renders ``tool``
    as ``text``.

    Returns {"text": the first probe tool's text, "join": what comes between two tools, "go": Go text
    for one tool in ``$tool``} or raises ToolShapeError."""
    pre, u1, join, u2, post = split_two(r["g0"], r["b"], r["tt"])
    units = {}
    for key, v in r.items():
        if key in ("g0", "tt", "b"):
            continue
        if not v.startswith(pre) or not v.endswith(post) or len(v) < len(pre) + len(post):
            raise ToolShapeError("a tool's fields change text outside its definition")
        units[key] = v[len(pre):len(v) - len(post)]
    base = {TM["tn1"]: "{{ $tool.Function.Name }}", TM["td1"]: "{{ $tool.Function.Description }}"}
    if units["fa2_nr"] == units["fa_nr"]:
        # properties are not written at all (tools listed by name and description)
        go = _required(units, units["fa_nr"], len(units["fa_nr"]), len(units["fa_nr"]), "", base)
        return _checked(go, units, u1, u2, join, check)
    # the properties: the text around them, and what one property is
    lpre, pu1, pjoin, _pu2, lpost = split_two(units["fa_nr"], units["fa_only2_nr"], units["fa2_nr"], "two properties")
    # a tool without properties: nothing more, or the text around the properties left out too
    empty = u2.replace(TM["tn2"], TM["tn1"]).replace(TM["td2"], TM["td1"])
    if empty == lpre + lpost:
        w1 = w2 = ""
    else:
        a = _prefix(lpre, empty)
        b = _suffix(lpost, empty, len(empty) - a)
        if lpre[:a] + lpost[len(lpost) - b:] != empty:
            raise ToolShapeError("a tool without properties is written unlike one with them")
        lpre, w1 = lpre[:a], lpre[a:]
        w2, lpost = lpost[:len(lpost) - b], lpost[len(lpost) - b:]
    pre_p = lpre + w1
    post_p = w2 + lpost
    prop = _prop_go({k: v for k, v in units.items() if k.startswith("fp_") or k == "fa_nr"},
                    pre_p, post_p)
    if pu1 != units["fa_nr"][len(pre_p):len(units["fa_nr"]) - len(post_p)]:
        raise ToolShapeError("a tool's properties are not written one after the other")
    # a range over a map gives key and value in key order, as Ollama's template data holds properties
    sep = (f"{{{{ if $ps }}}}{_lit(pjoin)}{{{{ end }}}}{{{{ $ps = true }}}}" if pjoin else "")
    props = "".join((f"{{{{ if $tool.Function.Parameters.Properties }}}}{_fill(w1, base)}",
                     "{{ $ps := false }}" if pjoin else "",
                     f"{{{{ range $pk, $p := $tool.Function.Parameters.Properties }}}}{sep}{prop}{{{{ end }}}}",
                     f"{_fill(w2, base)}{{{{ end }}}}"))
    nr = units["fa_nr"]
    go = _required(units, nr, len(lpre), len(nr) - len(lpost), props, base)
    return _checked(go, units, u1, u2, join, check)


def _required(units: dict, nr: str, a_end: int, b_start: int, props: str, base: dict) -> str:
    """The Go text of one tool: ``nr`` (the tool without ``required``), its properties (``props``,
    in place of ``nr[a_end:b_start]``) and the required list, a span of its own before or after
    them, if it is written at all."""
    if units["fa"] == nr:
        return _fill(nr[:a_end], base) + props + _fill(nr[b_start:], base)
    starts, n = _starts(units["fa"], nr, "a tool's required list")
    i = b_start if b_start in starts else a_end if a_end in starts else \
        next((x for x in starts if x <= a_end or x >= b_start), None)
    if i is None:
        raise ToolShapeError("a tool's required list is written inside its properties")
    seg1 = units["fa"][i:i + n]
    # the two-item list: where its span sits so that it reads as the one-item list with one more item
    starts2, n2 = _starts(units["fa2"], units["fa2_nr"], "a tool's required list")
    parts = None
    for k in starts2:
        parts = _between(units["fa2"][k:k + n2], TM["tp1"], F["tp2"])
        if parts is not None and seg1 == parts[0] + TM["tp1"] + parts[2]:
            break
        parts = None
    if parts is None:
        raise ToolShapeError("a tool's required properties are not written as a list")
    req = (f"{{{{ if $tool.Function.Parameters.Required }}}}"
           f"{_list('$tool.Function.Parameters.Required', '$rq', *parts)}{{{{ end }}}}")
    if i <= a_end:
        return _fill(nr[:i], base) + req + _fill(nr[i:a_end], base) + props + _fill(nr[b_start:], base)
    return _fill(nr[:a_end], base) + props + _fill(nr[b_start:i], base) + req + _fill(nr[i:], base)


def _checked(go: str, units: dict, u1: str, u2: str, join: str, check) -> dict:
    """``go`` if every probe tool comes out as the chat template wrote it, the two plain ones too."""
    tools = {k: v[0] for k, v in field_probe_tools().items()}
    t1, t2 = probe_tools()
    for tool, text in [(tools[k], v) for k, v in units.items()] + [(t1, u1), (t2, u2)]:
        if not check(go, tool, text):
            raise ToolShapeError("tool definitions written field by field do not come out as the chat template "
                                 "writes them")
    return {"text": u1, "join": join, "go": go, "unit2": u2}


def tool_check(render: Callable[[str, dict], str]):
    """A ``check`` for :func:`learn_field_definitions` from a Go renderer (template text, data)."""
    def check(go: str, tool: dict, text: str) -> bool:
        return render(with_py_json("{{ range $ti, $tool := .Tools }}" + go + "{{ end }}"),
                      {"Tools": go_tools([tool])}) == text
    return check


"""Tools in derived templates: Ollama's ``.Tools`` and tool calls printed as a chat template prints them.

A Jinja chat template writes tool definitions with transformers' ``tojson`` (Python's ``json.dumps``:
``", "`` and ``": "`` separators, or an indent), while Ollama's template function ``json`` writes Go's
compact form. The tool a template sees in Ollama is Ollama's own structure (``templateTool`` in
``template/template.go``: fields in a fixed order, empty ones left out, properties in key order), so
the text ``json.dumps`` makes of it can be written by a Go template field by field. This module
holds:

* :func:`tool_view`: a tool as Ollama hands it to a template, as the JSON object Jinja would be given
  (what the checks render the Jinja template with);
* :func:`go_tools` / :func:`go_message`: the same data with Go's field names, for this project's Go
  renderer (:mod:`ollama_oci.gotemplate`);
* :func:`json_snippet`: Go template text that prints a tool (or its function) exactly as
  ``json.dumps(tool_view(tool), indent=...)`` does, for the fields Ollama's structure has. Strings
  are written with ``printf "%q"`` (Go's ``strconv.Quote``, which, unlike Ollama's ``json``, leaves
  ``<``, ``>`` and ``&`` alone and agrees with Python's JSON for all printable text; control and
  other non-printable characters are escaped differently). Values typed ``any`` in Ollama
  (``items``, ``$defs``, ``anyOf``, nested ``properties``) are printed one level deep in Python's
  form and deeper in Go's compact form (docs/design.md).
"""


from __future__ import annotations

import json
import re
from typing import Optional

from .gojson import GoMap
from .gotemplate import GoJSONList, GoJSONMap, GoJSONStruct, GoNilSlice, PropertyType, ToolPropertiesMap, go_quote

__all__ = ["tool_view", "go_tools", "go_message", "json_snippet", "call_view"]


def q(expr: str) -> str:
    """Go template text writing the string ``expr`` as Python's ``json.dumps`` does (for printable text)."""
    return f'{{{{ printf "%q" {expr} }}}}'


def val(expr: str) -> str:
    """Go template text writing a JSON value: a string quoted as :func:`q` does, anything else as ``json``."""
    return f'{{{{ if eq (printf "%T" {expr}) "string" }}}}{q(expr)}{{{{ else }}}}{{{{ json {expr} }}}}{{{{ end }}}}'


#: named templates that write any JSON value of Ollama's template data (a JSON object is a Go map,
#: arrays are slices, numbers float64) as Python's ``json.dumps`` writes it: compact (", " and ": ")
#: at any depth, the template calling itself; indented, one template per depth (a template cannot
#: carry a number), :data:`PY_JSON_DEPTH` levels below the shallowest call, deeper values in Go's
#: compact form. Keys in order, strings as :func:`q` writes them. A derived template that uses
#: :func:`py_json` starts with the definitions it calls (:func:`with_py_json`; Go takes a
#: ``{{ define }}`` only at the top).
PY_JSON = "python-json"
PY_JSON_DEPTH = 12


def _py_json_define(name: str, inner: str, indent: Optional[int], depth: int) -> str:
    """One definition: ``inner`` names the template for the values inside."""
    nl_in = "" if indent is None else "\n" + " " * (indent * (depth + 1))
    nl_out = "" if indent is None else "\n" + " " * (indent * depth)
    sep = ", " if indent is None else ","
    empty = ('{{ if not . }}{{ "{}" }}{{ else }}', "{{ end }}") if indent is not None else ("", "")
    empty_list = ("{{ if not . }}[]{{ else }}", "{{ end }}") if indent is not None else ("", "")
    return (f'{{{{ define "{name}" }}}}{{{{ if eq (printf "%T" .) "map[string]interface {{}}" }}}}{empty[0]}'
            f'{{{{ "{{" }}}}{{{{ $s := "" }}}}{{{{ range $k, $v := . }}}}{{{{ $s }}}}{nl_in}{{{{ printf "%q" $k }}}}: '
            f'{{{{ template "{inner}" $v }}}}{{{{ $s = "{sep}" }}}}{{{{ end }}}}{nl_out}{{{{ "}}" }}}}{empty[1]}'
            f'{{{{ else if eq (printf "%T" .) "[]interface {{}}" }}}}{empty_list[0]}[{{{{ range $i, $v := . }}}}'
            f'{{{{ if $i }}}}{sep}{{{{ end }}}}{nl_in}{{{{ template "{inner}" $v }}}}{{{{ end }}}}{nl_out}]{empty_list[1]}'
            f'{{{{ else if eq (printf "%T" .) "string" }}}}{{{{ printf "%q" . }}}}{{{{ else }}}}{{{{ json . }}}}{{{{ end }}}}'
            f'{{{{ end }}}}')


def _py_json_name(indent: Optional[int], depth: int) -> str:
    return PY_JSON if indent is None else f"{PY_JSON}-i{indent}-{depth}"


def _py_json_defines(indent: Optional[int], first: int = 0) -> str:
    """The definitions for ``indent``, from depth ``first`` (the shallowest a template calls) on."""
    if indent is None:
        return _py_json_define(PY_JSON, PY_JSON, None, 0)
    last = first + PY_JSON_DEPTH
    out = [_py_json_define(_py_json_name(indent, d), _py_json_name(indent, d + 1), indent, d)
           for d in range(first, last)]
    out.append(f'{{{{ define "{_py_json_name(indent, last)}" }}}}{{{{ json . }}}}{{{{ end }}}}')
    return "".join(out)


def py_json(expr: str, indent: Optional[int] = None, depth: int = 0) -> str:
    """Go template text writing the JSON value ``expr`` as ``json.dumps(value, indent=indent)``
    writes it where it stands ``depth`` levels deep."""
    return f'{{{{ template "{_py_json_name(indent, depth)}" {expr} }}}}'


def with_py_json(template: str) -> str:
    """``template`` with the definitions :func:`py_json` calls in it, at its top."""
    heads = []
    if f'{{{{ template "{PY_JSON}" ' in template:
        heads.append(_py_json_defines(None))
    calls: dict[int, int] = {}
    for ind, depth in re.findall(r'\{\{ template "python-json-i(\d+)-(\d+)" ', template):
        calls[int(ind)] = min(calls.get(int(ind), 1 << 30), int(depth))
    for ind in sorted(calls):
        heads.append(_py_json_defines(ind, calls[ind]))
    from .chat_tool_notation import with_defines      # Gemma 4's notation calls named templates too
    return with_defines("".join(heads) + template)


# -- the data on both sides ------------------------------------------------------------------------

def sorted_any(v):
    """A JSON value with every object's keys in the order Go writes a map's (Ollama's template data
    holds JSON objects as Go maps): what the Jinja side of a check is given."""
    if isinstance(v, dict):
        return {k: sorted_any(x) for k, x in sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))}
    if isinstance(v, list):
        return [sorted_any(x) for x in v]
    return v


def go_any(v):
    """A JSON value as Ollama's template data holds it: objects as Go maps (:class:`GoMap`),
    numbers as float64."""
    if isinstance(v, dict):
        return GoMap((k, go_any(x)) for k, x in sorted(v.items(), key=lambda kv: kv[0].encode("utf-8")))
    if isinstance(v, list):
        return [go_any(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _slice(v) -> list:
    return list(v) if v else GoNilSlice()


def _prop_view(p: dict) -> dict:
    out: dict = {}
    if p.get("anyOf"):
        out["anyOf"] = [_prop_view(x) for x in p["anyOf"]]
    t = p.get("type")
    if t:
        out["type"] = t if isinstance(t, str) else (t[0] if len(t) == 1 else list(t))
    if p.get("items") is not None:
        out["items"] = sorted_any(p["items"])
    if p.get("description"):
        out["description"] = p["description"]
    if p.get("enum"):
        out["enum"] = list(p["enum"])
    if p.get("properties"):
        out["properties"] = {k: _prop_view(v) for k, v in sorted(p["properties"].items())}
    if p.get("required"):
        out["required"] = list(p["required"])
    return out


def tool_view(tool: dict) -> dict:
    """``tool`` (an OpenAI/Ollama tool object) as Ollama passes it to a template, in JSON form: the
    object transformers' ``tojson`` would print."""
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    out: dict = {"type": tool.get("type", "function")}
    if tool.get("items") is not None:
        out["items"] = sorted_any(tool["items"])
    pv: dict = {"type": params.get("type", "")}
    if params.get("$defs") is not None:
        pv["$defs"] = sorted_any(params["$defs"])
    if params.get("items") is not None:
        pv["items"] = sorted_any(params["items"])
    if params.get("required"):
        pv["required"] = list(params["required"])
    props = params.get("properties")
    # no properties and empty ones look alike to a Go template: both are written as {}
    pv["properties"] = {k: _prop_view(v) for k, v in sorted((props or {}).items())}
    out["function"] = {"name": fn.get("name", ""), "description": fn.get("description", ""), "parameters": pv}
    return out


def call_view(call: dict, string_args: bool = False) -> dict:
    """A tool call as the Jinja side gets it: arguments in key order (Ollama's template data is a map),
    or (``string_args``, for templates that splice them in as text) that map's JSON string."""
    fn = call.get("function") or {}
    args = sorted_any(fn.get("arguments") or {})      # nested objects too: Go maps, written in key order
    out = {"type": "function", "function": {"name": fn.get("name", ""),
                                            "arguments": json.dumps(args, ensure_ascii=False) if string_args else args}}
    if call.get("id"):           # Ollama's ToolCall.ID (a result names its call by it: tool_call_id)
        out["id"] = call["id"]
    return out


def _go_prop(p: dict) -> dict:
    """A property as Ollama's ``api.ToolProperty`` (nil slices are empty ones: they print as ``[]``)."""
    t = p.get("type")
    return GoJSONStruct({"AnyOf": _slice([_go_prop(x) for x in p.get("anyOf") or []]),
                         "Type": PropertyType([t] if isinstance(t, str) else (t or [])),
                         "Items": go_any(p.get("items")), "Description": p.get("description", ""),
                         "Enum": _slice(p.get("enum")),
                         "Properties": ToolPropertiesMap((k, _go_prop(v)) for k, v in p["properties"].items())
                         if p.get("properties") else None,
                         "Required": _slice(p.get("required"))}, _prop_view(p), go_type="api.ToolProperty")


def _properties(items) -> GoJSONMap:
    """A tool's properties as Ollama's ``templateProperties`` (a named map type)."""
    m = GoJSONMap(items)
    m.go_type = "template.templateProperties"
    return m


def go_tools(tools: Optional[list]) -> Optional[list]:
    """``tools`` with Go's field names, as this project's Go renderer reads ``.Tools``; ``json`` and
    printing write them as Ollama's ``templateTool`` does (its JSON; see :class:`GoJSONStruct`)."""
    if not tools:
        return None
    out = GoJSONList()
    for tool in tools:
        fn = tool.get("function") or {}
        params = fn.get("parameters") or {}
        props = params.get("properties")
        view = tool_view(tool)
        pv = view["function"]["parameters"]
        parameters = GoJSONStruct({"Type": params.get("type", ""), "Defs": go_any(params.get("$defs")),
                                   "Items": go_any(params.get("items")), "Required": _slice(params.get("required")),
                                   "Properties": None if props is None else
                                   _properties((k, _go_prop(v)) for k, v in props.items())}, pv,
                                  go_type="template.templateToolFunctionParameters")
        function = GoJSONStruct({"Name": fn.get("name", ""), "Description": fn.get("description", ""),
                                 "Parameters": parameters}, view["function"], go_type="template.templateToolFunction")
        out.append(GoJSONStruct({"Type": tool.get("type", "function"), "Items": go_any(tool.get("items")),
                                 "Function": function}, view, stringer=True, go_type="template.templateTool"))
    return out


def go_message(m: dict) -> dict:
    """A chat message (``role``, ``content``, ``tool_calls``, ``tool_name``...) with Go's field names."""
    calls = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or {}
        calls.append({"ID": c.get("id", ""), "Function": {"Index": fn.get("index", 0), "Name": fn.get("name", ""),
                                                          "Arguments": GoJSONMap(go_any(fn.get("arguments") or {}))}})
    # a tool result's name: Ollama hands ToolName to a chat template as "name" (llamaServerChatMessage)
    name = m.get("tool_name") or (m.get("name", "") if m.get("role") == "tool" else "")
    return {"Role": m.get("role", ""), "Content": m.get("content") or "", "Thinking": m.get("thinking", ""),
            "Images": None, "ToolCalls": calls or None, "ToolName": name,
            "ToolCallID": m.get("tool_call_id", "")}


# -- printing Python's JSON from a Go template ---------------------------------------------------------

class _Printer:
    """Writes Go template text for ``json.dumps(value, indent=indent)`` of one of Ollama's fixed shapes."""

    def __init__(self, indent: Optional[int]):
        self.indent = indent
        self.n = 0

    def var(self, stem: str) -> str:
        self.n += 1
        return f"${stem}{self.n}"

    def nl(self, depth: int) -> str:
        return "" if self.indent is None else "\n" + " " * (self.indent * depth)

    @property
    def item_sep(self) -> str:
        return ", " if self.indent is None else ","

    def strings(self, expr: str, depth: int) -> str:
        """A non-empty list of strings (or other plain values)."""
        e = self.var("e")
        i = self.var("i")
        return (f'[{{{{ range {i}, {e} := {expr} }}}}{{{{ if {i} }}}}{self.item_sep}{{{{ end }}}}'
                f'{self.nl(depth + 1)}{val(e)}{{{{ end }}}}{self.nl(depth)}]')

    def any(self, expr: str, depth: int) -> str:
        """A value typed ``any`` (a JSON value), as Python prints it, ``depth`` levels deep."""
        return py_json(expr, self.indent, depth)

    def obj(self, fields: list[tuple[str, str, Optional[str]]], depth: int) -> str:
        """An object whose fields are (key, value text, condition or None: always written). The first
        field of every fixed shape is always written, or every field is conditional."""
        out = ["{{ \"{\" }}"]
        if all(c is not None for _, _, c in fields):
            s = self.var("s")
            out.append(f'{{{{ {s} := "" }}}}')
            for key, text, cond in fields:
                out.append(f'{{{{ if {cond} }}}}{{{{ if {s} }}}}{self.item_sep}{{{{ end }}}}{{{{ {s} = "," }}}}'
                           f'{self.nl(depth + 1)}"{key}": {text}{{{{ end }}}}')
            out.append(f'{{{{ if {s} }}}}{self.nl(depth)}{{{{ end }}}}')
        else:
            for n, (key, text, cond) in enumerate(fields):
                piece = f'{self.item_sep if n else ""}{self.nl(depth + 1)}"{key}": {text}'
                out.append(piece if cond is None else f"{{{{ if {cond} }}}}{piece}{{{{ end }}}}")
            out.append(self.nl(depth))
        out.append("{{ \"}\" }}")
        return "".join(out)

    def prop(self, p: str, depth: int) -> str:
        t = (f'{{{{ if eq (len {p}.Type) 1 }}}}{q(f"(index {p}.Type 0)")}{{{{ else }}}}'
             f'{self.strings(p + ".Type", depth + 1)}{{{{ end }}}}')
        return self.obj([("anyOf", f"{{{{ json {p}.AnyOf }}}}", f"{p}.AnyOf"),
                         ("type", t, f"{p}.Type"),
                         ("items", self.any(p + ".Items", depth + 1), f"{p}.Items"),
                         ("description", q(p + ".Description"), f"{p}.Description"),
                         ("enum", self.strings(p + ".Enum", depth + 1), f"{p}.Enum"),
                         ("properties", f"{{{{ json {p}.Properties }}}}", f"{p}.Properties"),
                         ("required", self.strings(p + ".Required", depth + 1), f"{p}.Required")], depth)

    def props(self, expr: str, depth: int) -> str:
        k, v, s = self.var("k"), self.var("p"), self.var("s")
        return (f'{{{{ if {expr} }}}}{{{{ "{{" }}}}{{{{ {s} := "" }}}}{{{{ range {k}, {v} := {expr} }}}}'
                f'{{{{ if {s} }}}}{self.item_sep}{{{{ end }}}}{{{{ {s} = "," }}}}{self.nl(depth + 1)}'
                f'{q(k)}: {self.prop(v, depth + 1)}{{{{ end }}}}{self.nl(depth)}{{{{ "}}" }}}}'
                f'{{{{ else }}}}{{{{ "{{}}" }}}}{{{{ end }}}}')

    def function(self, f: str, depth: int) -> str:
        pr = f + ".Parameters"
        params = self.obj([("type", q(pr + ".Type"), None),
                           ("$defs", self.any(pr + ".Defs", depth + 2), f"{pr}.Defs"),
                           ("items", self.any(pr + ".Items", depth + 2), f"{pr}.Items"),
                           ("required", self.strings(pr + ".Required", depth + 2), f"{pr}.Required"),
                           ("properties", self.props(pr + ".Properties", depth + 2), None)], depth + 1)
        return self.obj([("name", q(f + ".Name"), None),
                         ("description", q(f + ".Description"), None),
                         ("parameters", params, None)], depth)

    def tool(self, t: str, depth: int) -> str:
        return self.obj([("type", q(t + ".Type"), None),
                         ("items", self.any(t + ".Items", depth + 1), f"{t}.Items"),
                         ("function", self.function(t + ".Function", depth + 1), None)], depth)


def json_snippet(var: str, *, indent: Optional[int] = None, root: str = "tool") -> str:
    """Go template text printing the tool in ``var`` (``root="function"``: its ``.Function``) as
    ``json.dumps(tool_view(tool)[...], indent=indent, ensure_ascii=False)`` prints it."""
    p = _Printer(indent)
    return p.tool(var, 0) if root == "tool" else p.function(var + ".Function", 0)


# -- finding where a chat template puts tools, calls and results --------------------------------------

#: marker strings of the tool probes (see chat_template's _M)
TM = {"tn1": "@@TN1_7a1@@", "td1": "@@TD1_7a1@@", "tp1": "@@TP1_7a1@@", "tpd1": "@@TPD1_7a1@@",
      "tn2": "@@TN2_7a1@@", "td2": "@@TD2_7a1@@",
      "ak1": "@@AK1_7a1@@", "av1": "@@AV1_7a1@@", "ak2": "@@AK2_7a1@@", "av2": "@@AV2_7a1@@",
      "tr1": "@@TR1_7a1@@", "tr2": "@@TR2_7a1@@", "tools": "@@TOOLS_7a1@@", "names": "@@NAMES_7a1@@",
      "name_again": "@@CNAME_7a1@@", "rn1": "@@RN1_7a1@@", "rn2": "@@RN2_7a1@@"}


def probe_tools() -> tuple[dict, dict]:
    """The two tool definitions the probes offer (OpenAI form)."""
    t1 = {"type": "function", "function": {"name": TM["tn1"], "description": TM["td1"], "parameters": {
        "type": "object", "properties": {TM["tp1"]: {"type": "string", "description": TM["tpd1"]}},
        "required": [TM["tp1"]]}}}
    t2 = {"type": "function", "function": {"name": TM["tn2"], "description": TM["td2"], "parameters": {
        "type": "object", "properties": {}}}}
    return t1, t2


def probe_calls() -> dict:
    """Tool calls the probes make: one argument, two, none."""
    return {"c1": {"function": {"name": TM["tn1"], "arguments": {TM["ak1"]: TM["av1"]}}},
            "c1b": {"function": {"name": TM["tn1"], "arguments": {TM["ak1"]: TM["av1"], TM["ak2"]: TM["av2"]}}},
            "c0": {"function": {"name": TM["tn2"], "arguments": {}}},
            # values that are not strings, for calls written as name/value pairs: how true, null
            # and an object come out (Python's str(), JSON, ...)
            "cb": {"function": {"name": TM["tn1"], "arguments": {TM["ak1"]: True}}},
            "cn": {"function": {"name": TM["tn1"], "arguments": {TM["ak1"]: None}}},
            "cm": {"function": {"name": TM["tn1"], "arguments": {TM["ak1"]: VALUE_PROBE}}}}


#: the object and list value of the "cm" call probe
VALUE_PROBE = {"a": 1, "b": ["x", 2.5]}


class ToolShapeError(ValueError):
    """The chat template writes tools in a way this converter does not know (the reason says how)."""


def _once(text: str, needle: str) -> int:
    i = text.find(needle)
    if i < 0 or text.find(needle, i + 1) >= 0:
        return -1
    return i


def find_definitions(with_one: str, with_two: str, t1: dict, t2: dict) -> dict:
    """How the tool definitions are written: {"text": the first tool's text, "indent", "root",
    "join": what comes between two tools, "names": the other lists of tool names (:func:`_name_list`)
    or None}."""
    v1, v2 = tool_view(t1), tool_view(t2)
    for indent in (None, 2, 4):
        for root in ("tool", "function"):
            a = v1 if root == "tool" else v1["function"]
            b = v2 if root == "tool" else v2["function"]
            s1 = json.dumps(a, indent=indent, ensure_ascii=False)
            s2 = json.dumps(b, indent=indent, ensure_ascii=False)
            i = _once(with_one, s1)
            if i < 0:
                continue
            j = _once(with_two, s1)
            k = _once(with_two, s2)
            if j < 0 or k < j + len(s1):
                raise ToolShapeError("two tool definitions are not written one after the other")
            join = with_two[j + len(s1):k]
            one = with_one[:i] + TM["tools"] + with_one[i + len(s1):]
            two = with_two[:j] + TM["tools"] + with_two[k + len(s2):]
            names = None
            if one != two:
                names = _name_list(one, two)
            return {"text": s1, "indent": indent, "root": root, "join": join, "names": names}
    raise ToolShapeError("tool definitions are not written as JSON (tojson) of each tool")


def _name_list(one: str, two: str) -> list[str]:
    """Other lists that name each tool (Glimmer's "Tool metadata" lines and its "Valid recipients"):
    for each place the first tool's name is written, what comes between two names there. ``one`` and
    ``two``: the renderings with one and two tools, the definitions' list already replaced by a marker."""
    n1, n2 = TM["tn1"], TM["tn2"]
    betweens: list[str] = []
    rebuilt, at, pos2 = [], 0, 0
    while True:
        i = one.find(n1, at)
        if i < 0:
            break
        k = two.find(n2, pos2)
        head = one[at:i + len(n1)]
        if k < 0 or two[pos2:pos2 + len(head)] != head:
            raise ToolShapeError("a second tool definition changes more than the list of tools")
        between = two[pos2 + len(head):k]
        if any(m in between for m in TM.values()):
            raise ToolShapeError("a second tool definition changes more than the list of tools")
        betweens.append(between)
        rebuilt.append(head + between + n2)
        at, pos2 = i + len(n1), k + len(n2)
    if not betweens or "".join(rebuilt) + one[at:] != two:
        raise ToolShapeError("a second tool definition changes more than the list of tools")
    return betweens


def args_snippet(var: str, indent: Optional[int]) -> str:
    """Go template text printing the arguments map in ``var`` as ``json.dumps(args, indent=indent)``
    (values as Python writes them, :data:`PY_JSON_DEPTH` levels deep)."""
    sep = ", " if indent is None else ","
    nl = "" if indent is None else "\n" + " " * indent
    end = "" if indent is None else "\n"
    value = py_json("$av", indent, 1)
    return (f'{{{{ "{{" }}}}{{{{ $as := "" }}}}{{{{ range $ak, $av := {var} }}}}{{{{ if $as }}}}{sep}{{{{ end }}}}'
            f'{{{{ $as = "," }}}}{nl}{q("$ak")}: {value}{{{{ end }}}}'
            f'{{{{ if $as }}}}{end}{{{{ end }}}}{{{{ "}}" }}}}')


def _name_again(text: str, name: str) -> str:
    """``text`` with every occurrence of ``name`` after the first replaced by ``TM["name_again"]``."""
    i = text.find(name)
    if i < 0:
        return text
    return text[:i + len(name)] + text[i + len(name):].replace(name, TM["name_again"])


def find_calls(calls: dict[str, str], tokens: Optional["re.Pattern[str]"] = None, quotes: tuple = ()) -> dict:
    """How a call is written, from the text of the assistant turn's calls in the probes: ``k1`` (one
    call, one argument), ``k2`` (two arguments), ``k0`` (no argument), ``kk`` (the one-argument call
    then the no-argument one), ``kc`` (the turn's text, then one call: what comes between).
    ``tokens`` matches the special tokens a closer must not start inside; ``quotes``: more quotes a
    string value may stand between (Gemma 4's notation's ``<|"|>``, whose values it writes itself).
    Returns the pieces :func:`calls_snippet` writes."""
    # a name written more than once in a call (Glimmer's "to=NAME" header and its invoke tag): the
    # first is where the call's name goes, the others become a marker written as the name too
    calls = {k: _name_again(v, TM["tn2"] if k == "k0" else TM["tn1"]) if isinstance(v, str) else v
             for k, v in calls.items()}
    if calls.get("kk") is not None:
        second = calls["kk"].find(TM["tn2"])
        if second >= 0:
            calls["kk"] = calls["kk"][:second] + _name_again(calls["kk"][second:], TM["tn2"])
    c1, c2, c0, cc = calls["k1"], calls["k2"], calls["k0"], calls.get("kk")
    kc = calls["kc"]
    # what closes the list of calls, written once after the last (LFM2's "]<|tool_call_end|>"): the
    # shortest tail of one call that two calls end with too, the first call written in full before it
    close = ""
    if cc is not None and not cc.startswith(c1):
        def closes(n: int) -> bool:
            tail_ = c1[len(c1) - n:]
            return all(x.endswith(tail_) for x in (cc, c0, c2)) and cc.startswith(c1[:len(c1) - n])
        n = next((n for n in range(1, len(c1) + 1) if closes(n)), 0)
        if not n:
            raise ToolShapeError("a second call changes how the first one is written")
        # not from inside a special token: DeepSeek's "<｜tool▁call▁end｜>" and "<｜tool▁calls▁end｜>"
        # share their start, and the closer is the whole second token
        cut = len(c1) - n
        for m in (tokens.finditer(c1) if tokens is not None else ()):
            if m.start() < cut < m.end() and closes(len(c1) - m.start()):
                n = len(c1) - m.start()
        close = c1[len(c1) - n:]
        c1, c2, c0, cc = (x[:len(x) - len(close)] for x in (c1, c2, c0, cc))
        if kc.endswith(close):
            kc = kc[:len(kc) - len(close)]
    i = _once(c1, TM["tn1"])
    if i < 0:
        raise ToolShapeError("a tool call's name is not written once")
    first, rest = c1[:i], c1[i + len(TM["tn1"]):]
    spec: dict = {"first": first, "close": close}
    for indent in (None, 2, 4):
        s = json.dumps({TM["ak1"]: TM["av1"]}, indent=indent, ensure_ascii=False)
        k = _once(rest, s)
        if k >= 0:
            spec.update(form="json", indent=indent, before=rest[:k], after=rest[k + len(s):])
            s2 = json.dumps({TM["ak1"]: TM["av1"], TM["ak2"]: TM["av2"]}, indent=indent, ensure_ascii=False)
            if c2 != first + TM["tn1"] + spec["before"] + s2 + spec["after"]:
                raise ToolShapeError("a call with two arguments is not written like one with one")
            e = json.dumps({}, indent=indent)
            if c0 != first + TM["tn2"] + spec["before"] + e + spec["after"]:
                raise ToolShapeError("a call without arguments is not written like one with arguments")
            break
    else:
        k = _once(rest, TM["ak1"])
        if k < 0:
            raise ToolShapeError("a tool call's arguments are not written, or not in a form this converter knows")
        head, after_k = rest[:k], rest[k + len(TM["ak1"]):]
        # a string value in JSON quotes, in Python's single quotes (LFM2.5's name(key='value')), or bare
        q = next((c for c in (*quotes, '"', "'") if _once(after_k, c + TM["av1"] + c) >= 0), "")
        v = q + TM["av1"] + q
        m = _once(after_k, v)
        if m < 0:
            raise ToolShapeError("a tool call's argument value is not written after its name")
        kv_sep, tail = after_k[:m], after_k[m + len(v):]
        if q == "'" and head.endswith("'") and kv_sep.startswith("'"):
            # {'key': 'value'}: Python's repr of the map, what a template that writes the arguments as
            # they are makes of transformers' dict; the JSON string convention is what it means
            raise ToolShapeError("a call's arguments are written as Python's repr of a map")
        v2 = q + TM["av2"] + q
        j = _once(c2, TM["ak2"])
        pre2 = first + TM["tn1"] + head + TM["ak1"] + kv_sep + v
        if j < 0 or not c2.startswith(pre2):
            raise ToolShapeError("a call with two arguments is not written like one with one")
        join = c2[len(pre2):j]
        if c2 != pre2 + join + TM["ak2"] + kv_sep + v2 + tail:
            raise ToolShapeError("a call's arguments are not written one after the other")
        if not c0.startswith(first + TM["tn2"]):
            raise ToolShapeError("a call without arguments starts unlike one with arguments")
        spec.update(form="pairs", head=head, kv_sep=kv_sep, quoted=q, join=join, tail=tail,
                    empty=c0[len(first + TM["tn2"]):])
        # how values other than strings are written, where the probes show it
        for key, what in (("kb", "true"), ("kn", "null"), ("km", "object")):
            text = calls.get(key)
            if text is None:
                continue
            if close and text.endswith(close):
                text = text[:len(text) - len(close)]
            pre = first + TM["tn1"] + head + TM["ak1"] + kv_sep
            if not text.startswith(pre) or not text.endswith(tail) or len(text) < len(pre) + len(tail):
                raise ToolShapeError(f"a call whose argument is {what} is written unlike one with a string")
            spec[what] = text[len(pre):len(text) - len(tail)]
    if cc is None:                      # one call per turn (the template refuses two)
        spec["later"] = first
    else:
        if not cc.startswith(c1):
            raise ToolShapeError("a second call changes how the first one is written")
        later = cc[len(c1):]
        n = _once(later, TM["tn2"])
        if n < 0 or later[n + len(TM["tn2"]):] != c0[len(first + TM["tn2"]):]:
            raise ToolShapeError("a second call is not written like the first")
        spec["later"] = later[:n]
    m = _once(kc, TM["tn1"])
    if m < 0 or kc[m:] != c1[i:]:
        raise ToolShapeError("a call after the turn's text is written unlike one without text")
    spec["after_text"] = kc[:m]       # between the turn's text and its first call
    return spec


def _pair_value(spec: dict) -> str:
    """Go text for the value ``$av`` of a call written as name/value pairs: a string in JSON quotes,
    in Python's single quotes (LFM2.5) or bare, anything else as the probes showed it: true as
    ``True`` (Python's ``str()``, Qwen3-Coder) or ``true``, null as ``None`` or ``null``, objects and
    lists as Python's ``json.dumps`` writes them or as Go's ``json``."""
    qt = spec["quoted"]
    if qt not in ('"', "'", ""):         # Gemma 4's notation: every value as its format_argument writes it
        from .chat_tool_notation import value
        return value(qt, "$av")
    python = qt == "'"     # Python's form: 'text', True/False (what templates written so do)
    if spec.get("true") in ("True", "true"):
        python = spec["true"] == "True"
    true, false = ("True", "False") if python else ("true", "false")
    none = spec["null"] if spec.get("null") in ("None", "null") else "null"
    string = {'"': q("$av"), "'": "'{{ $av }}'"}.get(qt, "{{ $av }}")
    other = "{{ json $av }}"
    if spec.get("object") == json.dumps(VALUE_PROBE, ensure_ascii=False):
        other = py_json("$av")
    return (f'{{{{ if eq (printf "%T" $av) "string" }}}}{string}'
            f'{{{{ else if eq (printf "%T" $av) "bool" }}}}{{{{ if $av }}}}{true}{{{{ else }}}}{false}{{{{ end }}}}'
            f'{{{{ else if eq (printf "%T" $av) "<nil>" }}}}{none}{{{{ else }}}}{other}{{{{ end }}}}')


def calls_snippet(spec: dict, lit) -> str:
    """Go template text for the calls of the assistant message in the dot (``lit`` escapes literal text)."""
    outer = lit
    if any(TM["name_again"] in spec.get(k, "") for k in ("first", "after_text", "close")):
        raise ToolShapeError("a call's name is written again outside the call")

    def lit(text: str) -> str:       # noqa: F811 (inside a call: the name marker is the call's name)
        return "{{ .Function.Name }}".join(outer(x) for x in text.split(TM["name_again"]))
    if spec["form"] == "json":
        args = f'{lit(spec["before"])}{args_snippet(".Function.Arguments", spec["indent"])}{lit(spec["after"])}'
    else:
        value = _pair_value(spec)
        args = (f'{{{{ if .Function.Arguments }}}}{lit(spec["head"])}{{{{ $as := "" }}}}'
                f'{{{{ range $ak, $av := .Function.Arguments }}}}{{{{ if $as }}}}{lit(spec["join"])}{{{{ end }}}}'
                f'{{{{ $as = "," }}}}{{{{ $ak }}}}{lit(spec["kv_sep"])}{value}{{{{ end }}}}{lit(spec["tail"])}'
                f'{{{{ else }}}}{lit(spec["empty"])}{{{{ end }}}}')
    # the first call's opening as the first text inside {{ if .ToolCalls }}, before the range: Ollama
    # takes its tool-call tag from there (tools.parseTag) to find calls in the model's output. Its
    # parser reads only JSON arguments back; calls in any other form it would hold back whole (the
    # client gets an empty message), so there the opening is written as a string action, which
    # ends Ollama's search: no tag, and the model's calls reach the client as text
    readable = spec["form"] == "json"
    first = lit(spec["first"]) if readable or not spec["first"] else f'{{{{ {go_quote(spec["first"])} }}}}'
    after_text = lit(spec["after_text"]) if readable or not spec["after_text"] else \
        f'{{{{ {go_quote(spec["after_text"])} }}}}'
    return (f'{{{{ if .ToolCalls }}}}{{{{ if not .Content }}}}{first}{{{{ else }}}}{after_text}'
            f'{{{{ end }}}}{{{{ range $ci, $c := .ToolCalls }}}}{{{{ if $ci }}}}{lit(spec["later"])}{{{{ end }}}}'
            f'{{{{ .Function.Name }}}}{args}{{{{ end }}}}{lit(spec.get("close", ""))}{{{{ end }}}}')

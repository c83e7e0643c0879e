"""Go ``text/template`` as Ollama uses it: a parser (to check a template Ollama will
accept) and a renderer for the subset chat templates use (to check a derived
template against the original).

Parsed: text with ``{{ }}`` actions and ``{{-``/``-}}`` trim markers, comments,
``if``/``else if``/``else``/``end``, ``range`` (with ``$i, $x :=``), ``with``,
variable declaration (``:=``) and assignment (``=``), pipelines with ``|``,
parenthesised sub-pipelines, fields (``.A.B``, ``$.A``, ``$x.A``), string, raw string,
number and boolean literals.  Functions: Go's builtins plus Ollama's (``json``,
``currentDate``, ``yesterdayDate``, ``toTypeScriptType``); anything else is the error
Go gives (``function "x" not defined``).  ``define``/``template``/``block`` parse but
do not render.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import InvalidInput

__all__ = ["TemplateError", "parse", "render", "check_ollama_template", "OLLAMA_FUNCS"]

BUILTINS = {"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println",
            "urlquery", "eq", "ge", "gt", "le", "lt", "ne"}
OLLAMA_FUNCS = {"json", "currentDate", "yesterdayDate", "toTypeScriptType"}
#: the date ``currentDate`` renders (None: today); checks set it to compare two clocks
TODAY = None
#: what Ollama passes to a template at the top level
TOP_FIELDS = {"System", "Prompt", "Suffix", "Response", "Messages", "Tools", "Think", "ThinkLevel", "IsThinkSet"}


class TemplateError(InvalidInput):
    """A template Ollama's Go parser would refuse (message in Go's words where possible)."""


# -- lexing ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.X)


def _lex_action(src: str, line: int) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise TemplateError(f"template: :{line}: unexpected {src[pos]!r} in command")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


# -- the tree ----------------------------------------------------------------------------------

@dataclass
class Node:
    pass


@dataclass
class Text(Node):
    text: str


@dataclass
class Pipe(Node):
    decl: list[str]            # variables declared or assigned
    assign: bool               # "=" rather than ":="
    cmds: list[list[tuple]]    # commands: lists of operands


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class If(Node):
    branches: list[tuple[Pipe, list[Node]]]
    otherwise: list[Node] = field(default_factory=list)


@dataclass
class Break(Node):
    """``{{break}}`` (Go 1.18+): leave the innermost ``range``."""


@dataclass
class Continue(Node):
    """``{{continue}}`` (Go 1.18+): next iteration of the innermost ``range``."""


class _LoopJump(Exception):
    def __init__(self, node):
        self.node = node


@dataclass
class Range(Node):
    pipe: Pipe
    body: list[Node]
    otherwise: list[Node] = field(default_factory=list)


@dataclass
class With(Node):
    pipe: Pipe
    body: list[Node]
    otherwise: list[Node] = field(default_factory=list)


# -- parsing -----------------------------------------------------------------------------------

class _Parser:
    range_depth = 0   # {{break}} and {{continue}} are allowed only inside a range body

    def __init__(self, text: str):
        self.items = self._split(text)
        self.pos = 0

    @staticmethod
    def _split(text: str) -> list[tuple[str, Any, int]]:
        """Text and action items, with trim markers applied."""
        items: list[tuple[str, Any, int]] = []
        pos, line = 0, 1
        while True:
            i = text.find("{{", pos)
            if i < 0:
                items.append(("text", text[pos:], line))
                break
            chunk = text[pos:i]
            trim_left = text.startswith("{{- ", i) or text.startswith("{{-\n", i) or text.startswith("{{-\t", i)
            if trim_left:
                chunk = chunk.rstrip(" \t\r\n")
            items.append(("text", chunk, line))
            line += text[pos:i].count("\n")
            start = i + (3 if trim_left else 2)
            if text.startswith("/*", start) or text.startswith(" /*", start - 1):
                end = text.find("*/", start)
                if end < 0:
                    raise TemplateError(f"template: :{line}: unclosed comment")
                j = text.find("}}", end)
                if j < 0:
                    raise TemplateError(f"template: :{line}: unclosed comment")
                trim_right = text[end + 2:j].strip() == "-"
                pos = j + 2
                if trim_right:
                    while pos < len(text) and text[pos] in " \t\r\n":
                        pos += 1
                continue
            # find the closing braces outside string literals
            j, k = start, None
            while j < len(text):
                c = text[j]
                if c == '"':
                    j += 1
                    while j < len(text) and text[j] != '"':
                        if text[j] == "\\":
                            j += 1
                        if text[j] == "\n":
                            raise TemplateError(f"template: :{line}: unterminated quoted string")
                        j += 1
                elif c == "`":
                    j = text.find("`", j + 1)
                    if j < 0:
                        raise TemplateError(f"template: :{line}: unterminated raw quoted string")
                elif text.startswith("}}", j):
                    k = j
                    break
                j += 1
            if k is None:
                raise TemplateError(f"template: :{line}: unclosed action")
            body = text[start:k]
            trim_right = body.endswith(" -") or body.endswith("\n-") or body.endswith("\t-")
            if trim_right:
                body = body[:-1]
            items.append(("action", body, line))
            line += text[i:k].count("\n")
            pos = k + 2
            if trim_right:
                while pos < len(text) and text[pos] in " \t\r\n":
                    pos += 1
        return items

    def parse(self) -> list[Node]:
        nodes, stop = self._list(())
        if stop is not None:
            raise TemplateError(f"template: :{stop[2]}: unexpected {{{{{stop[0]}}}}}")
        return nodes

    def _list(self, stops: tuple) -> tuple[list[Node], Optional[tuple]]:
        nodes: list[Node] = []
        while self.pos < len(self.items):
            kind, body, line = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                if body:
                    nodes.append(Text(body))
                continue
            toks = _lex_action(body, line)
            if not toks:
                raise TemplateError(f"template: :{line}: missing value for command")
            word = toks[0][1] if toks[0][0] == "ident" else None
            if word in ("end", "else"):
                if word not in stops:
                    raise TemplateError(f"template: :{line}: unexpected {{{{{word}}}}}")
                return nodes, (word, toks, line)
            if word in ("break", "continue"):
                if self.range_depth <= 0:
                    raise TemplateError(f"template: :{line}: {{{{{word}}}}} outside {{{{range}}}}")
                if len(toks) > 1:
                    raise TemplateError(f"template: :{line}: unexpected {toks[1][1]!r} in {{{{{word}}}}}")
                nodes.append(Break() if word == "break" else Continue())
            elif word == "if":
                nodes.append(self._if(toks[1:], line))
            elif word in ("range", "with"):
                pipe = self._pipe(toks[1:], line, allow_decl=True)
                if word == "range":
                    self.range_depth += 1
                try:
                    body_nodes, stop = self._list(("end", "else"))
                finally:
                    if word == "range":
                        self.range_depth -= 1
                other: list[Node] = []
                if stop is None:
                    raise TemplateError(f"template: :{line}: unexpected EOF")
                if stop[0] == "else":
                    other, stop2 = self._list(("end",))
                    if stop2 is None:
                        raise TemplateError(f"template: :{line}: unexpected EOF")
                nodes.append(Range(pipe, body_nodes, other) if word == "range" else With(pipe, body_nodes, other))
            elif word in ("define", "block"):
                _, stop = self._list(("end",))
                if stop is None:
                    raise TemplateError(f"template: :{line}: unexpected EOF")
            elif word == "template":
                continue
            else:
                nodes.append(Action(self._pipe(toks, line, allow_decl=True)))
        return nodes, None

    def _if(self, toks: list, line: int) -> If:
        branches = []
        cond = self._pipe(toks, line, allow_decl=True)
        while True:
            body, stop = self._list(("end", "else"))
            if stop is None:
                raise TemplateError(f"template: :{line}: unexpected EOF")
            branches.append((cond, body))
            if stop[0] == "end":
                return If(branches)
            rest = stop[1][1:]
            if rest and rest[0] == ("ident", "if"):
                cond = self._pipe(rest[1:], stop[2], allow_decl=True)
                continue
            other, stop2 = self._list(("end",))
            if stop2 is None:
                raise TemplateError(f"template: :{line}: unexpected EOF")
            return If(branches, other)

    def _pipe(self, toks: list, line: int, allow_decl: bool = False) -> Pipe:
        decl: list[str] = []
        assign = False
        # $a, $b := ... / $a := ... / $a = ...
        for n in (4, 2):
            if len(toks) > n - 1 and allow_decl:
                head = toks[:n]
                if n == 4 and [k for k, _ in head] == ["var", "comma", "var", "declare"]:
                    decl, toks = [head[0][1], head[2][1]], toks[4:]
                    break
                if n == 2 and head[0][0] == "var" and head[1][0] in ("declare", "assign"):
                    decl, assign, toks = [head[0][1]], head[1][0] == "assign", toks[2:]
                    break
        cmds: list[list[tuple]] = [[]]
        i = 0
        while i < len(toks):
            kind, val = toks[i]
            if kind == "pipe":
                if not cmds[-1]:
                    raise TemplateError(f"template: :{line}: missing command")
                cmds.append([])
            elif kind == "lparen":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    depth += {"lparen": 1, "rparen": -1}.get(toks[j][0], 0)
                    j += 1
                if depth:
                    raise TemplateError(f"template: :{line}: unclosed left paren")
                cmds[-1].append(("pipe", self._pipe(toks[i + 1:j - 1], line)))
                i = j
                continue
            elif kind == "rparen":
                raise TemplateError(f"template: :{line}: unexpected right paren")
            elif kind in ("declare", "assign", "comma"):
                raise TemplateError(f"template: :{line}: unexpected {val!r} in command")
            elif kind == "ident":
                name = val.split(".")[0]
                if name in ("true", "false", "nil"):
                    cmds[-1].append(("lit", {"true": True, "false": False, "nil": None}[name]))
                else:
                    if name not in BUILTINS and name not in OLLAMA_FUNCS:
                        raise TemplateError(f'template: :{line}: function "{name}" not defined')
                    cmds[-1].append(("func", name))
            elif kind == "str":
                cmds[-1].append(("lit", _go_unquote(val, line)))
            elif kind == "raw":
                cmds[-1].append(("lit", val[1:-1]))
            elif kind == "num":
                cmds[-1].append(("lit", float(val) if "." in val else int(val)))
            else:
                cmds[-1].append((kind, val))
            i += 1
        if not cmds[-1]:
            raise TemplateError(f"template: :{line}: missing value for command")
        return Pipe(decl, assign, cmds)


def _go_unquote(s: str, line: int) -> str:
    try:
        return json.loads(s)
    except ValueError:
        body = s[1:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f",
                                            "v": "\v", "\\": "\\", '"': '"', "'": "'"}.get(m.group(1), m.group(1)),
                      body)


def parse(text: str) -> list[Node]:
    try:
        return _Parser(text).parse()
    except TemplateError:
        raise
    except (IndexError, ValueError, RecursionError) as e:  # defensive: malformed input is a template error
        raise TemplateError(f"template: cannot parse: {type(e).__name__}: {e}") from None


def _fields_used(nodes: list[Node], top: bool = True) -> set[str]:
    """Top-level fields a template reads outside range/with (where the dot is the data itself)."""
    out: set[str] = set()

    def pipe_fields(p: Pipe, dot_is_top: bool) -> None:
        for cmd in p.cmds:
            for kind, val in cmd:
                if kind == "field" and dot_is_top and val != ".":
                    out.add(val.split(".")[1])
                elif kind == "var" and val.startswith("$.") and len(val) > 2:
                    out.add(val.split(".")[1])
                elif kind == "pipe":
                    pipe_fields(val, dot_is_top)

    def walk(ns: list[Node], dot_is_top: bool) -> None:
        for n in ns:
            if isinstance(n, Action):
                pipe_fields(n.pipe, dot_is_top)
            elif isinstance(n, If):
                for cond, body in n.branches:
                    pipe_fields(cond, dot_is_top)
                    walk(body, dot_is_top)
                walk(n.otherwise, dot_is_top)
            elif isinstance(n, (Range, With)):
                pipe_fields(n.pipe, dot_is_top)
                walk(n.body, False)
                walk(n.otherwise, dot_is_top)
    walk(nodes, top)
    return out


def check_ollama_template(text: str) -> list[Node]:
    """Parse a template as Ollama would; refuse fields Ollama never passes. Returns the tree."""
    nodes = parse(text)
    unknown = _fields_used(nodes) - TOP_FIELDS
    if unknown:
        raise TemplateError(f"template uses {', '.join('.' + f for f in sorted(unknown))}, which Ollama does not "
                            f"provide (it provides {', '.join('.' + f for f in sorted(TOP_FIELDS))})")
    return nodes


# -- rendering -----------------------------------------------------------------------------------

def _truth(v: Any) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


def _field(v: Any, name: str) -> Any:
    if isinstance(v, dict):
        return v.get(name)
    return getattr(v, name, None)


class _Scope:
    def __init__(self, top: Any):
        self.vars: list[dict[str, Any]] = [{"$": top}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise TemplateError(f'template: undefined variable "{name}"')

    def set(self, name: str, value: Any, declare: bool) -> None:
        if declare:
            self.vars[-1][name] = value
            return
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f'template: undefined variable "{name}"')


def _go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _call(name: str, args: list) -> Any:
    if name == "eq":
        return any(args[0] == a for a in args[1:])
    if name == "ne":
        return args[0] != args[1]
    if name == "lt":
        return args[0] < args[1]
    if name == "le":
        return args[0] <= args[1]
    if name == "gt":
        return args[0] > args[1]
    if name == "ge":
        return args[0] >= args[1]
    if name == "and":
        for a in args:
            if not _truth(a):
                return a
        return args[-1]
    if name == "or":
        for a in args:
            if _truth(a):
                return a
        return args[-1]
    if name == "not":
        return not _truth(args[0])
    if name == "len":
        return len(args[0] or [])
    if name == "index":
        v = args[0]
        for i in args[1:]:
            v = v[i]
        return v
    if name == "slice":
        v = args[0]
        if len(args) == 1:
            return v
        return v[args[1]:args[2]] if len(args) > 2 else v[args[1]:]
    if name == "print":
        return "".join(_go_str(a) for a in args)
    if name == "printf":
        return args[0] % tuple(args[1:]) if len(args) > 1 else args[0]
    if name == "println":
        return " ".join(_go_str(a) for a in args) + "\n"
    if name == "json":
        return json.dumps(args[0], separators=(",", ":"))
    if name in ("currentDate", "yesterdayDate"):   # Ollama's: time.Now() formatted as 2006-01-02
        import datetime
        today = TODAY() if TODAY is not None else datetime.date.today()
        return (today - datetime.timedelta(days=1 if name == "yesterdayDate" else 0)).isoformat()
    raise TemplateError(f'template: function "{name}" is not supported by this renderer')


class _Renderer:
    def __init__(self, data: Any):
        self.scope = _Scope(data)
        self.out: list[str] = []

    def operand(self, kind: str, val: Any, dot: Any) -> Any:
        if kind == "lit":
            return val
        if kind == "field":
            v = dot
            for part in val.split(".")[1:]:
                v = _field(v, part)
            return v
        if kind == "var":
            parts = val.split(".")
            v = self.scope.get(parts[0])
            for part in parts[1:]:
                v = _field(v, part)
            return v
        if kind == "pipe":
            return self.pipe(val, dot)
        if kind == "func":   # a function as an argument is called with none (slice currentDate 0 4)
            return _call(val, [])
        raise TemplateError(f"template: cannot evaluate {val!r}")

    def pipe(self, p: Pipe, dot: Any) -> Any:
        value: Any = None
        piped = False
        for cmd in p.cmds:
            if cmd[0][0] == "func":
                args = [self.operand(k, v, dot) for k, v in cmd[1:]]
                if piped:
                    args.append(value)
                value = _call(cmd[0][1], args)
            else:
                if len(cmd) > 1:
                    raise TemplateError("template: can't give argument to non-function")
                value = self.operand(cmd[0][0], cmd[0][1], dot)
            piped = True
        return value

    def run(self, nodes: list[Node], dot: Any) -> None:
        for n in nodes:
            if isinstance(n, Text):
                self.out.append(n.text)
            elif isinstance(n, Action):
                v = self.pipe(n.pipe, dot)
                if n.pipe.decl:
                    self.scope.set(n.pipe.decl[0], v, not n.pipe.assign)
                else:
                    self.out.append(_go_str(v))
            elif isinstance(n, If):
                for cond, body in n.branches:
                    if _truth(self.pipe(cond, dot)):
                        self.run(body, dot)
                        break
                else:
                    self.run(n.otherwise, dot)
            elif isinstance(n, With):
                v = self.pipe(n.pipe, dot)
                self.run(n.body, v) if _truth(v) else self.run(n.otherwise, dot)
            elif isinstance(n, Range):
                seq = self.pipe(n.pipe, dot) or []
                if not seq:
                    self.run(n.otherwise, dot)
                for i, item in enumerate(seq):
                    self.scope.vars.append({})
                    if len(n.pipe.decl) == 2:
                        self.scope.set(n.pipe.decl[0], i, True)
                        self.scope.set(n.pipe.decl[1], item, True)
                    elif n.pipe.decl:
                        self.scope.set(n.pipe.decl[0], item, True)
                    try:
                        self.run(n.body, item)
                    except _LoopJump as jump:
                        if isinstance(jump.node, Break):
                            break
                    finally:
                        self.scope.vars.pop()
            elif isinstance(n, (Break, Continue)):
                raise _LoopJump(n)


def render(template: str | list[Node], data: Any) -> str:
    """Render a template (text or parsed tree) with ``data`` (dicts for Go structs)."""
    nodes = parse(template) if isinstance(template, str) else template
    r = _Renderer(data)
    try:
        r.run(nodes, data)
    except TemplateError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, RecursionError) as e:
        # what Go reports at execution: wrong argument counts or types, indexes out of range
        raise TemplateError(f"template: error executing: {type(e).__name__}: {e}") from None
    return "".join(r.out)

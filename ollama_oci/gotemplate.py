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
from .gojson import GoMap, dumps

__all__ = ["TemplateError", "parse", "render", "check_ollama_template", "unknown_fields", "ollama_parse", "ollama_execute",
           "OLLAMA_FUNCS"]

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
  | (?P<char>'(?:[^'\\\n]|\\[^\n])*')
  | (?P<num>[+-]?(?:\d|\.\d))
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


_OPERAND_END = {"num", "str", "raw", "char", "var", "field", "ident", "rparen"}
_OPERAND_START = {"num", "str", "raw", "char", "var", "field", "ident", "lparen"}


def _lex_action(src: str, line: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, prev = 0, "ws"
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise TemplateError(f"template: :{line}: unexpected {src[pos]!r} in command")
        kind = m.lastgroup
        end = m.end()
        if kind == "num":
            end = _scan_number(src, pos)
            if end < 0:
                raise TemplateError(f'template: :{line}: bad number syntax: "{src[pos:-end]}"')
        if prev in _OPERAND_END and kind in _OPERAND_START and not (prev == "rparen" and kind == "field"):
            # two operands with no space between ("len(.X)", "1.2.3"): Go's parser stops there
            raise TemplateError(f"template: :{line}: unexpected {_go_item((kind, src[pos:end]))} in operand")
        if kind != "ws":
            out.append((kind, src[pos:end]))
        prev = kind
        pos = end
    return out


def _scan_number(src: str, pos: int) -> int:
    """Where Go's lexer (``scanNumber``) ends a number that starts at *pos*; minus the end after one
    more character when a letter or digit follows that no number can hold (Go's bad number syntax)."""
    def run(chars: str) -> None:
        nonlocal pos
        while pos < len(src) and src[pos] in chars:
            pos += 1

    def one(chars: str) -> bool:
        nonlocal pos
        if pos < len(src) and src[pos] in chars:
            pos += 1
            return True
        return False
    one("+-")
    digits = "0123456789_"
    if one("0"):
        if one("xX"):
            digits = "0123456789abcdefABCDEF_"
        elif one("oO"):
            digits = "01234567_"
        elif one("bB"):
            digits = "01_"
    run(digits)
    if one("."):
        run(digits)
    if len(digits) == 11 and one("eE"):
        one("+-")
        run("0123456789_")
    if len(digits) == 23 and one("pP"):
        one("+-")
        run("0123456789_")
    one("i")
    if pos < len(src) and (src[pos].isalnum() or src[pos] == "_"):
        return -(pos + 1)
    return pos


_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"}


def _go_item(tok: tuple[str, str]) -> str:
    """A token as Go's parser names it in an error (``item.String``): keywords in angle brackets,
    other text quoted and cut at ten characters."""
    kind, val = tok
    if kind == "ident" and val in _KEYWORDS:
        return f"<{val}>"
    if len(val) > 10:
        return '"' + val[:10].replace("\\", "\\\\").replace('"', '\\"') + '"...'
    return '"' + val.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_number(text: str, line: int) -> Any:
    """A number as Go's template parser reads it (strconv with base prefixes, underscores, exponents,
    hex floats), with Go's three complaints: ``bad number syntax`` (the lexer's: a letter no number
    has), ``integer overflow`` (integer digits that only a float can hold) and ``illegal number
    syntax`` (strconv refuses it)."""
    t = text.lstrip("+")
    value: Any = None
    try:
        if re.fullmatch(r"-?0[0-7_]+", t):                       # Go's leading-zero octal
            value = int(t.replace("_", ""), 8)
        elif re.fullmatch(r"-?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[1-9][0-9_]*|0)", t):
            value = int(t, 0)
        elif re.fullmatch(r"-?[0-9][0-9_]*", t):
            value = None                                          # "08": neither octal nor decimal
        elif re.fullmatch(r"-?0[xX][0-9a-fA-F_]*\.?[0-9a-fA-F_]*[pP][+-]?[0-9_]+", t):
            value = float.fromhex(t.replace("_", ""))
        elif re.fullmatch(r"-?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?", t):
            value = float(t)
        elif t.endswith("i") and len(t) > 1:                      # an imaginary constant
            body = t[:-1]
            value = complex(0, float(body.replace("_", "")) if re.fullmatch(
                r"-?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?", body)
                else float(_go_number(body, line)))
    except (ValueError, TemplateError):
        value = None
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 64) \
            or value is None and re.fullmatch(r"-?[0-9]+(?:_[0-9]+)*", t):
        raise TemplateError(f'template: :{line}: integer overflow: "{text}"')
    if value is not None:
        return value
    raise TemplateError(f'template: :{line}: illegal number syntax: "{text}"')


def _go_char(text: str, line: int) -> int:
    """A character constant ('a', '\\n', '\\x41', '\\u00e9') is its code point, as in Go."""
    body = text[1:-1]
    if len(body) == 1:
        return ord(body)
    m = re.fullmatch(r"\\(?:([abfnrtv\\'])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3}))", body)
    if not m:
        raise TemplateError(f"template: :{line}: malformed character constant: {text}")
    if m.group(1):
        return ord({"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
                   .get(m.group(1), m.group(1)))
    return int(next(g for g in m.groups()[1:] if g), 8 if m.group(5) else 16)


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
class TemplateCall(Node):
    """``{{ template "name" pipeline }}`` (and the call a ``{{ block }}`` makes): runs the body that
    ``{{ define "name" }}`` gave, with the pipeline's value as the dot and ``$`` (Go allows it to
    call itself: derived templates write nested JSON values so). ``defs`` is the parse's table of
    definitions, filled by the end of the parse."""
    name: str
    pipe: Optional[Pipe]
    defs: dict = field(default_factory=dict, repr=False)


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
        self.vars = ["$"]   # variables in scope, as Go's parser keeps them (popped at a control's end)
        self.defs: dict[str, list[Node]] = {}   # {{ define }} bodies by name

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
            at = start + (1 if trim_left else 0)   # "{{/*" or "{{- /*": Go's only comment forms
            if text.startswith("/*", at):
                end = text.find("*/", at + 2)
                if end < 0:
                    raise TemplateError(f"template: :{line}: unclosed comment")
                if text.startswith("}}", end + 2):
                    trim_right, j = False, end + 2
                elif text[end + 2:end + 3] in (" ", "\t", "\r", "\n") and text.startswith("-}}", end + 3):
                    trim_right, j = True, end + 4
                else:
                    raise TemplateError(f"template: :{line}: comment ends before closing delimiter")
                line += text[i:j].count("\n")
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
                        if j >= len(text) or text[j] == "\n":
                            raise TemplateError(f"template: :{line}: unterminated quoted string")
                        j += 1
                    if j >= len(text):
                        raise TemplateError(f"template: :{line}: unterminated quoted string")
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
                if word == "end" and len(toks) > 1:
                    raise TemplateError(f"template: :{line}: unexpected {_go_item(toks[1])} in end")
                return nodes, (word, toks, line)
            if word in ("break", "continue"):
                if self.range_depth <= 0:
                    raise TemplateError(f"template: :{line}: {{{{{word}}}}} outside {{{{range}}}}")
                if len(toks) > 1:
                    raise TemplateError(f"template: :{line}: unexpected {toks[1][1]!r} in {{{{{word}}}}}")
                nodes.append(Break() if word == "break" else Continue())
            elif word == "if":
                saved = len(self.vars)
                nodes.append(self._if(toks[1:], line))
                del self.vars[saved:]
            elif word in ("range", "with"):
                nodes.append(self._control(word, toks[1:], line))
            elif word in ("define", "block", "template"):
                if word == "define" and stops:
                    # Go takes a definition only at the top level, outside any action's body
                    raise TemplateError(f"template: :{line}: unexpected <define> in command")
                if len(toks) < 2 or toks[1][0] not in ("str", "raw"):
                    got = toks[1][1] if len(toks) > 1 else "}}"
                    raise TemplateError(f'template: :{line}: unexpected "{got}" in {word} clause')
                if word == "define" and len(toks) > 2:
                    raise TemplateError(f'template: :{line}: unexpected "{toks[2][1]}" in define clause')
                if word == "template" and len(toks) == 2:
                    # Go parses it; Ollama's template.Parse refuses it (template.Identifiers)
                    raise TemplateError("undefined template specified")
                name = _go_unquote(toks[1][1], line) if toks[1][0] == "str" else toks[1][1][1:-1]
                call_pipe = self._pipe(toks[2:], line, context=word) if len(toks) > 2 else None
                if word != "template":
                    outer, self.vars = self.vars, ["$"]   # a template body has its own variables
                    depth, self.range_depth = self.range_depth, 0
                    try:
                        body, stop = self._list(("end",))
                    finally:
                        self.vars, self.range_depth = outer, depth
                    if stop is None:
                        raise TemplateError(f"template: :{line}: unexpected EOF")
                    self.defs[name] = body
                if word != "define":
                    nodes.append(TemplateCall(name, call_pipe, self.defs))
            else:
                nodes.append(Action(self._pipe(toks, line, allow_decl=True)))
        return nodes, None

    def _control(self, word: str, toks: list, line: int) -> Node:
        """``range`` or ``with`` up to its ``{{end}}``; ``{{else with}}`` (Go 1.23+) nests a ``with`` that
        shares the ``{{end}}``. Variables declared here are gone after it, as in Go."""
        saved = len(self.vars)
        pipe = self._pipe(toks, line, allow_decl=True, context=word)
        if word == "range":
            self.range_depth += 1
        try:
            body, stop = self._list(("end", "else"))
        finally:
            if word == "range":
                self.range_depth -= 1
        if stop is None:
            raise TemplateError(f"template: :{line}: unexpected EOF")
        other: list[Node] = []
        if stop[0] == "else":
            rest = stop[1][1:]
            if word == "with" and rest and rest[0] == ("ident", "with"):
                other = [self._control("with", rest[1:], stop[2])]
            elif rest:
                raise TemplateError(f"template: :{stop[2]}: unexpected {_go_item(rest[0])} in else")
            else:
                other, stop2 = self._list(("end",))
                if stop2 is None:
                    raise TemplateError(f"template: :{line}: unexpected EOF")
        del self.vars[saved:]
        return Range(pipe, body, other) if word == "range" else With(pipe, body, other)

    def _if(self, toks: list, line: int) -> If:
        branches = []
        cond = self._pipe(toks, line, allow_decl=True, context="if")
        while True:
            body, stop = self._list(("end", "else"))
            if stop is None:
                raise TemplateError(f"template: :{line}: unexpected EOF")
            branches.append((cond, body))
            if stop[0] == "end":
                return If(branches)
            rest = stop[1][1:]
            if rest and rest[0] == ("ident", "if"):
                cond = self._pipe(rest[1:], stop[2], allow_decl=True, context="if")
                continue
            if rest:
                raise TemplateError(f"template: :{stop[2]}: unexpected {_go_item(rest[0])} in else")
            other, stop2 = self._list(("end",))
            if stop2 is None:
                raise TemplateError(f"template: :{line}: unexpected EOF")
            return If(branches, other)

    def _use(self, name: str, line: int) -> None:
        if name.split(".")[0] not in self.vars:
            raise TemplateError(f'template: :{line}: undefined variable "{name.split(".")[0]}"')

    def _pipe(self, toks: list, line: int, allow_decl: bool = True, context: str = "command") -> Pipe:
        decl: list[str] = []
        assign = False
        # "$a := ...", "$a = ..." and, in a range only, "$a, $b := ...": as Go's Tree.pipeline reads
        # them, a variable is in scope from its declaration on (an assignment declares it too, for the
        # parser; executing one whose variable was never declared fails)
        while allow_decl and len(toks) >= 2 and toks[0][0] == "var" and "." not in toks[0][1]:
            nxt = toks[1][0]
            if nxt in ("declare", "assign"):
                assign = nxt == "assign"
                decl.append(toks[0][1])
                self.vars.append(toks[0][1])
                toks = toks[2:]
                break
            if nxt != "comma":
                break
            decl.append(toks[0][1])
            self.vars.append(toks[0][1])
            toks = toks[2:]
            if context == "range" and len(decl) < 2:
                if not toks or toks[0][0] in ("var", "rparen"):
                    continue
                raise TemplateError(f"template: :{line}: range can only initialize variables")
            raise TemplateError(f"template: :{line}: too many declarations in {context}")
        if not toks:
            raise TemplateError(f"template: :{line}: missing value for {context}")
        cmds: list[list[tuple]] = [[]]
        i = 0
        while i < len(toks):
            kind, val = toks[i]
            if kind == "pipe":
                if not cmds[-1]:     # "{{ | x }}", "{{ x | | y }}"
                    raise TemplateError(f'template: :{line}: unexpected "|" in {context}')
                cmds.append([])
            elif kind == "lparen":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    depth += {"lparen": 1, "rparen": -1}.get(toks[j][0], 0)
                    j += 1
                if depth:
                    raise TemplateError(f"template: :{line}: unclosed left paren")
                cmds[-1].append(("pipe", self._pipe(toks[i + 1:j - 1], line, context="parenthesized pipeline")))
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
                cmds[-1].append(("lit", _go_number(val, line)))
            elif kind == "char":
                cmds[-1].append(("lit", _go_char(val, line)))
            else:
                if kind == "var":
                    self._use(val, line)
                cmds[-1].append((kind, val))
            i += 1
        if not cmds[-1]:
            if len(cmds) == 1:
                raise TemplateError(f"template: :{line}: missing value for {context}")
            cmds.pop()               # a trailing "|" ends the pipeline, as Go's parser reads it
        for n, cmd in enumerate(cmds[1:], start=2):   # only the first stage may start with a constant
            if cmd[0][0] == "lit" or cmd[0] == ("field", "."):
                raise TemplateError(f"template: :{line}: non executable command in pipeline stage {n}")
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
            if isinstance(n, TemplateCall):
                if n.pipe is not None:
                    pipe_fields(n.pipe, dot_is_top)
            elif isinstance(n, Action):
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
    """Parse a template as Ollama's ``template.Parse`` does (Go's parser with Ollama's functions, then
    its walk that refuses ``{{ template "x" }}`` without a pipeline): accept what it accepts, refuse
    what it refuses. Returns the tree. Fields are not checked (Go's parser does not know the data);
    :func:`unknown_fields` names those Ollama never passes."""
    return parse(text)


def unknown_fields(nodes: list[Node]) -> set[str]:
    """Top-level fields a template reads that Ollama never passes (they render as empty)."""
    return _fields_used(nodes) - TOP_FIELDS


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
    methods = getattr(type(v), "GO_METHODS", None)
    if methods and name in methods:         # a niladic method of a Go type (ToolPropertiesMap.ToMap)
        return getattr(v, methods[name])()
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
        raise TemplateError(f"template: undefined variable: {name}")

    def set(self, name: str, value: Any, declare: bool) -> None:
        if declare:
            self.vars[-1][name] = value
            return
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"template: undefined variable: {name}")


def _go_float(x: float) -> str:
    """``fmt``'s %v of a float64 (``strconv.FormatFloat(x, 'g', -1, 64)``): the shortest digits, in %e
    form when the decimal exponent is below -4 or at least 6 (1e+06, 1500, 1.5e-05)."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    from decimal import Decimal
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    ds = list(digits)
    while len(ds) > 1 and ds[-1] == 0:
        ds.pop()
        exp += 1
    nd, dp = len(ds), len(ds) + exp
    e = dp - 1
    neg = "-" if sign else ""
    text = "".join(map(str, ds))
    if e < -4 or e >= 6:
        mant = text[0] + ("." + text[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{text}"
    if dp >= nd:
        return f"{neg}{text}{'0' * (dp - nd)}"
    return f"{neg}{text[:dp]}.{text[dp:]}"


class PropertyType(list):
    """Ollama's ``api.PropertyType`` (a tool property's ``type``: one name or several): printed as
    its ``String`` method prints it (the one name, or ``[a b]``) and written by ``json`` as its
    ``MarshalJSON`` writes it (a string for one name)."""

    def go_string(self) -> str:
        return "" if not self else self[0] if len(self) == 1 else "[" + " ".join(self) + "]"

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else list(self)


class GoJSONMap(GoMap):
    """A Go map whose ``String`` method writes its JSON (Ollama's ``templateArgs`` and
    ``templateProperties``): ``{{ .Function.Arguments }}`` prints ``{"city":"Paris"}``."""

    #: what ``printf "%T"`` names it: Ollama's named map types (the properties' is set by their builder)
    go_type = "template.templateArgs"

    def go_string(self) -> str:
        return dumps(self, newline=False).decode("utf-8")


class ToolPropertiesMap(GoMap):
    """Ollama's ``*api.ToolPropertiesMap`` (a property's own properties, kept in insertion order): a
    template reaches them as a map through its ``ToMap`` method (ranged in key order)."""

    GO_METHODS = {"ToMap": "to_map", "Len": "__len__"}

    def to_map(self) -> GoMap:
        return GoMap(self)


class GoJSONStruct(dict):
    """A Go struct in template data: fields by Go name (``.Function.Name``), written by ``json`` in
    its JSON form (JSON field names, empty ones left out as its tags say), and printed by its
    ``String`` method where it has one (Ollama's ``templateTool``: the JSON) or as Go prints a
    struct (``{v1 v2 ...}``)."""

    def __init__(self, fields: dict, json_form: Any, stringer: bool = False, go_type: str = ""):
        super().__init__(fields)
        self.json_form = json_form
        self.stringer = stringer
        self.go_type = go_type       # what printf "%T" names it

    def go_json(self) -> Any:
        return self.json_form

    def go_string(self) -> str:
        if self.stringer:
            return dumps(self.json_form, newline=False).decode("utf-8")
        return "{" + " ".join(_go_str(v, False) for v in self.values()) + "}"


class GoNilSlice(list):
    """A nil Go slice: empty, printed as ``[]``, written by ``json`` as ``null``."""

    def go_json(self) -> Any:
        return None


class GoJSONList(list):
    """A Go slice whose ``String`` method writes its JSON (Ollama's ``templateTools``)."""

    def go_string(self) -> str:
        return dumps(list(self), newline=False).decode("utf-8")


def _go_str(v: Any, top: bool = True) -> str:
    """A value as Go's fmt prints it in a template (``%v``): slices as ``[a b]``, maps as
    ``map[k:v]`` with sorted keys, nil as ``<no value>`` at the top and ``<nil>`` inside."""
    as_string = getattr(v, "go_string", None)
    if as_string is not None:
        return as_string()
    if v is None:
        return "<no value>" if top else "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_str(x, False) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_go_str(k, False)}:{_go_str(x, False)}"
                                 for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))) + "]"
    return str(v)


def _go_type(v: Any) -> str:
    """The Go type a value of Ollama's template data has (``printf "%T"``): JSON-decoded values are
    ``map[string]interface {}``, ``[]interface {}``, ``float64``, ``string``, ``bool``."""
    if v is None:
        return "<nil>"
    if isinstance(v, GoJSONMap) or (isinstance(v, GoJSONStruct) and v.go_type):
        return v.go_type
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, PropertyType):
        return "api.PropertyType"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    return type(v).__name__


def go_lit(s: str) -> str:
    """Literal text for a Go template: a "{{" in it must not start an action, and a "{" at its end
    must not run into the action that may follow ("{{{" is Go's "unexpected '{' in command")."""
    if "{" not in s:
        return s
    out = '{{ "{{" }}'.join(s.split("{{"))
    return out[:-1] + '{{ "{" }}' if out.endswith("{") and not out.endswith('{{ "{{" }}') else out


def go_quote(s: str) -> str:
    r"""Go's ``strconv.Quote`` (``printf "%q"``): printable characters as they are (Go's
    ``unicode.IsPrint``), ``\"`` and ``\\``, C escapes, ``\xNN`` for other ASCII controls and
    ``\uNNNN`` / ``\UNNNNNNNN`` for other non-printable characters."""
    from .modelfile import is_print
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
            continue
        if is_print(ch):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif 0xDC80 <= cp <= 0xDCFF:    # a byte that is not UTF-8 (a string sliced mid-character)
            out.append(f"\\x{cp - 0xDC00:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _printf(fmt: str, args: list) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use: %s %v %d %q %T %%."""
    out, i, k = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%" or i + 1 >= len(fmt):
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if k >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[k]
        k += 1
        if verb == "T":
            out.append(_go_type(a))
        elif verb == "q" and isinstance(a, str):
            out.append(go_quote(a))
        elif verb == "d" and isinstance(a, (int, float)) and not isinstance(a, bool) and a == int(a):
            out.append(str(int(a)))
        else:
            out.append(_go_str(a, False))      # printf writes nil as <nil>, an action as <no value>
    return "".join(out)


def _go_len(v: Any) -> int:
    """Go's ``len`` builtin in a template: bytes of a string (UTF-8, as Go strings are), items of a
    slice or map; an error for anything else."""
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogateescape"))
    if v is None or isinstance(v, (list, tuple, dict)):
        return len(v or ())      # (a dict stands for a map here; Ollama's messages, structs, refuse len)
    raise TemplateError(f"template: error calling len: len of type {_go_type(v)}")


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
        return _go_len(args[0])
    if name == "index":
        v = args[0]
        for i in args[1:]:
            if isinstance(v, (list, tuple, str)):
                n = _go_len(v)
                if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
                    raise TemplateError(f"template: error calling index: index out of range: {i}")
                v = v.encode("utf-8", "surrogateescape")[i] if isinstance(v, str) else v[i]
            elif isinstance(v, dict):
                v = v.get(i)
            else:
                raise TemplateError(f"template: error calling index: can't index item of type {_go_type(v)}")
        return v
    if name == "slice":
        v = args[0]
        if len(args) == 1:
            return v
        if not isinstance(v, (list, tuple, str)):
            raise TemplateError(f"template: error calling slice: can't slice item of type {_go_type(v)}")
        n = _go_len(v)
        i = args[1]
        j = args[2] if len(args) > 2 else n
        if i > j and 0 <= j <= n:    # Go: indexes within the length, in order (no Python wrap-around)
            raise TemplateError(f"template: error calling slice: invalid slice index: {i} > {j}")
        if not 0 <= i <= j <= n:
            raise TemplateError(f"template: error calling slice: index out of range: {j if j > n or j < 0 else i}")
        if isinstance(v, str):       # Go strings are bytes: a slice may cut a character
            return v.encode("utf-8", "surrogateescape")[i:j].decode("utf-8", "surrogateescape")
        return v[i:j]
    if name == "print":
        # fmt.Sprint: a space between two operands when neither is a string
        out = []
        for i, a in enumerate(args):
            if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
                out.append(" ")
            out.append(_go_str(a, False))
        return "".join(out)
    if name == "printf":
        return _printf(args[0], args[1:])
    if name == "println":
        return " ".join(_go_str(a, False) for a in args) + "\n"
    if name == "json":
        from .gojson import dumps
        return dumps(args[0], newline=False).decode("utf-8")
    if name in ("currentDate", "yesterdayDate"):   # Ollama's: time.Now() formatted as 2006-01-02
        import datetime
        today = TODAY() if TODAY is not None else datetime.date.today()
        return (today - datetime.timedelta(days=1 if name == "yesterdayDate" else 0)).isoformat()
    raise TemplateError(f'template: function "{name}" is not supported by this renderer')


class _Renderer:
    def __init__(self, data: Any):
        self.scope = _Scope(data)
        self.out: list[str] = []
        self.depth = 0

    def operand(self, kind: str, val: Any, dot: Any) -> Any:
        if kind == "lit":
            return val
        if kind == "field":
            v = dot
            for part in (val.split(".")[1:] if val != "." else []):
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
                # a map ranges in key order, the key as the index (Go's range over a map)
                pairs = sorted(seq.items()) if isinstance(seq, dict) else enumerate(seq)
                for i, item in pairs:
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
            elif isinstance(n, TemplateCall):
                body = n.defs.get(n.name)
                if body is None:
                    raise TemplateError(f'template: executing: template "{n.name}" not defined')
                v = self.pipe(n.pipe, dot) if n.pipe is not None else None
                if self.depth >= _MAX_TEMPLATE_DEPTH:
                    raise TemplateError(f"template: exceeded maximum template depth ({_MAX_TEMPLATE_DEPTH})")
                outer, self.scope.vars = self.scope.vars, [{"$": v}]
                self.depth += 1
                try:
                    self.run(body, v)
                finally:
                    self.scope.vars = outer
                    self.depth -= 1
            elif isinstance(n, (Break, Continue)):
                raise _LoopJump(n)


#: how deep {{ template }} calls may nest here (Go allows 100000; Python's stack would not)
_MAX_TEMPLATE_DEPTH = 60


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


# -- Ollama's Template.Execute ------------------------------------------------------------------

def identifiers(nodes: list[Node]) -> set[str]:
    """Ollama's ``Template.Vars``: every field and variable name in the template, lower-cased (from
    actions and the pipelines of if/range/with, as ``template.Identifiers`` walks them)."""
    out: set[str] = set()

    def pipe(p: Pipe) -> None:
        for v in p.decl:
            out.add(v.lower())
        for cmd in p.cmds:
            for kind, val in cmd:
                if kind == "field":
                    out.update(x.lower() for x in val.split(".")[1:] if x)
                elif kind == "var":
                    out.update(x.lower() for x in val.split("."))
                elif kind == "pipe":
                    pipe(val)

    def walk(ns: list[Node]) -> None:
        for n in ns:
            if isinstance(n, TemplateCall):
                if n.pipe is not None:
                    pipe(n.pipe)
            elif isinstance(n, Action):
                pipe(n.pipe)
            elif isinstance(n, If):
                for cond, body in n.branches:
                    pipe(cond)
                    walk(body)
                walk(n.otherwise)
            elif isinstance(n, (Range, With)):
                pipe(n.pipe)
                walk(n.body)
                walk(n.otherwise)
    walk(nodes)
    return out


_RESPONSE = Action(Pipe([], False, [[("field", ".Response")]]))


def ollama_parse(text: str) -> list[Node]:
    """``template.Parse`` of Ollama: the Go parse, then ``{{ .Response }}`` appended to a template that
    names neither ``.Messages`` nor ``.Response``."""
    nodes = check_ollama_template(text)
    ids = identifiers(nodes)
    if "messages" not in ids and "response" not in ids:
        nodes = nodes + [_RESPONSE]
    return nodes


def _collate(messages: list[dict]) -> tuple[str, list[dict]]:
    """Ollama's ``collate``: the system messages joined, and consecutive messages of one role (but
    tool) merged with a blank line between."""
    system, out = [], []
    for m in messages:
        if m.get("Role") == "system":
            system.append(m.get("Content", ""))
        if out and out[-1]["Role"] == m.get("Role") and m.get("Role") != "tool":
            out[-1] = dict(out[-1], Content=out[-1].get("Content", "") + "\n\n" + m.get("Content", ""))
        else:
            out.append({**_MESSAGE_FIELDS, **m})   # every field of Ollama's templateMessage is there
    return "\n\n".join(system), out


#: the fields of Ollama's ``templateMessage``, as they are when a message leaves them empty
_MESSAGE_FIELDS = {"Role": "", "Content": "", "Thinking": "", "Images": None, "ToolCalls": None, "ToolName": "",
                   "ToolCallID": ""}


def _cut_after_response(nodes: list[Node]) -> list[Node]:
    """Ollama's last legacy pass renders the template up to its first ``{{ .Response }}`` (kept)."""
    cut = False

    def pipe(p: Pipe) -> Optional[Pipe]:
        nonlocal cut
        cmds = []
        for cmd in p.cmds:
            args = []
            for kind, val in cmd:
                if cut:
                    continue
                if kind == "field" and "Response" in val.split("."):
                    cut = True
                elif kind == "pipe":
                    sub = pipe(val)
                    if sub is None:
                        continue
                    val = sub
                args.append((kind, val))
            if not args:
                return None
            cmds.append(args)
        return Pipe(p.decl, p.assign, cmds)

    def walk(ns: list[Node]) -> list[Node]:
        out = []
        for n in ns:
            if cut:
                break
            if isinstance(n, Action):
                p = pipe(n.pipe)
                if p is not None:
                    out.append(Action(p))
            elif isinstance(n, If):
                out.append(If([(c, walk(b)) for c, b in n.branches], walk(n.otherwise)))
            elif isinstance(n, Range):
                out.append(Range(n.pipe, walk(n.body), walk(n.otherwise)))
            elif isinstance(n, With):
                out.append(With(n.pipe, walk(n.body), walk(n.otherwise)))
            elif isinstance(n, TemplateCall):
                # Ollama runs the cut tree as a new template: the definitions are not there
                out.append(TemplateCall(n.name, n.pipe, {}))
            else:
                out.append(n)
        return out
    return walk(nodes)


def ollama_execute(template: str | list[Node], messages: list[dict], *, tools: Optional[list] = None,
                   prompt: str = "", suffix: str = "", think: bool = False, think_level: str = "",
                   is_think_set: bool = False) -> str:
    """What Ollama's ``Template.Execute`` writes for a chat (messages as dicts with ``Role``,
    ``Content`` and the other fields Ollama passes): a ``.Messages`` template gets the collated
    conversation, any other is run once per exchange (``.System``, ``.Prompt``, ``.Response``) and
    the last exchange is cut after ``{{ .Response }}``."""
    nodes = ollama_parse(template) if isinstance(template, str) else template
    think_vals = {"Think": think, "ThinkLevel": think_level, "IsThinkSet": is_think_set}
    if prompt and suffix:
        return render(nodes, {"Prompt": prompt, "Suffix": suffix, "Response": "", **think_vals})
    system, msgs = _collate(messages)
    if "messages" in identifiers(nodes):
        return render(nodes, {"System": system, "Messages": msgs, "Tools": tools or None, "Response": "",
                              **think_vals})
    out = []
    system, prompt, response = "", "", ""

    def execute() -> None:
        nonlocal system, prompt, response
        out.append(render(nodes, {"System": system, "Prompt": prompt, "Response": response, **think_vals}))
        system = prompt = response = ""
    for m in msgs:
        role = m.get("Role")
        if role == "system":
            if prompt or response:
                execute()
            system = m.get("Content", "")
        elif role == "user":
            if response:
                execute()
            prompt = m.get("Content", "")
        elif role == "assistant":
            response = m.get("Content", "")
    out.append(render(_cut_after_response(nodes), {"System": system, "Prompt": prompt, "Response": response,
                                                   **think_vals}))
    return "".join(out)

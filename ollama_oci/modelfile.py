"""Ollama's Modelfile grammar: a port of ollama's ``parser/parser.go`` state machine.

Behaviour kept on purpose, because ollama has it too (docs/ollama-format.md
section 6): instruction names are case-insensitive, PARAMETER names and MESSAGE
roles are not; a value is the rest of the line, trimmed, then unquoted
(triple or single double-quotes, both may span lines, no escapes); characters Go
does not consider printable are dropped silently outside quoting state; a
missing ``FROM`` is an error.  Errors carry ollama's own wording.
"""

from __future__ import annotations

import bisect
import codecs
from dataclasses import dataclass, field

from . import go_printable
from .errors import ModelfileError

__all__ = ["Command", "Modelfile", "is_print", "parse_modelfile", "quote_value"]

COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
            "parameter", "message", "requires")
_ERR_COMMAND = ('command must be one of "from", "license", "template", "system", "adapter", "draft", '
                '"renderer", "parser", "parameter", "message", or "requires"')
_ERR_ROLE = 'message role must be one of "system", "user", or "assistant"'

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)


@dataclass(frozen=True)
class Command:
    """One instruction. ``name`` is ``model`` for FROM, the parameter name for PARAMETER."""

    name: str
    args: str
    line: int = field(default=0, compare=False)   #: where the instruction starts (0: not from a file)


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def __iter__(self):
        return iter(self.commands)

    def to_text(self) -> str:
        """Serialize back (ollama's ``Modelfile.String``)."""
        lines = []
        for c in self.commands:
            if c.name == "model":
                lines.append(f"FROM {c.args}")
            elif c.name == "message":
                role, _, msg = c.args.partition(": ")
                lines.append(f"MESSAGE {role} {quote_value(msg)}")
            elif c.name in ("license", "template", "system", "adapter", "renderer", "parser",
                            "requires", "draft"):
                lines.append(f"{c.name.upper()} {quote_value(c.args)}")
            else:
                lines.append(f"PARAMETER {c.name} {quote_value(c.args)}")
        return "\n".join(lines) + ("\n" if lines else "")


def quote_value(s: str) -> str:
    """ollama's ``quote``: triple quotes if the value needs quoting and contains a double quote."""
    if "\n" in s or s.startswith(" ") or s.endswith(" "):
        if '"' in s:
            return f'"""{s}"""'
        return f'"{s}"'
    return s


_PRINT_STARTS = go_printable.RANGES[0::2]
_PRINT_ENDS = go_printable.RANGES[1::2]


def is_print(c: str) -> bool:
    """Go's ``strconv.IsPrint`` (letters, marks, numbers, punctuation, symbols, ASCII space) by Go's
    own Unicode tables (15.0.0), not this Python's: characters newer than the interpreter's Unicode
    (🩵, 🛜 on Python 3.11) are kept, as Ollama keeps them."""
    cp = ord(c)
    if cp < 0x7F:
        return cp >= 0x20
    i = bisect.bisect_right(_PRINT_STARTS, cp) - 1
    return i >= 0 and cp <= _PRINT_ENDS[i]


def _alpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _space(c: str) -> bool:
    return c == " " or c == "\t"


def _newline(c: str) -> bool:
    return c == "\r" or c == "\n"


def _unquote(s: str) -> tuple[str, bool]:
    if s[:3] == '"""':
        if len(s) >= 6 and s[-3:] == '"""':
            return s[3:-3], True
        return "", False
    if s[:1] == '"':
        if len(s) >= 2 and s[-1] == '"':
            return s[1:-1], True
        return "", False
    return s, True


def _decode(data: bytes) -> str:
    # unicode.BOMOverride(UTF8): honour a UTF-8 or UTF-16 BOM, else UTF-8
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2:].decode("utf-16-le", "replace")
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2:].decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")


def _next_state(c: str, cs: int) -> tuple[int, str | None, str | None]:
    """parseRuneForState: (next state, rune to keep or None, error or None)."""
    if cs == _NIL:
        if c == "#":
            return _COMMENT, None, None
        if _space(c) or _newline(c):
            return _NIL, None, None
        return _NAME, c, None
    if cs == _NAME:
        if _alpha(c):
            return _NAME, c, None
        if _space(c):
            return _VALUE, None, None
        return _NIL, None, _ERR_COMMAND
    if cs == _VALUE:
        if _newline(c) or _space(c):
            return _NIL, c, None
        return _VALUE, c, None
    if cs == _PARAMETER:
        if _alpha(c) or ("0" <= c <= "9") or c == "_":
            return _PARAMETER, c, None
        if _space(c):
            return _VALUE, None, None
        return _NIL, None, "EOF"
    if cs == _MESSAGE:
        if _alpha(c):
            return _MESSAGE, c, None
        if _space(c):
            return _VALUE, None, None
        return _NIL, None, "EOF"
    # comment
    if _newline(c):
        return _NIL, None, None
    return _COMMENT, None, None


def parse_modelfile(source: str | bytes) -> Modelfile:
    """Parse Modelfile text (``bytes`` are decoded with BOM sniffing, as ollama does)."""
    text = _decode(source) if isinstance(source, (bytes, bytearray)) else source
    f = Modelfile()
    name = ""
    curr = _NIL
    line = 1
    start = 1   # the line the current instruction began on
    buf: list[str] = []
    role = ""

    for c in text:
        if _newline(c):
            line += 1
        nxt, r, err = _next_state(c, curr)
        if err == "EOF":
            raise ModelfileError(f"unexpected EOF: {''.join(buf)}", start)
        if err:
            raise ModelfileError(err, line)
        if nxt != curr:
            if curr == _NIL and nxt == _NAME:
                start = line
            if curr == _NAME:
                word = "".join(buf)
                if word.lower() not in COMMANDS:
                    raise ModelfileError(_ERR_COMMAND, line)
                s = word.lower()
                if s == "from":
                    name = "model"
                elif s == "parameter":
                    nxt = _PARAMETER
                elif s == "message":
                    nxt = _MESSAGE
                    name = s
                else:
                    name = s
            elif curr == _PARAMETER:
                name = "".join(buf)
            elif curr == _MESSAGE:
                word = "".join(buf)
                if word not in ("system", "user", "assistant"):
                    raise ModelfileError(_ERR_ROLE, line)
                role = word
            elif curr == _VALUE:
                s, ok = _unquote("".join(buf).strip(_GO_SPACE))
                if not ok or _space(c):
                    buf.append(c)  # the rune is kept as is (even CR/LF/TAB) while a quote is open
                    continue
                if role:
                    s = f"{role}: {s}"
                    role = ""
                f.commands.append(Command(name, s, start))
            buf = []
            curr = nxt
        if r is not None and is_print(r):
            buf.append(r)

    if curr == _VALUE:
        s, ok = _unquote("".join(buf).strip(_GO_SPACE))
        if not ok:
            raise ModelfileError("unexpected EOF", start)
        if role:
            s = f"{role}: {s}"
        f.commands.append(Command(name, s, start))
    elif curr not in (_COMMENT, _NIL):
        raise ModelfileError("unexpected EOF", start)

    if not any(c.name == "model" for c in f.commands):
        raise ModelfileError("no FROM line")
    return f


#: what Go's strings.TrimSpace removes (Unicode White_Space)
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

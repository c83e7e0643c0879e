"""Byte-exact emulation of Go's ``encoding/json`` output.

Everything ollama hashes (config blob, params and messages layers, manifests) is
written by Go's encoder, so matching its digests means matching its bytes:

* no whitespace; object keys in the order given (a Go struct), or sorted for a
  :class:`GoMap` (a Go ``map``);
* strings escaped like Go: ``<``, ``>``, ``&``, U+2028 and U+2029 escaped,
  invalid UTF-8 (lone surrogates here) replaced by U+FFFD, other non-ASCII raw;
* numbers: ``int`` as decimal; ``float`` as Go formats a float64 (shortest
  round-trip digits, no ``.0`` on whole numbers, exponent only outside
  [1e-6, 1e21), exponent without a leading zero: ``1e-7``).

``dumps(obj, newline=True)`` reproduces ``json.NewEncoder(w).Encode(v)`` (one
trailing newline); ``newline=False`` reproduces ``json.Marshal``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["GoMap", "dumps", "format_float", "encode_string"]


class GoMap(dict):
    """A dict that encodes like a Go map: keys sorted by their UTF-8 bytes."""


_HTML = re.compile("[<>&\u2028\u2029]")
_HTML_ESC = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_string(s: str) -> str:
    """A JSON string literal exactly as Go's encoder (with HTML escaping) writes it."""
    if _SURROGATE.search(s):
        s = _SURROGATE.sub("\ufffd", s)
    # json.dumps with ensure_ascii=False already matches Go for quotes, backslash and
    # control characters (\b \f \n \r \t short forms, others \u00xx lowercase).
    out = json.dumps(s, ensure_ascii=False)
    if _HTML.search(out):
        out = _HTML.sub(lambda m: _HTML_ESC[m.group()], out)
    return out


def format_float(x: float) -> str:
    """Format a float64 like Go's ``encoding/json`` (``strconv.AppendFloat(f, 'f' or 'e', -1, 64)``)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"json: unsupported value: {x!r}")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    from decimal import Decimal  # imported here: only floats need it

    sign, digits, exp = Decimal(repr(x)).as_tuple()
    # Drop trailing zeros of the shortest representation (repr never has them, except '0').
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    # value = 0.ds * 10**point
    point = len(digits) + exp
    neg = "-" if sign else ""
    ax = abs(x)
    if ax < 1e-6 or ax >= 1e21:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        e = point - 1
        # strconv writes at least two exponent digits ("1e-07"); encoding/json then
        # rewrites "e-0X" as "e-X".  Positive exponents here are >= 21 anyway.
        return f"{neg}{mant}e{'-' if e < 0 else '+'}{abs(e)}"
    if point <= 0:
        return f"{neg}0.{'0' * (-point)}{ds}"
    if point >= len(ds):
        return f"{neg}{ds}{'0' * (point - len(ds))}"
    return f"{neg}{ds[:point]}.{ds[point:]}"


def _encode(obj: Any, out: list[str]) -> None:
    marshal = getattr(obj, "go_json", None)     # a value with a MarshalJSON of its own
    if marshal is not None:
        obj = marshal()
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(encode_string(obj))
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        out.append(format_float(obj))
    elif isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: kv[0].encode("utf-8", "surrogatepass")) if isinstance(obj, GoMap) else obj.items()
        out.append("{")
        first = True
        for k, v in items:
            if not first:
                out.append(",")
            first = False
            out.append(encode_string(k))
            out.append(":")
            _encode(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")
    else:
        raise TypeError(f"gojson cannot encode {type(obj).__name__}")


def dumps(obj: Any, *, newline: bool = True) -> bytes:
    """Encode ``obj`` to the bytes Go's encoder writes (``newline``: as ``Encoder.Encode``)."""
    out: list[str] = []
    _encode(obj, out)
    if newline:
        out.append("\n")
    return "".join(out).encode("utf-8")

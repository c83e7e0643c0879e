"""PARAMETER typing, as ollama's ``api.FormatParams`` does it (HEAD, v0.33).

Values end up in the params layer as JSON numbers that went through the CLI
(float32 fields rounded to float32 and printed as the shortest float32
decimal) and the server (decoded as float64, re-encoded by Go).  We produce the
same float64 here so :mod:`ollama_oci.gojson` writes the same bytes.
"""

from __future__ import annotations

import math
import re
import struct
from fractions import Fraction
from typing import Any, Iterable

from .errors import InvalidParameter

__all__ = ["INT_PARAMS", "FLOAT_PARAMS", "BOOL_PARAMS", "DEPRECATED_PARAMS", "format_params",
           "parse_float32", "float32_shortest", "param_to_text", "check_param_values"]

INT_PARAMS = frozenset({"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx",
                        "num_batch", "num_gpu", "main_gpu", "num_thread", "draft_num_predict"})
FLOAT_PARAMS = frozenset({"top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                          "presence_penalty", "frequency_penalty"})
BOOL_PARAMS = frozenset({"use_mmap"})
LIST_PARAMS = frozenset({"stop"})
#: skipped with a warning by ollama v0.12+ (never reach the params layer)
DEPRECATED_PARAMS = frozenset({"penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only",
                               "use_mlock", "mirostat", "mirostat_tau", "mirostat_eta"})
ALL_PARAMS = INT_PARAMS | FLOAT_PARAMS | BOOL_PARAMS | LIST_PARAMS

_INT = re.compile(r"[+-]?[0-9]+\Z")
_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+\Z")
_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
         "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}

_F32_MAX = Fraction(struct.unpack("<f", b"\xff\xff\x7f\x7f")[0])


def _f32_from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _round_to_f32(exact: Fraction) -> float:
    """Round an exact rational to the nearest float32, ties to even (as Go's ParseFloat(s, 32))."""
    if exact == 0:
        return 0.0
    neg = exact < 0
    a = -exact if neg else exact
    # overflow: beyond MaxFloat32 + half an ulp rounds to infinity
    half_ulp_top = Fraction(2) ** 103  # ulp at the top binade is 2**104
    if a >= _F32_MAX + half_ulp_top:
        raise OverflowError
    # candidate via float64 (may be off by one float32 ulp due to double rounding)
    try:
        approx = float(a)
    except OverflowError:  # pragma: no cover - guarded above
        raise
    try:
        cand = struct.unpack("<f", struct.pack("<f", approx))[0]
    except OverflowError:
        cand = float(_F32_MAX)
    bits = _f32_bits(cand)
    best, best_err = None, None
    for b in (bits - 1, bits, bits + 1):
        if b < 0 or b >= 0x7F800000:
            continue
        v = _f32_from_bits(b)
        err = abs(Fraction(v) - a)
        if best is None or err < best_err or (err == best_err and b % 2 == 0):
            best, best_err = v, err
    return -best if neg else best


def _underscore_ok(s: str) -> bool:
    """Go's ``strconv.underscoreOK``: an underscore only between digits (a base prefix counts as one)."""
    saw = "^"
    i = 0
    if s[:1] in ("-", "+"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for c in s[i:]:
        if "0" <= c <= "9" or (hexa and "a" <= c.lower() <= "f"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_float32(s: str) -> float:
    """Go ``strconv.ParseFloat(s, 32)``: the float32 value (as a Python float), or ValueError.
    Like Go it takes digit-separating underscores (``1_0.5`` is 10.5) and keeps the sign of zero."""
    t = s
    if "_" in t:
        if not _underscore_ok(t):
            raise ValueError("syntax")
        t = t.replace("_", "")
    low = t.lower().lstrip("+-")
    if low in ("inf", "infinity", "nan"):
        raise ValueError("not finite")  # Go parses them, but JSON cannot carry them: create fails
    if _DEC.match(t):
        exact = _frac_exp(t) if "e" in t.lower() else Fraction(t)
    elif _HEX.match(t):
        exact = _frac_hex(t)
    else:
        raise ValueError("syntax")
    try:
        v = _round_to_f32(exact)
    except OverflowError:
        raise ValueError("out of range") from None
    return -0.0 if v == 0 and t.startswith("-") else v


def _frac_exp(t: str) -> Fraction:
    mant, _, exp = t.lower().partition("e")
    e = int(exp)
    if e > 400 or e < -400:  # far outside float32; avoid building huge rationals
        return Fraction(0) if e < 0 else Fraction(10) ** 400
    return Fraction(mant or "0") * (Fraction(10) ** e)


def _frac_hex(t: str) -> Fraction:
    neg = t.startswith("-")
    t = t.lstrip("+-")[2:]
    mant, _, exp = t.lower().partition("p")
    whole, _, frac = mant.partition(".")
    v = Fraction(int(whole or "0", 16))
    if frac:
        v += Fraction(int(frac, 16), 16 ** len(frac))
    e = int(exp)
    e = max(min(e, 400), -400)
    v *= Fraction(2) ** e
    return -v if neg else v


def float32_shortest(x: float) -> str:
    """Shortest decimal that reads back as the same float32 (Go ``FormatFloat(x, 'g', -1, 32)`` digits)."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    for p in range(1, 10):
        s = f"{x:.{p}g}"
        try:
            if _round_to_f32(_frac_exp(s) if "e" in s else Fraction(s)) == x:
                return s
        except OverflowError:
            continue
    return repr(x)  # pragma: no cover - 9 digits always round-trip


def _as_transported(x: float) -> float:
    """The float64 the server sees after the CLI sent a float32 as its shortest decimal."""
    return float(float32_shortest(x))


def format_params(pairs: Iterable[tuple[str, str]], *, warn=None) -> dict[str, Any]:
    """Type ``(name, value)`` pairs in Modelfile order, as ollama's CLI then server would.

    Returns a dict ready for the params layer: numbers as float64, ``stop`` a list
    (repeated ``stop`` lines append), booleans as bool.  Scalar parameters given
    twice keep the last value.  Deprecated names are skipped with ``warn(msg)``.
    """
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in DEPRECATED_PARAMS:
            if warn is not None:
                warn(f"parameter {name} is deprecated and ignored by ollama")
            continue
        if name not in ALL_PARAMS:
            raise InvalidParameter(f"unknown parameter '{name}'")
        if name in LIST_PARAMS:
            out.setdefault(name, []).append(value)
        elif name in FLOAT_PARAMS:
            try:
                f = parse_float32(value)
            except ValueError:
                raise InvalidParameter(f"invalid float value [{value}]") from None
            out[name] = _as_transported(f)
        elif name in INT_PARAMS:
            if not _INT.match(value) or not (-(1 << 63) <= int(value) < (1 << 63)):
                raise InvalidParameter(f"invalid int value [{value}]")
            out[name] = float(int(value))  # the server decodes every JSON number as float64
        else:  # bool
            if value not in _BOOL:
                raise InvalidParameter(f"invalid bool value [{value}]")
            out[name] = _BOOL[value]
    return out


def param_to_text(value: Any) -> str:
    """How ``ollama show --modelfile`` prints one parameter value."""
    from .gojson import format_float
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value) if not math.isnan(value) else "NaN"
    return str(value)


def check_param_values(params: dict) -> None:
    """Typed parameters (a library caller's ``Recipe.params``) checked as ``ollama create`` and the
    server check them: a known name (Ollama's ``api.Options``), the value's type, ``stop`` a list of
    strings. A model packed with a bad one would have every request to it refused by Ollama."""
    for k, v in params.items():
        if k in DEPRECATED_PARAMS:
            raise InvalidParameter(f"parameter {k!r} is no longer used by ollama; remove it")
        if k not in ALL_PARAMS:
            raise InvalidParameter(f"unknown parameter {k!r}; ollama knows: {', '.join(sorted(ALL_PARAMS))}")
        if k in INT_PARAMS and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
                                or v != int(v)):  # 3 or 3.0 (the server holds numbers as float64)
            raise InvalidParameter(f"parameter {k} must be an integer, not {v!r}")
        if k in FLOAT_PARAMS and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
            raise InvalidParameter(f"parameter {k} must be a finite number, not {v!r}")
        if k in BOOL_PARAMS and not isinstance(v, bool):
            raise InvalidParameter(f"parameter {k} must be true or false, not {v!r}")
        if k in LIST_PARAMS and (not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v)):
            raise InvalidParameter(f"parameter {k} must be a list of strings (e.g. [\"<|im_end|>\"]), not {v!r}")

"""A fast, bounded reader for GGUF headers (versions 1-3, either byte order).

It reads the metadata key/values and the tensor infos, never the tensor data.
Arrays are not turned into Python objects when the file is opened: a
262,144-token vocabulary is walked once to find where it ends and decoded only
if someone asks for its elements (:class:`GGUFArray`).

Untrusted input: every count and length is checked against the bytes that are
left before anything is read or allocated, nesting depth and string lengths are
capped, and every failure is a :class:`~ollama_oci.errors.GGUFError` carrying
the byte offset.  No ``IndexError``, ``struct.error``, ``MemoryError`` or
``UnicodeDecodeError`` leaves this module.

Format facts: ../shared/docs/gguf-format.md (and docs/design.md).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections import namedtuple
from collections.abc import Sequence

from .errors import GGUFError
from . import ggml_tables

# No dataclasses or typing here: this module is on the path of `ollama-oci inspect`, a short process
# where importing them (and inspect, ast, re they pull in) costs ~15 ms of a ~40 ms run
# (docs/benchmarks.md). The records below are named tuples and a plain class.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterator, Union

__all__ = [
    "GGUFFile",
    "GGUFArray",
    "KV",
    "TensorInfo",
    "Limits",
    "ValueType",
    "read_gguf",
    "parse_gguf",
    "GGUF_MAGIC",
]

GGUF_MAGIC = b"GGUF"

# GGUF value type codes (gguf-format.md section 4).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)


class ValueType:
    NAMES = ("UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL",
             "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64")

    @classmethod
    def name(cls, code: int) -> str:
        return cls.NAMES[code] if 0 <= code < len(cls.NAMES) else f"type{code}"


# struct format char and size of each fixed-size type
_FIXED = {UINT8: ("B", 1), INT8: ("b", 1), UINT16: ("H", 2), INT16: ("h", 2), UINT32: ("I", 4),
          INT32: ("i", 4), FLOAT32: ("f", 4), BOOL: ("B", 1), UINT64: ("Q", 8), INT64: ("q", 8),
          FLOAT64: ("d", 8)}
_INT_TYPES = frozenset({UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64})

_LEGACY_MAGICS = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT", b"algg": "GGLA"}


class Limits(namedtuple("Limits", "max_string max_key max_array max_depth max_dims max_tensor_name eager_array "
                                  "max_nested",
                        defaults=(256 << 20, 65535, 1 << 30, 4, 4, 4096, 64, 65536))):
    """Caps applied to untrusted files, on top of "no more than the bytes left" (immutable; give the
    ones to change as keywords, ``Limits(max_string=1 << 20)``).

    ``max_string``: bytes in one string value (256 MiB); ``max_key``: bytes in one key (65535, the
    spec's limit); ``max_array``: elements in one array (2^30, llama.cpp's limit); ``max_depth``:
    nesting of arrays in arrays (4); ``max_dims``: tensor dimensions (4, GGML_MAX_DIMS);
    ``max_tensor_name``: bytes in a tensor name (4096); ``eager_array``: arrays at most this long
    are decoded at open (64); ``max_nested``: arrays inside arrays in the whole file (65536; each
    becomes an object, real GGUFs have none).
    """

    __slots__ = ()


DEFAULT_LIMITS = Limits()


class _Closed:
    def __len__(self) -> int:
        return 0

    def __getitem__(self, _):  # pragma: no cover - only reached after close()
        raise GGUFError("the GGUF file was closed; read array elements before closing it")


class GGUFArray(Sequence):
    """A GGUF array value, decoded lazily.

    ``len()`` is free; indexing, slicing and iteration decode on demand.  String
    elements are ``str`` (invalid UTF-8 kept with ``surrogateescape``).
    """

    __slots__ = ("elem_type", "count", "offset", "end", "_src", "_fmt", "_items", "_offsets", "_file")

    def __init__(self, elem_type: int, count: int, offset: int, end: int, src: Any, fmt: str,
                 items: list | None = None, file: "GGUFFile | None" = None):
        self.elem_type = elem_type
        self.count = count
        self.offset = offset      # where the first element starts
        self.end = end            # where the array ends
        self._src = src
        self._fmt = fmt           # '<' or '>' plus count char
        self._items = items
        self._offsets = None
        self._file = file

    @property
    def elem_type_name(self) -> str:
        return ValueType.name(self.elem_type)

    def __len__(self) -> int:
        return self.count

    def _buf(self):
        if self._file is not None and self._file.closed:
            raise GGUFError("the GGUF file was closed; read array elements before closing it",
                            self.offset, self._file.path)
        return self._src

    def _materialize(self) -> list:
        if self._items is not None:
            return self._items
        buf = self._buf()
        end_char = self._fmt[0]
        try:
            if self.elem_type in _FIXED:
                ch, _size = _FIXED[self.elem_type]
                vals = list(struct.unpack_from(f"{end_char}{self.count}{ch}", buf, self.offset))
                if self.elem_type == BOOL:
                    vals = [v != 0 for v in vals]
                items = vals
            elif self.elem_type == STRING:
                lenfmt = struct.Struct(self._fmt).unpack_from
                w = struct.calcsize(self._fmt)
                items = []
                off = self.offset
                for _ in range(self.count):
                    (n,) = lenfmt(buf, off)
                    off += w
                    items.append(bytes(buf[off:off + n]).decode("utf-8", "surrogateescape"))
                    off += n
            else:  # pragma: no cover - nested arrays are always materialized at parse time
                raise GGUFError("cannot decode array", self.offset)
        except (struct.error, MemoryError, ValueError) as e:  # pragma: no cover - bounds checked at parse
            raise GGUFError(f"cannot decode array: {e}", self.offset) from None
        self._items = items
        return items

    def head(self, n: int) -> list:
        """The first ``n`` elements, decoding only those (a huge array is never decoded whole)."""
        n = max(0, min(n, self.count))
        if self._items is not None:
            return self._items[:n]
        buf = self._buf()
        end_char = self._fmt[0]
        if self.elem_type in _FIXED:
            ch, _size = _FIXED[self.elem_type]
            vals = list(struct.unpack_from(f"{end_char}{n}{ch}", buf, self.offset))
            return [v != 0 for v in vals] if self.elem_type == BOOL else vals
        lenfmt = struct.Struct(self._fmt).unpack_from
        w = struct.calcsize(self._fmt)
        out, off = [], self.offset
        for _ in range(n):
            (k,) = lenfmt(buf, off)
            off += w
            out.append(bytes(buf[off:off + k]).decode("utf-8", "surrogateescape"))
            off += k
        return out

    def __getitem__(self, i):
        if isinstance(i, slice) and (i.start or 0) == 0 and i.step is None and i.stop is not None and i.stop >= 0:
            return self.head(i.stop)
        return self._materialize()[i]

    def __iter__(self) -> Iterator:
        return iter(self._materialize())

    def __eq__(self, other) -> bool:
        if isinstance(other, GGUFArray):
            other = other._materialize()
        if isinstance(other, (list, tuple)):
            return list(self._materialize()) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_list(self) -> list:
        """All elements as a plain (recursively plain) list."""
        return [v.to_list() if isinstance(v, GGUFArray) else v for v in self._materialize()]

    def __repr__(self) -> str:
        return f"<GGUFArray {self.elem_type_name}[{self.count}]>"


if TYPE_CHECKING:  # pragma: no cover
    Value = Union[int, float, bool, str, GGUFArray]


class KV(namedtuple("KV", "key type value offset")):
    """One metadata entry: ``key``, ``type`` (the value type code), ``value`` and ``offset`` (where
    the entry starts in the file)."""

    __slots__ = ()

    @property
    def type_name(self) -> str:
        return ValueType.name(self.type)


class TensorInfo(namedtuple("TensorInfo", "name shape type offset n_elements n_bytes info_offset")):
    """One tensor info: ``name``, ``shape`` (a tuple, in ggml order: ``ne[0]`` first), ``type`` (the
    ggml type code), ``offset`` (relative to the data section), ``n_elements``, ``n_bytes`` (None for
    a tensor type this version of gguf-py does not know) and ``info_offset`` (where the info starts
    in the file)."""

    __slots__ = ()

    @property
    def type_name(self) -> str:
        return ggml_tables.tensor_type_name(self.type)


class GGUFFile:
    """A parsed GGUF header.  Use :func:`read_gguf` (a file) or :func:`parse_gguf` (bytes).

    ``path``; ``version``; ``byte_order`` ("little" or "big"); ``kv`` (key -> :class:`KV`, in file
    order); ``tensors`` (:class:`TensorInfo`, in file order); ``alignment``; ``header_end`` (the
    first byte after the last tensor info); ``data_offset`` (``header_end`` rounded up to the
    alignment); ``file_size``; ``closed``.
    """

    def __init__(self, *, path: str | None, version: int, byte_order: str, kv: dict[str, KV],
                 tensors: list[TensorInfo], alignment: int, header_end: int, data_offset: int, file_size: int,
                 closed: bool = False):
        self.path = path
        self.version = version
        self.byte_order = byte_order
        self.kv = kv
        self.tensors = tensors
        self.alignment = alignment
        self.header_end = header_end
        self.data_offset = data_offset
        self.file_size = file_size
        self.closed = closed
        self._mm: Any = None
        self._fh: Any = None

    def __repr__(self) -> str:
        return (f"GGUFFile(path={self.path!r}, version={self.version}, byte_order={self.byte_order!r}, "
                f"{len(self.kv)} keys, {len(self.tensors)} tensors, data_offset={self.data_offset}, "
                f"file_size={self.file_size}{', closed' if self.closed else ''})")

    # -- mapping-like access to metadata ------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self.kv

    def __getitem__(self, key: str) -> Value:
        return self.kv[key].value

    def get(self, key: str, default: Any = None) -> Any:
        kv = self.kv.get(key)
        return default if kv is None else kv.value

    def get_int(self, key: str) -> int | None:
        """An integer key of any integer type (None if absent or not an integer)."""
        kv = self.kv.get(key)
        if kv is None or kv.type not in _INT_TYPES:
            return None
        return int(kv.value)

    def get_str(self, key: str) -> str | None:
        kv = self.kv.get(key)
        return kv.value if kv is not None and kv.type == STRING else None

    @property
    def architecture(self) -> str | None:
        return self.get_str("general.architecture")

    @property
    def parameter_count(self) -> int:
        """Sum of tensor element counts (what ollama reports; ``general.parameter_count`` is ignored)."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_data_end(self) -> int:
        """Where the last tensor's data ends (``data_offset`` when there are no tensors)."""
        end = self.data_offset
        for t in self.tensors:
            if t.n_bytes is not None:
                end = max(end, self.data_offset + t.offset + t.n_bytes)
        return end

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        mm, fh = self._mm, self._fh
        self._mm = self._fh = None
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a memoryview still refers to it; let GC close it
                pass
        if fh is not None:
            fh.close()

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Parser:
    """Sequential reader over a buffer with an explicit bound."""

    def __init__(self, buf, size: int, path: str | None, limits: Limits, share_gil: bool = False):
        self.share_gil = share_gil
        self.buf = buf
        self.end = size
        self.pos = 0
        self.path = path
        self.limits = limits
        self.nested = 0   # arrays inside arrays so far (Limits.max_nested)

    def fail(self, msg: str, offset: int | None = None):
        raise GGUFError(msg, self.pos if offset is None else offset, self.path)

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            self.fail(f"truncated file: {what} needs {n} bytes but only {max(self.end - self.pos, 0)} remain")

    def setup(self, order: str, wide: bool) -> None:
        o = "<" if order == "little" else ">"
        self.o = o
        self.u32 = struct.Struct(o + "I").unpack_from
        self.cnt_fmt = o + ("Q" if wide else "I")
        self.cnt = struct.Struct(self.cnt_fmt).unpack_from
        self.cw = 8 if wide else 4
        # GGUF v1 has no 64-bit value types (they arrived with v2)
        self.fixed = {t: (struct.Struct(o + ch).unpack_from, size) for t, (ch, size) in _FIXED.items()
                      if wide or t not in (UINT64, INT64, FLOAT64)}
        self.u64 = struct.Struct(o + "Q").unpack_from

    def read_u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = self.u32(self.buf, self.pos)
        self.pos += 4
        return v

    def read_count(self, what: str) -> int:
        self.need(self.cw, what)
        (v,) = self.cnt(self.buf, self.pos)
        self.pos += self.cw
        return v

    def read_raw_string(self, what: str, cap: int) -> bytes:
        start = self.pos
        n = self.read_count(f"{what} length")
        if n > cap:
            self.fail(f"{what} length {n} exceeds the limit of {cap} bytes", start)
        self.need(n, what)
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b

    def read_string(self, what: str, cap: int) -> str:
        return self.read_raw_string(what, cap).decode("utf-8", "surrogateescape")

    def read_value(self, vtype: int, file: GGUFFile | None, depth: int = 0) -> Value:
        fx = self.fixed.get(vtype)
        if fx is not None:
            unpack, size = fx
            self.need(size, ValueType.name(vtype) + " value")
            (v,) = unpack(self.buf, self.pos)
            self.pos += size
            return (v != 0) if vtype == BOOL else v
        if vtype == STRING:
            return self.read_string("string value", self.limits.max_string)
        if vtype == ARRAY:
            return self.read_array(file, depth + 1)
        self.fail(f"unknown value type {vtype} (known: 0-12); the file is corrupt or from a newer GGUF version",
                  self.pos - 4)

    def read_array(self, file: GGUFFile | None, depth: int) -> GGUFArray:
        start = self.pos
        if depth > self.limits.max_depth:
            self.fail(f"arrays nested deeper than {self.limits.max_depth} levels")
        etype = self.read_u32("array element type")
        count = self.read_count("array length")
        if count > self.limits.max_array:
            self.fail(f"array length {count} exceeds the limit of {self.limits.max_array} elements", start)
        fx = self.fixed.get(etype)
        if fx is not None:
            size = fx[1]
            self.need(count * size, f"array of {count} {ValueType.name(etype)}")
            first = self.pos
            self.pos += count * size
            arr = GGUFArray(etype, count, first, self.pos, self.buf, self.o, file=file)
            if count <= self.limits.eager_array:
                arr._materialize()
            return arr
        if etype == STRING:
            # every string takes at least its length prefix: bound the count before walking
            self.need(count * self.cw, f"array of {count} strings")
            first = self.pos
            off = first
            cnt = self.cnt
            cw = self.cw
            buf = self.buf
            end = self.end
            try:
                # with share_gil, in blocks with a pause between them (see read_gguf)
                left = count
                block = 1024 if self.share_gil else count
                while left:
                    step = block if left > block else left
                    off = _skip_strings(cnt, buf, off, step, cw)
                    left -= step
                    if left:
                        time.sleep(0)
            except struct.error:
                off = end + 1
            if off > end:
                self.fail(f"truncated file: array of {count} strings runs past the end of the file", start)
            self.pos = off
            arr = GGUFArray(etype, count, first, off, buf, self.cnt_fmt, file=file)
            if count <= self.limits.eager_array:
                arr._materialize()
            return arr
        if etype == ARRAY:
            self.need(count * (4 + self.cw), f"array of {count} arrays")
            self.nested += count
            if self.nested > self.limits.max_nested:
                self.fail(f"more than {self.limits.max_nested} arrays nested in arrays; this is not a model's "
                          "metadata", start)
            first = self.pos
            items = [self.read_array(file, depth + 1) for _ in range(count)]
            return GGUFArray(etype, count, first, self.pos, self.buf, self.o, items=items, file=file)
        self.fail(f"unknown array element type {etype} (known: 0-12)", start)


def _skip_strings(unpack, buf, off: int, n: int, cw: int) -> int:
    """The offset after ``n`` length-prefixed strings from ``off`` (``unpack`` reads a length of ``cw``
    bytes; ``struct.error`` past the end). Eight to a turn of the loop: a vocabulary of 262,144
    tokens is walked in ~20% less time than one at a time (the loop, not the reads, is the cost)."""
    for _ in range(n >> 3):
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
        off += cw + unpack(buf, off)[0]
    for _ in range(n & 7):
        off += cw + unpack(buf, off)[0]
    return off


def _parse(buf, size: int, path: str | None, limits: Limits, file_size: int | None = None,
           share_gil: bool = False) -> GGUFFile:
    p = _Parser(buf, size, path, limits, share_gil)
    if size < 4:
        p.fail(f"not a GGUF file: {size} bytes, too short for the 4-byte magic", 0)
    magic = bytes(buf[0:4])
    if magic != GGUF_MAGIC:
        legacy = _LEGACY_MAGICS.get(magic)
        if legacy:
            p.fail(f"not a GGUF file: this is a legacy {legacy} file (magic {magic!r}); "
                   "convert it to GGUF with llama.cpp's conversion scripts", 0)
        p.fail(f"not a GGUF file: magic bytes are {magic.hex()}, expected 47475546 ('GGUF')", 0)
    p.pos = 4
    p.need(4, "version")
    (version,) = struct.unpack_from("<I", buf, 4)
    order = "little"
    if version & 0xFFFF == 0 and version != 0:
        (version,) = struct.unpack_from(">I", buf, 4)
        order = "big"
    if version not in (1, 2, 3):
        p.fail(f"unsupported GGUF version {version}; versions 1, 2 and 3 are supported", 4)
    p.pos = 8
    p.setup(order, wide=version >= 2)

    gf = GGUFFile(path=path, version=version, byte_order=order, kv={}, tensors=[], alignment=32,
                  header_end=0, data_offset=0, file_size=size if file_size is None else file_size)

    n_tensors = p.read_count("tensor count")
    n_kv = p.read_count("metadata count")
    # smallest possible entries: a KV is key length + 1 key byte + type + 1 value byte;
    # a tensor info is name length + n_dims + type + offset.
    min_kv = p.cw + 1 + 4 + 1
    min_ti = p.cw + 4 + 4 + 8
    if n_kv > (p.end - p.pos) // min_kv:
        p.fail(f"metadata count {n_kv} cannot fit in the {p.end - p.pos} bytes that remain", 16 if p.cw == 8 else 12)
    if n_tensors > (p.end - p.pos) // min_ti:
        p.fail(f"tensor count {n_tensors} cannot fit in the {p.end - p.pos} bytes that remain", 8)

    kvs = gf.kv
    max_value_type = FLOAT64 if version >= 2 else ARRAY
    for _ in range(n_kv):
        start = p.pos
        key = p.read_string("key", limits.max_key)
        if not key:
            p.fail("empty metadata key", start)
        if key in kvs:
            p.fail(f"duplicate metadata key {key!r}", start)
        vtype = p.read_u32(f"value type of {key!r}")
        if vtype > max_value_type:
            p.fail(f"key {key!r}: unknown value type {vtype} for GGUF v{version}", p.pos - 4)
        value = p.read_value(vtype, gf)
        kvs[key] = KV(key, vtype, value, start)

    align_kv = kvs.get("general.alignment")
    if align_kv is not None:
        a = align_kv.value
        if align_kv.type not in _INT_TYPES or a <= 0 or a & (a - 1):
            p.fail(f"general.alignment must be a power-of-two integer, got {a!r}", align_kv.offset)
        gf.alignment = a

    names: set[str] = set()
    cnt = p.cnt
    for _ in range(n_tensors):
        start = p.pos
        name = p.read_string("tensor name", limits.max_tensor_name)
        if name in names:
            p.fail(f"duplicate tensor name {name!r}", start)
        names.add(name)
        n_dims = p.read_u32(f"dimension count of tensor {name!r}")
        if n_dims > limits.max_dims:
            p.fail(f"tensor {name!r} has {n_dims} dimensions; at most {limits.max_dims} are allowed", p.pos - 4)
        p.need(n_dims * p.cw, f"dimensions of tensor {name!r}")
        dims = tuple(cnt(buf, p.pos + i * p.cw)[0] for i in range(n_dims))
        p.pos += n_dims * p.cw
        ttype = p.read_u32(f"type of tensor {name!r}")
        p.need(8, f"offset of tensor {name!r}")
        (offset,) = p.u64(buf, p.pos)
        p.pos += 8
        n_el = 1
        for d in dims:
            n_el *= d
        if n_el >= 1 << 63:
            p.fail(f"tensor {name!r} has too many elements ({'x'.join(map(str, dims))})", start)
        blk = ggml_tables.tensor_block(ttype)
        n_bytes = None
        if blk is not None:
            block, bsize = blk
            if dims and dims[0] % block:
                p.fail(f"tensor {name!r}: row length {dims[0]} is not a multiple of the "
                       f"{ggml_tables.tensor_type_name(ttype)} block size {block}", start)
            n_bytes = n_el // block * bsize
        gf.tensors.append(TensorInfo(name, dims, ttype, offset, n_el, n_bytes, start))

    gf.header_end = p.pos
    a = gf.alignment
    gf.data_offset = p.pos + (a - p.pos % a) % a
    for t in gf.tensors:
        if t.offset % a:
            raise GGUFError(f"tensor {t.name!r}: data offset {t.offset} is not a multiple of the alignment {a}",
                            t.info_offset, path)
        if t.n_bytes is not None and gf.data_offset + t.offset + t.n_bytes > gf.file_size:
            raise GGUFError(
                f"truncated file: tensor {t.name!r} ends at byte {gf.data_offset + t.offset + t.n_bytes} "
                f"but the file has {gf.file_size} bytes; the download is incomplete",
                t.info_offset, path)
    return gf


def parse_gguf(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS,
               path: str | None = None, file_size: int | None = None) -> GGUFFile:
    """Parse a GGUF header from bytes (the whole file, or at least its header).

    ``file_size`` is the size of the whole file when ``data`` is only its start
    (tensor bounds are checked against it).
    """
    try:
        return _parse(data, len(data), path, limits, file_size)
    except GGUFError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError, UnicodeDecodeError) as e:
        raise GGUFError(f"malformed GGUF header ({type(e).__name__}: {e})", None, path) from None


def read_gguf(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS, share_gil: bool = False) -> GGUFFile:
    """Read the header of a GGUF file.  Touches only the header's pages.

    The returned :class:`GGUFFile` keeps the file mapped so that large arrays can
    be decoded later; close it (or use ``with``) when done.

    ``share_gil``: another thread of this process is busy meanwhile (``pack`` hashes the file while
    it parses the header).  The walk over a large string array (a vocabulary) holds the GIL for
    tens of milliseconds, and the other thread would wait up to a switch interval for it between
    every chunk it hashes; with ``share_gil`` the walk pauses briefly every 1,024 strings instead,
    which slows it and not the hash (measured on the Gemma: pack 1.13x of one hash pass without,
    1.04x with).
    """
    spath = os.fspath(path)
    try:
        fh = open(spath, "rb")
    except FileNotFoundError:
        from .errors import NotFound
        raise NotFound(f"{spath}: no such file") from None
    except IsADirectoryError:
        raise GGUFError("is a directory, not a GGUF file", None, spath) from None
    except OSError as e:
        from .errors import StoreError
        raise StoreError(f"{spath}: cannot open: {e.strerror}") from None
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise GGUFError("not a GGUF file: the file is empty", 0, spath)
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            gf = _parse(mm, size, spath, limits, share_gil=share_gil)
        except GGUFError:
            mm.close()
            raise
        except (struct.error, IndexError, ValueError, OverflowError, MemoryError, UnicodeDecodeError) as e:
            mm.close()
            raise GGUFError(f"malformed GGUF header ({type(e).__name__}: {e})", None, spath) from None
        gf._mm = mm
        gf._fh = fh
        return gf
    except BaseException:
        fh.close()
        raise

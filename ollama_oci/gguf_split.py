"""Split GGUF sets (``name-00001-of-00003.gguf``, ...) merged into one model blob, as ``ollama create``
writes it.

Ollama (v0.30+) turns a split set into one blob with ``llama-quantize --allow-requantize FIRST OUT
COPY``; what that writes, and so what this module writes, byte for byte:

* the header of GGUF v3 with the first shard's metadata, in its order, except that ``split.no``,
  ``split.count`` and ``split.tensors.count`` are dropped and ``general.quantization_version``
  (UINT32, 2) and ``general.file_type`` (UINT32: the first shard's value, or guessed from the tensor
  types as llama.cpp's loader guesses it) move to the end (ggml's ``gguf_set_val_*`` removes a key
  and appends it);
* every tensor of every shard, in llama.cpp's loader order (tensors outside ``blk.N.`` first, then by
  layer number, each group by name), with offsets counted from zero and each tensor's data padded
  with zeros to the alignment; the header padded to the alignment too.

For shards that ``llama-gguf-split`` cut from a file llama.cpp wrote (the usual case), that output is
the original unsplit file. The merge is one streaming pass: each shard's tensor data is read once,
written into the store's temp area and hashed on the way; memory holds only the header.
(docs/gguf-format.md in ../shared, section 12; llama.cpp's ``gguf-split.cpp``, ``llama-quant.cpp``,
``gguf.cpp``.)
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from .digest import Digest
from .errors import GGUFError, InvalidInput, NotFound, Unsupported
from .fsutil import Staged, WriteBehind, ensure_room, hold, tmp_name, unlink_quiet
from .gguf_header import GGUFFile, parse_gguf, read_gguf
from .modelinfo import names_a_set, shard_name_parts, shard_siblings, split_info

__all__ = ["SplitSet", "open_split_set", "is_split", "names_a_set", "stage_merged"]

SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
MOVED_KEYS = ("general.quantization_version", "general.file_type")
GGML_QNT_VERSION = 2
UINT32 = 4
LLAMA_FTYPE_GUESSED = 1024
#: the llama_ftype llama.cpp's loader guesses from the most common tensor type (ggml type -> ftype)
_FTYPE_OF_TYPE = {0: 0, 1: 1, 30: 32, 2: 2, 3: 3, 6: 8, 7: 9, 8: 7, 10: 10, 11: 12, 12: 15, 13: 17, 14: 18,
                  34: 36, 35: 37, 16: 19, 17: 20, 22: 28, 18: 23, 19: 24, 29: 31, 20: 25, 23: 30, 21: 26, 39: 38}
_LAYER = re.compile(rb"^blk\.\s*([+-]?\d+)\.")


def _loader_order(name: str) -> tuple[int, bytes]:
    """llama.cpp's ``weight_name_comparer``: ``sscanf(name, "blk.%d.")`` layer (-1 without one), then
    the name's bytes."""
    b = name.encode()
    m = _LAYER.match(b)
    layer = -1
    if m:
        try:
            layer = max(min(int(m.group(1)), 2**31 - 1), -(2**31))
        except ValueError:
            layer = -1
    return layer, b


def is_split(path: str) -> bool:
    """Whether ``path`` is one shard of a split set, by its name or else its header's ``split.count``
    (which costs a header parse)."""
    if shard_name_parts(os.path.basename(path)) is not None:
        return names_a_set(path)
    try:
        with read_gguf(path) as g:
            info = split_info(g)
    except (GGUFError, NotFound):
        return False
    return info is not None and info.count > 1


@dataclass
class _Piece:
    shard: int           # index into SplitSet.paths
    start: int           # absolute offset of the tensor's data in the shard
    size: int            # bytes of data
    pad: int             # zero bytes after it


@dataclass
class SplitSet:
    """A checked split set and the merged file it makes: header bytes, then the pieces in order."""

    paths: list[str]
    header: bytes
    pieces: list[_Piece]
    size: int

    @property
    def first(self) -> str:
        return self.paths[0]

    def describe(self) -> str:
        return f"{os.path.basename(self.first)} + {len(self.paths) - 1} more shard(s)"

    def merged_header(self) -> GGUFFile:
        """The merged file's header, parsed (for the model facts and the chat template)."""
        return parse_gguf(self.header, path=self.first, file_size=self.size)

    def write(self, out_fd: int, progress: Optional[Callable[[int, int], None]] = None) -> tuple[Digest, int]:
        """Write the merged file to ``out_fd`` (open for reading and writing) in one pass: the
        tensor data is copied by the kernel while the written file is hashed behind it
        (:mod:`ollama_oci.copyhash`). Returns (digest, size)."""
        from .copyhash import Range, ShortSource, copy_pieces   # only a merge needs it (inspect does not)
        done = 0
        behind = WriteBehind(out_fd)    # the merged file goes to disk as it is written; the caller fsyncs

        def tick(n: int) -> None:
            nonlocal done
            done += n
            behind.wrote(done)
            if progress is not None:
                progress(done, self.size)

        fds: list[int] = []
        try:
            for p in self.paths:
                fds.append(os.open(p, os.O_RDONLY))
            for pc in self.pieces:
                if pc.start + pc.size > os.fstat(fds[pc.shard]).st_size:
                    raise GGUFError(f"{self.paths[pc.shard]} changed while being merged (it is shorter now)",
                                    None, self.paths[pc.shard])

            def pieces():
                yield self.header
                for pc in self.pieces:
                    yield Range(fds[pc.shard], pc.start, pc.size, self.paths[pc.shard])
                    if pc.pad:
                        yield b"\0" * pc.pad

            try:
                digest, size = copy_pieces(out_fd, pieces(), progress=tick)
            except ShortSource as e:
                raise GGUFError(f"{e.name} ended early while being merged (it changed)", None, e.name) from None
        finally:
            behind.close()
            for fd in fds:
                os.close(fd)
        if size != self.size:
            raise GGUFError(f"merged {size} bytes, expected {self.size}", None, self.first)
        return digest, size


def _shard_paths(paths: list[str]) -> list[str]:
    """One shard names the whole set (its siblings by llama.cpp's naming rule); several shards are
    the set themselves."""
    if len(paths) == 1:
        sib = shard_siblings(paths[0])
        if sib is None:
            raise InvalidInput(f"{paths[0]}: is a shard of a split GGUF, but its name does not follow "
                               f"llama.cpp's NAME-00001-of-0000N.gguf rule; give every shard")
        missing = [p for p in sib if not os.path.exists(p)]
        if missing:
            raise NotFound(f"split set of {os.path.basename(paths[0])}: shard {os.path.basename(missing[0])} is "
                           f"missing ({len(missing)} of {len(sib)} missing); put every shard beside the first")
        return sib
    return list(dict.fromkeys(paths))


def open_split_set(paths: list[str]) -> SplitSet:
    """Check a split set (any one shard, or all of them) and plan its merge."""
    shard_paths = _shard_paths([os.fspath(p) for p in paths])
    headers: dict[int, tuple[str, GGUFFile]] = {}
    count = total = None
    try:
        for p in shard_paths:
            g = read_gguf(p)
            info = split_info(g)
            if info is None:
                g.close()
                raise InvalidInput(f"{p}: has no split.no/split.count keys: it is not a shard of this set")
            if g.byte_order != "little" or g.version < 2:
                g.close()
                raise Unsupported(f"{p}: GGUF v{g.version} {g.byte_order}-endian shards cannot be merged "
                                  f"(llama.cpp reads only little-endian v2/v3)")
            if count is None:
                count, total = info.count, info.tensors_total
            if info.count != count or info.tensors_total != total:
                g.close()
                raise InvalidInput(f"{p}: is from another split set (split.count {info.count}, "
                                   f"split.tensors.count {info.tensors_total}; the others say {count}, {total})")
            named = shard_name_parts(os.path.basename(p))
            if named and (int(named[1]) != info.index + 1 or int(named[2]) != info.count):
                g.close()
                raise InvalidInput(f"{p}: its name says shard {int(named[1])} of {int(named[2])}, its header "
                                   f"says split.no {info.index} (shard {info.index + 1}) of {info.count}")
            if info.index in headers:
                g.close()
                raise InvalidInput(f"{p}: shard {info.index + 1} of {count} twice "
                                   f"(also {headers[info.index][0]})")
            if not 0 <= info.index < count:
                g.close()
                raise InvalidInput(f"{p}: split.no {info.index} is outside a set of {count}")
            headers[info.index] = (p, g)
        if count is None or len(headers) != count:
            have = sorted(i + 1 for i in headers)
            lacking = [i for i in range(1, (count or 0) + 1) if i not in have]
            raise NotFound(f"split set of {os.path.basename(shard_paths[0])}: shard(s) {lacking} of {count} missing")
        ordered = [headers[i] for i in range(count)]
        return _plan([p for p, _ in ordered], [g for _, g in ordered], total)
    finally:
        for _, g in headers.values():
            g.close()


def _plan(paths: list[str], gs: list[GGUFFile], total: Optional[int]) -> SplitSet:
    first = gs[0]
    align = first.alignment
    if align != 32:
        raise Unsupported(f"{paths[0]}: general.alignment {align}: llama-quantize pads tensor data to 32 whatever "
                          f"the header says, so its merge of this set is not well defined")
    tensors = []
    seen: dict[str, str] = {}
    for i, g in enumerate(gs):
        for t in g.tensors:
            if t.name in seen:
                raise InvalidInput(f"{paths[i]}: tensor {t.name!r} is also in {seen[t.name]}")
            if t.n_bytes is None:
                raise Unsupported(f"{paths[i]}: tensor {t.name!r} has a type this reader does not size "
                                  f"({t.type_name}); cannot merge")
            seen[t.name] = paths[i]
            tensors.append((i, g, t))
    if total is not None and total != len(tensors):
        raise InvalidInput(f"split set of {os.path.basename(paths[0])}: split.tensors.count says {total} tensors, "
                           f"the shards hold {len(tensors)}")
    tensors.sort(key=lambda it: _loader_order(it[2].name))

    # metadata: the first shard's KVs in order, their raw bytes, without the split keys and the two
    # keys quantize sets again (appended below)
    raw = first._mm if first._mm is not None else None
    kv_list = list(first.kv.values())
    ends = [kv.offset for kv in kv_list[1:]] + [first.tensors[0].info_offset if first.tensors else first.header_end]
    out = bytearray()
    n_kv = 0
    for kv, end in zip(kv_list, ends):
        if kv.key in SPLIT_KEYS or kv.key in MOVED_KEYS:
            continue
        out += raw[kv.offset:end]
        n_kv += 1
    ft = first.kv.get("general.file_type")
    file_type = ft.value if ft is not None and isinstance(ft.value, int) else _guess_ftype([t for _, _, t in tensors])
    for key, value in (("general.quantization_version", GGML_QNT_VERSION), ("general.file_type", file_type)):
        k = key.encode()
        out += struct.pack("<Q", len(k)) + k + struct.pack("<II", UINT32, value & 0xFFFFFFFF)
        n_kv += 1
    infos = bytearray()
    pieces = []
    offset = 0
    for i, g, t in tensors:
        name = t.name.encode()
        infos += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(t.shape))
        infos += struct.pack(f"<{len(t.shape)}q", *t.shape) if t.shape else b""
        infos += struct.pack("<IQ", t.type, offset)
        padded = t.n_bytes + (-t.n_bytes % align)
        pieces.append(_Piece(i, g.data_offset + t.offset, t.n_bytes, padded - t.n_bytes))
        offset += padded
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), n_kv) + bytes(out) + bytes(infos)
    header += b"\0" * (-len(header) % align)
    return SplitSet(paths, header, pieces, len(header) + offset)


def _guess_ftype(tensors) -> int:
    """llama.cpp's loader: the type most tensors have (first to reach the count, in loader order)."""
    counts: dict[int, int] = {}
    best, best_n = 0, 0
    for t in tensors:
        counts[t.type] = counts.get(t.type, 0) + 1
        if best_n < counts[t.type]:
            best, best_n = t.type, counts[t.type]
    return _FTYPE_OF_TYPE.get(best, 0) | LLAMA_FTYPE_GUESSED


def stage_merged(ss: SplitSet, tmp_dir: str, *, progress: Optional[Callable[[int, int], None]] = None) -> Staged:
    """Write the merged file into ``tmp_dir`` under a temp name, hashed as it is written: a
    :class:`~ollama_oci.fsutil.Staged` a store commits (nothing is visible before)."""
    os.makedirs(tmp_dir, exist_ok=True)
    ensure_room(tmp_dir, ss.size, ss.describe())
    tmp = tmp_name(tmp_dir)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    lock = -1
    try:
        lock = hold(tmp)
        digest, size = ss.write(fd, progress)
        os.fsync(fd)
        return Staged(tmp, digest, size, "merge", lock)
    except BaseException:
        unlink_quiet(tmp)
        if lock >= 0:
            os.close(lock)
        raise
    finally:
        os.close(fd)

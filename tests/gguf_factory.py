"""A valid GGUF of any size, made in an instant (tests and benchmarks)."""

from __future__ import annotations

import struct


def make_big_gguf(path: str, data_bytes: int, *, marker: bool = True) -> None:
    """A GGUF with one F32 tensor of ``data_bytes`` bytes, as a sparse file (no disk is written).

    ``marker`` writes a few non-zero bytes into the data, so the file is not all zeros.
    """
    key = b"general.architecture"
    head = (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, 5) + b"llama"
            + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, data_bytes // 4, 0, 0))
    pad = (32 - len(head) % 32) % 32
    with open(path, "wb") as f:
        f.write(head + b"\0" * pad)
        f.truncate(len(head) + pad + data_bytes)
        if marker:
            f.seek(len(head) + pad + 12345)
            f.write(b"not all zeros")


def split_like_llama_cpp(src: str, prefix: str, n_split: int) -> list[str]:
    """Cut a GGUF into ``n_split`` shards laid out as llama.cpp's ``llama-gguf-split --split-max-tensors``
    writes them (tools/gguf-split/gguf-split.cpp): the first shard carries every metadata key of the
    source, in order, then ``split.no`` (UINT16, 0-based), ``split.count`` (UINT16) and
    ``split.tensors.count`` (INT32); later shards carry only those three keys. Tensors keep the source
    order; each shard's offsets start at zero, data padded to 32. Names are ``prefix-0000i-of-0000n.gguf``.
    Written here from the format (no llama.cpp on this machine); the raw bytes of the source's
    metadata are copied, as ggml copies them."""
    from ollama_oci.gguf_header import read_gguf
    out = []
    with read_gguf(src) as g:
        raw = g._mm
        kvs = list(g.kv.values())
        ends = [kv.offset for kv in kvs[1:]] + [g.tensors[0].info_offset]
        meta = b"".join(bytes(raw[kv.offset:end]) for kv, end in zip(kvs, ends))
        per = -(-len(g.tensors) // n_split)
        groups = [g.tensors[i:i + per] for i in range(0, len(g.tensors), per)]
        assert len(groups) == n_split, "choose a split count that divides the tensors into that many groups"

        def kv(key: str, vtype: int, fmt: str, value) -> bytes:
            k = key.encode()
            return struct.pack("<Q", len(k)) + k + struct.pack("<I", vtype) + struct.pack(fmt, value)
        for i, tensors in enumerate(groups):
            keys = (meta if i == 0 else b"") + kv("split.no", 2, "<H", i) + kv("split.count", 2, "<H", n_split) \
                + kv("split.tensors.count", 5, "<i", len(g.tensors))
            n_kv = (len(kvs) if i == 0 else 0) + 3
            infos = b""
            off = 0
            for t in tensors:
                name = t.name.encode()
                infos += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(t.shape))
                infos += struct.pack(f"<{len(t.shape)}q", *t.shape) + struct.pack("<IQ", t.type, off)
                off += t.n_bytes + (-t.n_bytes % 32)
            head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), n_kv) + keys + infos
            head += b"\0" * (-len(head) % 32)
            path = f"{prefix}-{i + 1:05d}-of-{n_split:05d}.gguf"
            with open(path, "wb") as f, open(src, "rb") as fin:
                f.write(head)
                for t in tensors:   # copied in blocks, not through the map: memory stays small
                    fin.seek(g.data_offset + t.offset)
                    left = t.n_bytes
                    while left:
                        block = fin.read(min(left, 1 << 20))
                        f.write(block)
                        left -= len(block)
                    f.write(b"\0" * (-t.n_bytes % 32))
            out.append(path)
    return out

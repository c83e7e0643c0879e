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

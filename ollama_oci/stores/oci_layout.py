"""An OCI image layout directory holding ollama artifacts.

``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>`` as the OCI image-layout
spec defines them, readable by skopeo (``oci:DIR:REF``), oras and crane.  Each
model is an entry of ``index.json`` whose ``org.opencontainers.image.ref.name``
annotation is the model's short name (``gemma3:270m``,
``example.com/team/model:q4``).  Manifests are kept in the form a registry
holds (ollama's push bytes, no trailing newline), so their digests are the ones
a push would produce.  ``index.json`` is rewritten by temp file + rename under a
directory lock, never in place; temp files live in ``ingest/``.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from ..digest import Digest, digest_bytes, parse_digest
from ..errors import InvalidInput, InvalidName, NotFound, StoreError, VerificationError
from ..fsutil import atomic_write, locked, unlink_quiet
from ..names import ModelName, parse_name
from ..spec import MAX_MANIFEST_BYTES, MT, parse_manifest
from .base import LocalStore

__all__ = ["OCILayout", "REF_ANNOTATION"]

REF_ANNOTATION = "org.opencontainers.image.ref.name"
_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_MAX_INDEX = 64 << 20


class OCILayout(LocalStore):
    manifest_newline = False  # registry form
    kind = "oci"

    def __init__(self, root: str):
        self.root = root
        self.blobs_dir = os.path.join(root, "blobs", "sha256")
        self.index_path = os.path.join(root, "index.json")

    def prepare(self) -> None:
        try:
            os.makedirs(self.blobs_dir, exist_ok=True)
            os.makedirs(os.path.join(self.root, "ingest"), exist_ok=True)
            lp = os.path.join(self.root, "oci-layout")
            if not os.path.exists(lp):
                atomic_write(lp, _LAYOUT)
            if not os.path.exists(self.index_path):
                with locked(self.root):
                    if not os.path.exists(self.index_path):
                        self._write_index({"schemaVersion": 2, "mediaType": MT.OCI_INDEX, "manifests": []})
        except OSError as e:
            raise StoreError(f"cannot create the OCI layout at {self.root}: {e.strerror}") from None

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs_dir, parse_digest(digest).hex)

    def tmp_dir(self) -> str:
        return os.path.join(self.root, "ingest")

    def _blob_files(self) -> list[tuple[str, Optional[str]]]:
        out = []
        for d, is_blobs in ((self.blobs_dir, True), (self.tmp_dir(), False)):
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p):
                    ok = is_blobs and len(n) == 64 and all(c in "0123456789abcdef" for c in n)
                    out.append((p, "sha256:" + n if ok else None))
        return out

    def _referenced(self, skip: Optional[ModelName] = None) -> tuple[set[str], list[str]]:
        """Blobs used by every index entry except those naming ``skip``: also entries another tool
        wrote under another spelling of a name, or with no name at all."""
        refs: set[str] = set()
        unreadable: list[str] = []
        for e in self._read_index()["manifests"]:
            if not isinstance(e, dict) or (skip is not None and self._names(e, skip)):
                continue
            label = str((e.get("annotations") or {}).get(REF_ANNOTATION) if isinstance(e.get("annotations"), dict)
                        else None) or str(e.get("digest"))
            try:
                data = self.read_blob(parse_digest(e.get("digest", "")), MAX_MANIFEST_BYTES)
                m = parse_manifest(data)
            except (InvalidInput, NotFound, OSError, VerificationError):
                unreadable.append(label[:200])
                continue
            refs.update(str(d.digest) for d in m.blobs)
        return refs, unreadable

    def _referenced_by_index(self) -> set[str]:
        return {e["digest"] for e in self._read_index()["manifests"]
                if isinstance(e, dict) and isinstance(e.get("digest"), str)}

    # -- index --------------------------------------------------------------------------
    def _read_index(self) -> dict:
        try:
            with open(self.index_path, "rb") as f:
                data = f.read(_MAX_INDEX + 1)
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise NotFound(f"no OCI layout at {self.root}") from None
            return {"schemaVersion": 2, "mediaType": MT.OCI_INDEX, "manifests": []}
        if len(data) > _MAX_INDEX:
            raise InvalidInput(f"{self.index_path} is larger than {_MAX_INDEX} bytes")
        try:
            idx = json.loads(data)
        except ValueError as e:
            raise InvalidInput(f"{self.index_path} is not valid JSON: {e}") from None
        except RecursionError:
            raise InvalidInput(f"{self.index_path} is nested too deeply to be an OCI image index") from None
        if not isinstance(idx, dict) or not isinstance(idx.get("manifests", []), list):
            raise InvalidInput(f"{self.index_path} is not an OCI image index")
        idx.setdefault("manifests", [])
        return idx

    def _write_index(self, idx: dict) -> None:
        atomic_write(self.index_path, json.dumps(idx, indent=2, ensure_ascii=False).encode() + b"\n")

    @staticmethod
    def ref_for(name: ModelName) -> str:
        return name.display

    def _entries(self) -> list[tuple[ModelName, dict]]:
        out = []
        for e in self._read_index()["manifests"]:
            if not isinstance(e, dict):
                continue
            ann = e.get("annotations")
            ref = ann.get(REF_ANNOTATION) if isinstance(ann, dict) else None
            if not isinstance(ref, str):
                continue
            try:
                out.append((parse_name(ref), e))
            except InvalidName:
                continue
        return out

    def _find(self, name: ModelName) -> dict:
        for n, e in self._entries():
            if n == name:
                return e
        raise NotFound(f"model {name.display} not found in OCI layout {self.root}; see "
                       f"'ollama-oci list --oci-layout {self.root}'")

    # -- LocalStore ---------------------------------------------------------------------
    def _write_manifest(self, name: ModelName, data: bytes) -> None:
        d = digest_bytes(data)
        self.put_blob_bytes(data, d)
        m = parse_manifest(data)
        with locked(self.root):
            idx = self._read_index()
            # every entry naming this model goes, under whichever spelling another tool wrote it
            # (skopeo and oras write the long form, registry.ollama.ai/library/x:tag)
            idx["manifests"] = [e for e in idx["manifests"] if not self._names(e, name)]
            idx["manifests"].append({"mediaType": m.media_type, "digest": str(d), "size": len(data),
                                     "annotations": {REF_ANNOTATION: self.ref_for(name)}})
            self._write_index(idx)

    @staticmethod
    def _names(entry: object, name: ModelName) -> bool:
        """Whether an index entry is the model ``name`` (its ref annotation parses to it)."""
        if not isinstance(entry, dict):
            return False
        ref = (entry.get("annotations") or {}).get(REF_ANNOTATION) if isinstance(entry.get("annotations"),
                                                                                  dict) else None
        if not isinstance(ref, str):
            return False
        try:
            return parse_name(ref) == name
        except InvalidName:
            return False

    def read_manifest_bytes(self, name: ModelName) -> tuple[bytes, float]:
        e = self._find(name)
        d = parse_digest(e.get("digest", ""))
        size = e.get("size")
        if not isinstance(size, int) or size > MAX_MANIFEST_BYTES:
            raise InvalidInput(f"index entry for {name.display} has a bad size {size!r}")
        data = self.read_blob(d, MAX_MANIFEST_BYTES)
        p = self.find_blob(d)
        return data, os.path.getmtime(p) if p else 0.0

    def names(self) -> list[ModelName]:
        return sorted({n for n, _ in self._entries()}, key=str)

    def _delete_manifest(self, name: ModelName) -> None:
        with locked(self.root):
            idx = self._read_index()
            self._find(name)  # NotFound when absent
            gone = [x for x in idx["manifests"] if self._names(x, name)]
            idx["manifests"] = [x for x in idx["manifests"] if not self._names(x, name)]
            self._write_index(idx)
        # the manifest blobs themselves go too unless another entry points at them
        kept = {x.get("digest") for x in idx["manifests"] if isinstance(x, dict)}
        for e in gone:
            try:
                d = parse_digest(e.get("digest", ""))
            except InvalidInput:
                continue
            if str(d) not in kept:
                p = self.find_blob(d)
                if p:
                    unlink_quiet(p)

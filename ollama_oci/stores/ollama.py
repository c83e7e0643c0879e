"""The ollama model store (``$OLLAMA_MODELS``, default ``~/.ollama/models``).

Layout (docs/ollama-format.md section 1): ``manifests/<host>/<namespace>/<model>/<tag>``
and ``blobs/sha256-<hex>``.  Old stores may hold ``blobs/sha256:<hex>``; those
are read as well (ollama renames them at start-up).  Names are matched
case-insensitively against the spellings already on disk, as ollama does, so
``Gemma3`` reuses an existing ``gemma3`` directory.
"""

from __future__ import annotations

import os
from typing import Optional

from ..digest import Digest, parse_digest
from ..errors import InvalidName, NotFound, StoreError
from ..fsutil import atomic_write, fsync_dir
from ..names import ModelName, name_from_parts
from ..spec import MAX_MANIFEST_BYTES, ollama_manifest_id
from .base import LocalStore, is_regular

__all__ = ["OllamaStore", "default_models_dir"]


def default_models_dir() -> str:
    """``$OLLAMA_MODELS`` if set (used as given), else ``~/.ollama/models``."""
    env = os.environ.get("OLLAMA_MODELS")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".ollama", "models")


class OllamaStore(LocalStore):
    manifest_newline = True  # what `ollama create` writes

    def manifest_id(self, data: bytes) -> Digest:
        """Ollama's ID: the sha256 of the bytes its JSON decoder read (spec.ollama_manifest_id)."""
        return ollama_manifest_id(data)
    kind = "ollama"

    def __init__(self, root: Optional[str] = None):
        self.root = root if root is not None else default_models_dir()
        self.blobs_dir = os.path.join(self.root, "blobs")
        self.manifests_dir = os.path.join(self.root, "manifests")

    #: capability: a copy from another Ollama store brings the manifest file as it is (the ID stays)
    keeps_stored_manifests = True

    def fetch_manifest(self, ref) -> tuple[bytes, str]:
        """What ``ollama push`` sends: Go's ``json.Marshal`` of the manifest (no trailing newline)."""
        m, _ = self.get_manifest(self._name(ref))
        return m.to_bytes(newline=False), m.media_type

    def fetch_stored_manifest(self, ref) -> tuple[bytes, str]:
        """Capability: the manifest file's bytes as stored (what ``ollama cp`` copies)."""
        m, raw = self.get_manifest(self._name(ref))
        return raw, m.media_type

    def prepare(self) -> None:
        try:
            os.makedirs(self.blobs_dir, mode=0o755, exist_ok=True)
            os.makedirs(self.manifests_dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the model store at {self.root}: {e.strerror}; "
                             "set --models-dir or OLLAMA_MODELS to a writable directory") from None

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs_dir, parse_digest(digest).filename)

    def find_blob(self, digest) -> Optional[str]:
        d = parse_digest(digest)
        p = os.path.join(self.blobs_dir, d.filename)
        if is_regular(p):
            return p
        old = os.path.join(self.blobs_dir, "sha256:" + d.hex)  # very old ollama versions
        return old if is_regular(old) else None

    def tmp_dir(self) -> str:
        return self.blobs_dir

    def _blob_files(self) -> list[tuple[str, Optional[str]]]:
        out = []
        try:
            names = os.listdir(self.blobs_dir)
        except FileNotFoundError:
            return []
        for n in names:
            p = os.path.join(self.blobs_dir, n)
            if not os.path.isfile(p):
                continue
            digest = None
            if n.startswith(("sha256-", "sha256:")) and len(n) == 71:
                try:
                    digest = str(parse_digest("sha256:" + n[7:]))
                except Exception:
                    digest = None
            out.append((p, digest))  # anything else in blobs/ is a leftover (temp, partial, lock)
        return out

    # -- names --------------------------------------------------------------------------
    def canonical_name(self, name: ModelName) -> ModelName:
        """Reuse the spelling of existing path parts that match case-insensitively (ollama's getExistingName)."""
        parts = list(name.parts)
        d = self.manifests_dir
        for i, part in enumerate(parts):
            try:
                entries = os.listdir(d)
            except OSError:
                break
            if part not in entries:
                low = part.lower()
                match = next((e for e in sorted(entries) if e.lower() == low), None)
                if match is not None:
                    parts[i] = match
            d = os.path.join(d, parts[i])
        return ModelName(*parts, scheme=name.scheme)

    def manifest_path(self, name: ModelName) -> str:
        # every part was validated by the name grammar: no separators, no "..", no NUL
        return os.path.join(self.manifests_dir, *name.parts)

    def _write_manifest(self, name: ModelName, data: bytes) -> None:
        path = self.manifest_path(self.canonical_name(name))
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {os.path.dirname(path)}: {e.strerror}") from None
        atomic_write(path, data)

    def read_manifest_bytes(self, name: ModelName) -> tuple[bytes, float]:
        path = self.manifest_path(self.canonical_name(name))
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_MANIFEST_BYTES + 1)
                st = os.fstat(f.fileno())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"model {name.display} not found in {self.root}; see 'ollama-oci list'") from None
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror}") from None
        return data, st.st_mtime

    def names(self) -> list[ModelName]:
        out = []
        base = self.manifests_dir
        try:
            hosts = os.listdir(base)
        except OSError:
            return []
        for h in hosts:
            for ns in _subdirs(os.path.join(base, h)):
                for m in _subdirs(os.path.join(base, h, ns)):
                    d = os.path.join(base, h, ns, m)
                    try:
                        tags = os.listdir(d)
                    except OSError:
                        continue
                    for t in tags:
                        if not os.path.isfile(os.path.join(d, t)):
                            continue
                        try:
                            out.append(name_from_parts((h, ns, m, t)))
                        except InvalidName:
                            continue  # ollama ignores such files too (and skips pruning)
        return sorted(out, key=str)

    def _delete_manifest(self, name: ModelName) -> None:
        path = self.manifest_path(self.canonical_name(name))
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NotFound(f"model {name.display} not found in {self.root}") from None
        # remove now-empty parent directories up to manifests/ (ollama's PruneDirectory)
        d = os.path.dirname(path)
        while os.path.abspath(d) != os.path.abspath(self.manifests_dir):
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)
        fsync_dir(os.path.dirname(path) if os.path.isdir(os.path.dirname(path)) else self.manifests_dir)


def _subdirs(path: str) -> list[str]:
    try:
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []

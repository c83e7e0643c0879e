"""Copy between places written as strings (``ollama:NAME``, ``oci:DIR:NAME``, ``FILE.tar.zst``, a
registry reference): which store each string names, which reference, and whether the move is a
copy, a bundle export or a bundle import. The ``copy`` command is this one call.

    from ollama_oci.places import copy_places
    copy_places("ollama:gemma3:270m", "registry.example.com/ml/gemma3:270m")
"""

from __future__ import annotations

from typing import Any, Optional, Union

from .engine import CopyOptions, copy
from .endpoints import Endpoint, parse_endpoint
from .errors import InvalidInput
from .names import ModelName
from .reference import Reference, parse_destination
from .stores.registry import Registries

__all__ = ["copy_places", "open_place", "only_model"]


def open_place(ep: Union[Endpoint, str], *, models_dir: Optional[str] = None,
               registries: Optional[Registries] = None) -> tuple[Any, Any]:
    """(store, reference or None) for a place; a bundle has no store (it is read or written whole)."""
    if isinstance(ep, str):
        ep = parse_endpoint(ep)
    if ep.kind == "registry":
        return (registries or Registries()).get(ep.ref.registry), ep.ref
    return ep.store(models_dir=models_dir), ep.ref


def only_model(store: Any, ep: Endpoint) -> Any:
    """The one model a place holds, when its string names none."""
    refs = store.list_refs()
    if len(refs) != 1:
        raise InvalidInput(f"{ep.text}: name the model ({ep.text}:NAME); it holds {len(refs)} models")
    return refs[0]


def copy_places(src: str, dst: str, *, models_dir: Optional[str] = None, registries: Optional[Registries] = None,
                options: Optional[CopyOptions] = None, warn=None, to_ollama: bool = False,
                as_format: Optional[str] = None, params: Optional[dict] = None):
    """Copy a model from the place ``src`` to the place ``dst``: a :class:`~ollama_oci.engine.CopyReport`,
    or a :class:`~ollama_oci.bundle.BundleReport` when one side is a bundle file.

    A destination without a name takes the source's name (a registry destination always names
    its repository). Only missing blobs move, each verified; the manifest goes last. A ModelPack or
    Docker model artifact becomes an Ollama model when the destination is the Ollama store, or
    anywhere with ``to_ollama`` (inside one registry its weights are mounted, not uploaded).
    ``params`` (typed, as :func:`~ollama_oci.build.params_from_options` gives them) go into the Ollama
    model made from a ModelPack or Docker artifact. ``as_format`` (``modelpack`` or ``docker``) writes
    the Ollama model's twin in that format instead (:mod:`ollama_oci.twin`; the weight blob shared).
    """
    s, d = parse_endpoint(src), parse_endpoint(dst)
    if as_format is not None and (to_ollama or d.kind in ("ollama", "bundle") or s.kind == "bundle"):
        raise InvalidInput(f"a {as_format} twin goes to a registry or an OCI layout (oci:DIR:NAME), from an Ollama "
                           f"model in a store, layout or registry")
    if d.kind == "registry":
        parse_destination(dst)  # a registry destination must be named, never registry.ollama.ai by default
    opts = options or CopyOptions()
    if s.kind == "bundle" and d.kind == "bundle":
        raise InvalidInput("copy between two bundles is not supported; import one, then export it again")
    if d.kind == "bundle":
        from .bundle import export_bundle
        store, sref = open_place(s, models_dir=models_dir, registries=registries)
        sref = sref if sref is not None else only_model(store, s)
        return export_bundle(store, [sref], d.path, names=[d.name_or(s) if d.ref else _as_name(sref)],
                             progress=opts.progress)
    if s.kind == "bundle":
        from .bundle import import_bundle
        store, dref = open_place(d, models_dir=models_dir, registries=registries)
        names = [s.ref.display] if s.ref else None
        rename = {s.ref.display: dref.display} if s.ref and isinstance(dref, ModelName) else None

        def ref_for(n: ModelName) -> Reference:
            return dref if dref is not None else Reference(d.ref.registry, f"{n.namespace}/{n.model}", n.tag)
        return import_bundle(s.path, store, names=names, rename=rename, progress=opts.progress,
                             dst_ref_for=ref_for if d.kind == "registry" else None)
    sstore, sref = open_place(s, models_dir=models_dir, registries=registries)
    dstore, dref = open_place(d, models_dir=models_dir, registries=registries)
    sref = sref if sref is not None else only_model(sstore, s)
    if dref is None:
        dref = _as_name(sref)
    if as_format is not None:
        from .twin import copy_as
        twin, report = copy_as(sstore, sref, dstore, dref, as_format, opts)
        for kind, digest, why in twin.not_carried:
            if warn is not None:
                warn(f"not carried into the {as_format} twin: {kind} {digest[7:19]} ({why})")
        return report
    if to_ollama or (d.kind == "ollama" and s.kind == "registry") or params:
        from .bridge import pull_any   # a ModelPack or Docker model artifact becomes an Ollama model
        return pull_any(sstore, sref, dstore, dref, opts, warn=warn, params=params)
    return copy(sstore, sref, dstore, dref, opts)


def _as_name(ref: Any) -> ModelName:
    return ref if isinstance(ref, ModelName) else ref.to_model_name()


"""Mirror plans: copy many models from one registry to another, idempotently.

A plan (TOML, or YAML when PyYAML is installed) names a source and a target
registry and the models to carry; see docs/cli.md.  Each model:tag is one
:func:`ollama_oci.engine.copy`; models run in parallel up to ``concurrency``; a failing
model does not stop the others.  A second run of an unchanged plan only resolves
each target tag (one HEAD per model) and moves nothing.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import EXIT_INTERNAL, InvalidInput, OllamaOCIError
from .reference import OLLAMA_REGISTRY_HOSTS, Reference, parse_reference

__all__ = ["MirrorPlan", "Job", "load_plan", "run_plan"]

_ENDPOINT_KEYS = {"registry", "namespace", "plain_http", "insecure", "ca_file", "cert_file", "key_file",
                  "ollama_key"}


@dataclass
class Endpoint:
    registry: str
    namespace: str = ""
    plain_http: bool = False
    insecure: bool = False
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    ollama_key: Optional[str] = None


@dataclass
class Job:
    source: Reference
    target: Reference
    also: tuple = ()
    to_ollama: bool = False


@dataclass
class MirrorPlan:
    source: Endpoint
    target: Endpoint
    models: list[dict]
    concurrency: int = 2
    blob_concurrency: int = 4
    path: str = ""
    also: tuple = ()                  # twin formats published beside every model (modelpack, docker)
    to_ollama: bool = False           # ModelPack / Docker model sources become Ollama models at the target
    twin_name: str = "{repository}:{tag}-{format}"


def _endpoint(obj: Any, what: str, base_dir: str) -> Endpoint:
    if not isinstance(obj, dict) or not isinstance(obj.get("registry"), str):
        raise InvalidInput(f"mirror plan: [{what}] needs registry = \"host[:port]\"")
    unknown = set(obj) - _ENDPOINT_KEYS
    if unknown:
        raise InvalidInput(f"mirror plan: [{what}] has unknown keys {sorted(unknown)}; known: {sorted(_ENDPOINT_KEYS)}")
    ep = Endpoint(**{k: v for k, v in obj.items()})
    for k in ("ca_file", "cert_file", "key_file", "ollama_key"):
        v = getattr(ep, k)
        if v and not os.path.isabs(v):
            setattr(ep, k, os.path.join(base_dir, v))
    return ep


def load_plan(path: str) -> MirrorPlan:
    """Read and check a plan file (``.toml``, or ``.yaml``/``.yml`` with PyYAML)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        from .errors import NotFound
        raise NotFound(f"{path}: no such plan file") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise InvalidInput(f"{path}: YAML plans need PyYAML (pip install pyyaml), or write the plan in TOML") from None
        try:
            obj = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise InvalidInput(f"{path}: not valid YAML: {e}") from None
    else:
        from .configfile import parse_toml
        obj = parse_toml(raw, path)
    if not isinstance(obj, dict):
        raise InvalidInput(f"{path}: a plan is a table with [source], [target] and [[models]]")
    base = os.path.dirname(os.path.abspath(path))
    source = _endpoint(obj.get("source"), "source", base)
    target = _endpoint(obj.get("target"), "target", base)
    models = obj.get("models")
    if not isinstance(models, list) or not models:
        raise InvalidInput(f"{path}: list the models to mirror ([[models]] name = \"...\")")
    norm = []
    for i, m in enumerate(models):
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            raise InvalidInput(f"{path}: models[{i}] needs name = \"repository[:tag]\"")
        tags = m.get("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput(f"{path}: models[{i}].tags must be a list of strings")
        unknown = set(m) - {"name", "tags", "target", "also", "to_ollama"}
        if unknown:
            raise InvalidInput(f"{path}: models[{i}] has unknown keys {sorted(unknown)}")
        if not isinstance(m.get("to_ollama", False), bool):
            raise InvalidInput(f"{path}: models[{i}].to_ollama must be true or false")
        norm.append({"name": m["name"], "tags": tags, "target": m.get("target"),
                     "also": _also(m["also"], f"{path}: models[{i}].also") if "also" in m else None,
                     "to_ollama": m.get("to_ollama")})
    conc = obj.get("concurrency", 2)
    if not isinstance(conc, int) or not 1 <= conc <= 64:
        raise InvalidInput(f"{path}: concurrency must be an integer from 1 to 64")
    twin_name = obj.get("twin_name", MirrorPlan.twin_name)
    if not isinstance(twin_name, str) or "{format}" not in twin_name:
        raise InvalidInput(f"{path}: twin_name is a pattern with {{repository}}, {{tag}} and {{format}}")
    if not isinstance(obj.get("to_ollama", False), bool):
        raise InvalidInput(f"{path}: to_ollama must be true or false")
    return MirrorPlan(source, target, norm, conc, int(obj.get("blob_concurrency", 4)), path,
                      also=_also(obj.get("also", []), f"{path}: also"), twin_name=twin_name,
                      to_ollama=bool(obj.get("to_ollama", False)))


def _also(value: Any, where: str) -> tuple:
    """Twin formats: ``"modelpack"`` or a list of ``modelpack``/``docker``."""
    from .twin import FORMATS
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) and x in FORMATS for x in items):
        raise InvalidInput(f"{where} must list twin formats out of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def _jobs(plan: MirrorPlan, src_store) -> list:
    """One Job per model:tag; a model whose tags cannot be listed becomes a failure entry instead."""
    jobs: list = []
    for m in plan.models:
        try:
            jobs.extend(_model_jobs(plan, src_store, m))
        except OllamaOCIError as e:
            jobs.append({"source": f"{plan.source.registry}/{m['name']}", "target": plan.target.registry,
                         "status": "failed", "error": str(e), "exit_code": e.exit_code, "seconds": 0.0})
    return jobs


def _model_jobs(plan: MirrorPlan, src_store, m: dict) -> list[Job]:
    jobs = []
    name, tags = m["name"], list(m["tags"])
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, t = name.rpartition(":")
        tags = tags or [t]
    if "/" not in name:
        ns = plan.source.namespace or ("library" if plan.source.registry in OLLAMA_REGISTRY_HOSTS else "")
        repo = f"{ns}/{name}" if ns else name
    else:
        repo = name
    if tags == ["*"]:
        if plan.source.registry in OLLAMA_REGISTRY_HOSTS:
            raise InvalidInput(f"{repo}: {plan.source.registry} cannot list tags; name them in the plan")
        tags = src_store.list_tags(repo)
    if m["target"]:
        trepo = m["target"]
    elif plan.target.namespace:
        trepo = f"{plan.target.namespace}/{repo.rsplit('/', 1)[-1]}"
    else:
        trepo = repo
    also = m["also"] if m.get("also") is not None else plan.also
    to_ollama = m["to_ollama"] if m.get("to_ollama") is not None else plan.to_ollama
    for t in tags or ["latest"]:
        jobs.append(Job(parse_reference(f"{plan.source.registry}/{repo}:{t}"),
                        parse_reference(f"{plan.target.registry}/{trepo}:{t}"), also, to_ollama))
    return jobs


def _store_for(ep: Endpoint, retries: int):
    from .stores.registry import RegistryStore
    from .transport import TransportOptions
    return RegistryStore(ep.registry, TransportOptions(
        plain_http=ep.plain_http, insecure=ep.insecure, ca_file=ep.ca_file, cert_file=ep.cert_file,
        key_file=ep.key_file, ollama_key=ep.ollama_key, ollama_auth=True if ep.ollama_key else None,
        max_retries=retries))


def run_plan(plan: MirrorPlan, *, dry_run: bool = False, retries: int = 5,
             on_result: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """Run every job of the plan; returns one report dict per model:tag (never raises for one model)."""
    from .engine import copy, plan_copy
    src = _store_for(plan.source, retries)
    dst = _store_for(plan.target, retries)
    jobs = _jobs(plan, src)

    def one(job) -> dict:
        if isinstance(job, dict):  # a model that failed before it had jobs
            if on_result is not None:
                on_result(job)
            return job
        t0 = time.monotonic()
        rep: dict[str, Any] = {"source": str(job.source), "target": str(job.target)}
        try:
            if dry_run:
                r = plan_copy(src, job.source, dst, job.target)
                missing = [b for b in r.blobs if b.action == "missing"]
                if r.unchanged:
                    rep.update(status="unchanged", bytes_to_transfer=0)
                else:
                    rep.update(status="would-copy", blobs_to_transfer=len(missing),
                               bytes_to_transfer=sum(b.size for b in missing))
                rep["manifest_digest"] = str(r.manifest_digest)
            elif job.to_ollama:   # a ModelPack / Docker model artifact becomes an Ollama model (weights mounted)
                from .bridge import pull_any
                from .engine import CopyOptions
                r = pull_any(src, job.source, dst, job.target, CopyOptions(concurrency=plan.blob_concurrency))
                rep.update(status="unchanged" if r.unchanged else "copied", manifest_digest=str(r.manifest_digest),
                           bytes_transferred=r.bytes_transferred, blobs=[b.to_json() for b in r.blobs])
            else:
                r = copy(src, job.source, dst, job.target, concurrency=plan.blob_concurrency)
                rep.update(status="unchanged" if r.unchanged else "copied", manifest_digest=str(r.manifest_digest),
                           bytes_transferred=r.bytes_transferred, blobs=[b.to_json() for b in r.blobs])
            if job.also:     # twins of the mirrored model, made from the target's copy: its blobs are there
                from .twin import make_twins, publish_twin, twin_reference
                trefs = [parse_reference(twin_reference(str(job.target), fmt, plan.twin_name)) for fmt in job.also]
                if dry_run:
                    rep["twins"] = [{"format": fmt, "target": str(t), "status": "would-publish"}
                                    for fmt, t in zip(job.also, trefs)]
                else:
                    made = make_twins(dst, job.target, job.also, name=job.target.repository.rsplit("/", 1)[-1])
                    rep["twins"] = [dict(tw.to_json(), target=str(t),
                                         bytes_transferred=publish_twin(tw, dst, job.target, dst, t).bytes_transferred)
                                    for tw, t in zip(made, trefs)]
        except OllamaOCIError as e:
            rep.update(status="failed", error=str(e), exit_code=e.exit_code)
        except Exception as e:  # one model's bug must not stop the others; reported as internal
            rep.update(status="failed", error=f"{type(e).__name__}: {e}", exit_code=EXIT_INTERNAL)
        rep["seconds"] = round(time.monotonic() - t0, 3)
        if on_result is not None:
            on_result(rep)
        return rep

    ex = ThreadPoolExecutor(max_workers=plan.concurrency)
    try:
        results = list(ex.map(one, jobs))
    except KeyboardInterrupt:
        # Ctrl-C lands in this thread: every copy under way stops between two blocks
        from .cancel import INTERRUPTED
        INTERRUPTED.set()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return results

"""Push and pull of the real Gemma 3 270M through a local Docker distribution, against peers.

    python benchmarks/bench_registry.py   # BENCH_ROUNDS=8, BENCH_BIG_GIB=1, BENCH_HUGE_GIB=4 (0 skips one)

Same run, same registry (Debian docker-registry on 127.0.0.1, plain HTTP, fresh storage
for each push), same file.  Every command runs as its own process; wall time and that
process's peak RSS come from wait4().  ollama-oci and oras-py run from one virtual
environment into which pip installed them (common.installed), as deploy/Dockerfile installs
ollama-oci.  Peers:
  push: curl -T (one streamed PUT of the model blob, its upload session opened untimed: the
        network/registry ceiling), skopeo copy (from an OCI layout of the same artifact), oras-py
        push (library), and curl doing the whole blob upload (POST for the session, then PUT).
  pull: curl GET + sha256sum of the model blob, skopeo copy (to an OCI layout), oras-py pull.
Then the push and pull of a generated 1 GiB model against curl (pull: curl GET + openssl dgst
-sha256, where ours also fsyncs), and the peak RSS of a push and a pull at 4 GiB.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from common import gemma, installed, make_big_gguf  # noqa: E402
from registry_env import Registry  # noqa: E402


def run(cmd, env=None, shell=False) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed: {p.stderr.read().decode()[-500:]}")
    return wall, ru.ru_maxrss / 1024


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
BIG_GIB = float(os.environ.get("BENCH_BIG_GIB", "1"))  # 0: skip the larger model
HUGE_GIB = float(os.environ.get("BENCH_HUGE_GIB", "4"))  # peak RSS at this size (0: skip)


def best(n, fn):
    res = [fn() for _ in range(n)]
    return min(res, key=lambda r: r[0])


def interleaved(rounds, named):
    """Run every tool once per round, round-robin, each after a `sync` (so one tool's dirty pages do
    not slow the next); return {name: ((best wall, median wall, peak RSS) or None, error text)}."""
    out = {name: [] for name, _ in named}
    errors = {}
    for k in range(rounds):
        order = named[k % len(named):] + named[:k % len(named)]  # rotate: no tool always goes first
        for name, fn in order:
            if name in errors:
                continue
            subprocess.run(["sync"])
            try:
                out[name].append(fn())
            except Exception as e:  # a peer that cannot do it is reported, not hidden
                errors[name] = str(e)[:120]
    res = {}
    for name, v in out.items():
        if not v:
            res[name] = (None, errors.get(name))
            continue
        walls = sorted(w for w, _ in v)
        res[name] = ((walls[0], statistics.median(walls), max(r for _, r in v)), errors.get(name))
    return res


def report(title, results, size):
    """One row per tool: best and median wall time, throughput, peak RSS, and both ratios to the first row."""
    print(title)
    print(f"  {'':<34} {'best':>7}    {'median':>7}    {'MB/s':>7}  {'peak RSS':>8}   vs first row: best, median")
    base = None
    for name, (res, err) in results.items():
        if res is None:
            print(f"  {name:<34} failed: {err}")
            continue
        wall, med, rss = res
        base = base or (wall, med)
        print(f"  {name:<34} {wall:7.3f} s  {med:7.3f} s  {size / wall / 1e6:7.1f}  {rss:7.1f} MB   "
              f"{base[0] / wall:5.2f}x  {base[1] / med:5.2f}x")


def main() -> None:
    src = gemma()
    work = tempfile.mkdtemp(prefix="bench-registry-")
    py, cli = installed()  # ollama-oci and oras-py as pip installs them, in their own venv
    try:
        models = os.path.join(work, "models")
        subprocess.run([cli, "pack", src, "--name", "gemma3:270m", "--models-dir", models,
                        "--oci-layout", os.path.join(work, "layout"), "-q"], check=True)
        # an OCI-typed copy of the artifact for skopeo (it refuses Docker schema 2 with ollama layers)
        reg0 = Registry(os.path.join(work, "reg0")).start()
        subprocess.run([cli, "push", "gemma3:270m", f"{reg0.host}/x/g:1", "--format", "oci",
                        "--plain-http", "--models-dir", models, "-q"], check=True)
        subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg0.host}/x/g:1",
                        f"oci:{work}/skopeo-src:g"], check=True, capture_output=True)
        reg0.kill()
        model_digest = "sha256:a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
        blob = os.path.join(models, "blobs", model_digest.replace(":", "-"))
        size = os.path.getsize(blob)

        class _Fresh(Registry):
            def kill(self):  # a registry used once: its storage goes with it
                super().kill()
                shutil.rmtree(self.workdir, ignore_errors=True)

        def fresh_registry(tag):
            d = os.path.join(work, f"reg-{tag}-{time.monotonic_ns()}")
            return _Fresh(d).start()

        def pusher_ours(store, name):
            def push():
                r = fresh_registry("ours")
                try:
                    return run([cli, "push", name, f"{r.host}/library/{name}", "--plain-http", "--models-dir",
                                store, "-q"])
                finally:
                    r.kill()
            return push

        def pusher_curl(path, digest):
            def push():
                r = fresh_registry("curl")
                try:
                    # POST for an upload session (not timed), then one streamed PUT of the blob (timed)
                    loc = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "POST",
                                          f"http://{r.host}/v2/library/x/blobs/uploads/"],
                                         capture_output=True, text=True, check=True).stdout
                    location = next(l.split(": ", 1)[1].strip() for l in loc.splitlines()
                                    if l.lower().startswith("location:"))
                    sep = "&" if "?" in location else "?"
                    return run(["curl", "-s", "-f", "-T", path, "-X", "PUT", f"{location}{sep}digest={digest}"])
                finally:
                    r.kill()
            return push

        def push_curl_whole():
            # the same upload done completely by curl: the POST for a session, then the PUT, both timed
            r = fresh_registry("curl2")
            try:
                script = ('loc=$(curl -s -f -D - -o /dev/null -X POST "$1" | tr -d "\\r" | sed -n "s/^[Ll]ocation: //p") '
                          '&& curl -s -f -T "$2" -X PUT "$loc&digest=$3"')
                return run(["sh", "-c", script, "sh", f"http://{r.host}/v2/library/x/blobs/uploads/", blob,
                            model_digest])
            finally:
                r.kill()

        def puller_ours(host, ref):
            def pull():
                d = os.path.join(work, f"pulled-{time.monotonic_ns()}")
                try:
                    return run([cli, "pull", f"{host}/{ref}", "--plain-http", "--models-dir", d, "-q"])
                finally:
                    shutil.rmtree(d, ignore_errors=True)
            return pull

        def puller_curl(host, repo, digest, hasher="openssl dgst -sha256"):
            def pull():
                out = os.path.join(work, "curl.bin")
                try:
                    return run(f"curl -s -f -o {out} http://{host}/v2/{repo}/blobs/{digest} && {hasher} {out}",
                               shell=True)
                finally:
                    os.unlink(out)
            return pull

        push_ours = pusher_ours(models, "gemma3:270m")
        push_curl = pusher_curl(blob, model_digest)

        def push_skopeo():
            r = fresh_registry("skopeo")
            try:
                return run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{work}/skopeo-src:g",
                            f"docker://{r.host}/library/gemma3:270m"])
            finally:
                r.kill()

        def push_oras():
            r = fresh_registry("oras")
            try:
                code = ("import oras.client,sys; c=oras.client.OrasClient(hostname=sys.argv[1], insecure=True); "
                        "c.push(files=[sys.argv[2]], target=sys.argv[1]+'/library/gemma3:270m', disable_path_validation=True)")
                return run([py, "-c", code, r.host, blob])
            finally:
                r.kill()

        print(f"blob: {size:,} bytes (Gemma 3 270M Q4_K_M)\n")
        report(f"PUSH (fresh registry storage each run; {ROUNDS} interleaved rounds)", interleaved(ROUNDS, [
            ("curl -T (model blob only)", push_curl), ("ollama-oci push (whole model)", push_ours),
            ("skopeo copy oci:->docker://", push_skopeo), ("oras-py push (model blob)", push_oras),
            ("curl POST + curl -T (model blob)", push_curl_whole)]), size)

        if BIG_GIB > 0:
            # a larger model (generated, sparse on disk): what the fixed start-up cost weighs there
            big = os.path.join(work, "big.gguf")
            make_big_gguf(big, int(BIG_GIB * (1 << 30)))
            big_models = os.path.join(work, "big-models")
            subprocess.run([cli, "pack", big, "--name", "big:1", "--models-dir", big_models, "-q"], check=True,
                           stdout=subprocess.DEVNULL)
            blobs_dir = os.path.join(big_models, "blobs")
            big_blob = max((os.path.join(blobs_dir, f) for f in os.listdir(blobs_dir)), key=os.path.getsize)
            big_digest = os.path.basename(big_blob).replace("-", ":", 1)
            print()
            report(f"PUSH of a generated {BIG_GIB:g} GiB model (3 interleaved rounds)", interleaved(3, [
                ("curl -T (model blob only)", pusher_curl(big_blob, big_digest)),
                ("ollama-oci push (whole model)", pusher_ours(big_models, "big:1"))]), os.path.getsize(big_blob))
            rb = fresh_registry("bigpull")
            subprocess.run([cli, "push", "big:1", f"{rb.host}/library/big:1", "--plain-http", "--models-dir",
                            big_models, "-q"], check=True)
            print()
            report(f"PULL of the {BIG_GIB:g} GiB model (3 interleaved rounds)", interleaved(3, [
                ("curl GET + openssl dgst -sha256", puller_curl(rb.host, "library/big", big_digest)),
                ("ollama-oci pull (verified, fsynced)", puller_ours(rb.host, "library/big:1"))]),
                os.path.getsize(big_blob))
            rb.kill()
            shutil.rmtree(big_models, ignore_errors=True)
            os.unlink(big)
        if HUGE_GIB > 0:
            # peak memory must not grow with the model: one push and one pull of a larger one
            huge = os.path.join(work, "huge.gguf")
            make_big_gguf(huge, int(HUGE_GIB * (1 << 30)))
            huge_models = os.path.join(work, "huge-models")
            subprocess.run([cli, "pack", huge, "--name", "huge:1", "--models-dir", huge_models, "-q"], check=True,
                           stdout=subprocess.DEVNULL)
            rh = fresh_registry("huge")
            hsize = os.path.getsize(huge)
            w, rss = run([cli, "push", "huge:1", f"{rh.host}/library/huge:1", "--plain-http", "--models-dir",
                          huge_models, "-q"])
            print(f"\n{HUGE_GIB:g} GiB model: push {w:.2f} s ({hsize / w / 1e6:.0f} MB/s), peak RSS {rss:.1f} MB")
            shutil.rmtree(huge_models, ignore_errors=True)
            os.unlink(huge)
            w, rss = puller_ours(rh.host, "library/huge:1")()
            print(f"{HUGE_GIB:g} GiB model: pull {w:.2f} s ({hsize / w / 1e6:.0f} MB/s), peak RSS {rss:.1f} MB")
            rh.kill()

        # pull: one registry holding the model
        r = fresh_registry("pull")
        subprocess.run([cli, "push", "gemma3:270m", f"{r.host}/library/gemma3:270m",
                        "--plain-http", "--models-dir", models, "-q"], check=True)
        subprocess.run([cli, "push", "gemma3:270m", f"{r.host}/x/g:oci", "--format", "oci",
                        "--plain-http", "--models-dir", models, "-q"], check=True)

        pull_ours = puller_ours(r.host, "library/gemma3:270m")

        pull_curl = puller_curl(r.host, "library/gemma3", model_digest, "sha256sum")

        def pull_skopeo():
            d = os.path.join(work, f"sk-{time.monotonic_ns()}")
            try:
                return run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{r.host}/x/g:oci", f"oci:{d}:g"])
            finally:
                shutil.rmtree(d, ignore_errors=True)

        def pull_oras():
            d = os.path.join(work, f"oras-{time.monotonic_ns()}")
            code = ("import oras.client,sys; c=oras.client.OrasClient(hostname=sys.argv[1], insecure=True); "
                    "c.pull(target=sys.argv[1]+'/library/gemma3:270m', outdir=sys.argv[2])")
            try:
                return run([py, "-c", code, r.host, d])
            finally:
                shutil.rmtree(d, ignore_errors=True)

        print()
        report(f"PULL (into an empty destination; {ROUNDS} interleaved rounds)", interleaved(ROUNDS, [
            ("curl GET + sha256sum (model blob)", pull_curl), ("ollama-oci pull (whole model)", pull_ours),
            ("skopeo copy docker://->oci:", pull_skopeo), ("oras-py pull (no verification)", pull_oras)]), size)

        # the library call, in-process and warm, alternated with curl on fresh registries:
        # the transfer itself, without interpreter start-up and imports
        from ollama_oci import OllamaStore, RegistryStore, TransportOptions, parse_name, parse_reference
        from ollama_oci import copy as oci_copy
        lib, cur = [], []

        def lib_push():
            rr = fresh_registry("lib")
            try:
                t = time.perf_counter()
                oci_copy(OllamaStore(models), parse_name("gemma3:270m"),
                         RegistryStore(rr.host, TransportOptions(plain_http=True)),
                         parse_reference(f"{rr.host}/library/gemma3:270m"))
                lib.append(time.perf_counter() - t)
            finally:
                rr.kill()
        for k in range(ROUNDS):
            for fn in ((lib_push, lambda: cur.append(push_curl()[0])) if k % 2 == 0 else
                       (lambda: cur.append(push_curl()[0]), lib_push)):
                subprocess.run(["sync"])
                fn()
        ml, mc = statistics.median(lib), statistics.median(cur)
        print(f"\nPUSH in-process (library copy(), warm; {ROUNDS} rounds alternated with curl -T): best "
              f"{min(lib):.3f} s vs {min(cur):.3f} s ({min(cur) / min(lib):.2f}x curl), median {ml:.3f} s vs "
              f"{mc:.3f} s ({mc / ml:.2f}x curl)")

        def noop_push():
            return run([cli, "push", "gemma3:270m", f"{r.host}/library/gemma3:270m",
                        "--plain-http", "--models-dir", models, "-q"])
        d = os.path.join(work, "again")
        subprocess.run([cli, "pull", f"{r.host}/library/gemma3:270m", "--plain-http",
                        "--models-dir", d, "-q"], check=True)
        w1, _ = best(3, noop_push)
        w2, _ = best(3, lambda: run([cli, "pull", f"{r.host}/library/gemma3:270m",
                                     "--plain-http", "--models-dir", d, "-q"]))
        print(f"\nunchanged model: second push {w1:.3f} s, second pull {w2:.3f} s (no blob bytes move)")
        r.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

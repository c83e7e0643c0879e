"""How honest the time left on the progress line is: a pull over a throttled link, the estimate the CLI
would show at each tenth of the way against the time the pull then really took.

    python benchmarks/bench_eta.py        # BENCH_RATE=40e6 BENCH_LINK=120e6 BENCH_CONCURRENCY=4

A real Docker distribution on 127.0.0.1 behind the tests' loopback proxy (tests/registry_env.Front),
which paces blob responses two ways in turn: a link of BENCH_LINK bytes/s that all connections share
(a slow uplink, the common case), and BENCH_RATE bytes/s per connection (a server that limits each
stream). The Gemma model is pulled into an empty store with the library's copy, its ProgressEvents
fed to the CLI's own Progress estimator (rate over the last 5 s, the whole plan announced up front).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from common import gemma  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "40e6"))
LINK = float(os.environ.get("BENCH_LINK", "120e6"))
CONC = int(os.environ.get("BENCH_CONCURRENCY", "4"))


def main() -> None:
    from registry_env import Front, Registry
    from ollama_oci import OCILayout, OllamaStore, Recipe, pack, parse_name
    from ollama_oci.cli.common import Progress
    from ollama_oci.engine import CopyOptions, copy
    from ollama_oci.reference import parse_reference
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions
    work = tempfile.mkdtemp(prefix="bench-eta-")
    reg = Registry(os.path.join(work, "reg")).start()
    front = Front(reg)
    try:
        layout = OCILayout(os.path.join(work, "src"))
        pack(Recipe(files=[gemma()]), "gemma3:270m", [layout])
        remote = RegistryStore(front.addr, TransportOptions(plain_http=True))
        ref = parse_reference(f"{front.addr}/ml/gemma3:270m")
        copy(layout, parse_name("gemma3:270m"), remote, ref)
        for label, setup in ((f"a {LINK / 1e6:.0f} MB/s link shared by {CONC} connections", "link"),
                             (f"{CONC} connections paced at {RATE / 1e6:.0f} MB/s each", "conn")):
            front.throttle, front.link_rate = (None, LINK) if setup == "link" else (RATE, None)
            est = Progress(False)          # the CLI's estimator, drawing nothing
            samples = []                   # (t, done, total, seconds left as the line would say)

            def on_event(ev, est=est, samples=samples):
                with est.lock:
                    est.done[ev.digest] = max(ev.done, 0)
                    est.total[ev.digest] = ev.total
                    now = time.monotonic()
                    done, total = sum(est.done.values()), sum(est.total.values())
                    rate = est._rate("", now, done)
                    samples.append((now, done, total, (total - done) / rate if rate > 0 else None))
            models = os.path.join(work, f"models-{setup}")
            t0 = time.monotonic()
            copy(remote, ref, OllamaStore(models), parse_name("gemma3:270m"),
                 CopyOptions(concurrency=CONC, progress=on_event))
            t_end = time.monotonic()
            print(f"\npull of {samples[-1][2] / 1e6:.1f} MB over {label}: {t_end - t0:.2f} s\n")
            print("| progress | time left shown | time it took | shown / actual |")
            print("|---|---|---|---|")
            for frac in (0.1, 0.25, 0.5, 0.75, 0.9):
                s = next((x for x in samples if x[2] and x[1] >= frac * x[2] and x[3] is not None), None)
                if s is None:
                    continue
                actual = t_end - s[0]
                print(f"| {int(frac * 100)}% | {s[3]:.1f} s | {actual:.1f} s | {s[3] / actual:.2f}x |")
    finally:
        front.close()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()

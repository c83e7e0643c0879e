"""``ollama-oci serve`` against Docker distribution serving the same blob to the same client.

    python benchmarks/bench_gateway.py   # BENCH_ROUNDS=5, BENCH_GIB=1, BENCH_CLIENTS=50

One model with a BENCH_GIB weights blob (real bytes, not a sparse file) is in an OCI layout and,
copied by ollama-oci, in a local Debian docker-registry (filesystem storage, plain HTTP, access log
off; the gateway's access log is off too). The client is the same everywhere: 16 curl processes
fetching the blob's 16 byte ranges in parallel (what stock ``ollama pull`` does for a blob of
1.6 GB and more), all bytes to /dev/null; the time is from the first start to the last exit.

Rows (rounds interleaved, best and median):
  local:          distribution vs the gateway serving the OCI layout (sendfile);
  pull-through:   distribution direct vs the gateway in front of it with an empty cache (each round
                  a fresh cache directory), then the same with the blob cached;
  stream-through: distribution direct vs the gateway in front of it without a cache;
  start-up:       process start to the first 200 on /healthz (gateway) or /v2/ (distribution);
  memory:         the gateway's peak RSS (VmHWM) while BENCH_CLIENTS curl clients each GET the whole
                  blob at once, from the layout and through the cache, at BENCH_GIB and at a quarter
                  of it (flat in blob size?).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

import urllib3  # noqa: E402

from registry_env import Registry, free_port  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
#: a second run with the upstream registry behind a link of this rate (a network namespace and a
#: tbf qdisc; needs root and iproute2); "" skips it
LINK = os.environ.get("BENCH_LINK", "2gbit")
GIB = float(os.environ.get("BENCH_GIB", "1"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "50"))
PARTS = 16


def wait_ok(url: str, proc=None, timeout: float = 30) -> float:
    http = urllib3.PoolManager(retries=False)
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited {proc.returncode}")
        try:
            if http.request("GET", url, timeout=1).status == 200:
                return time.perf_counter() - t
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{url} did not answer")


class Gateway:
    def __init__(self, work: str, *args: str):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(dir=work, prefix="gw-")
        t = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "ollama_oci.cli", "serve", "--listen", self.host,
                                      "--data-dir", self.data, "--access-log", "", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        wait_ok(f"http://{self.host}/healthz", self.proc)
        self.startup = time.perf_counter() - t

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        shutil.rmtree(self.data, ignore_errors=True)


def ranged(host: str, path: str, size: int) -> float:
    """16 parallel ranged GETs of the whole blob; seconds from first start to last exit."""
    part = -(-size // PARTS)
    t = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", "-r", f"{s}-{min(s + part, size) - 1}",
                               f"http://{host}{path}"]) for s in range(0, size, part)]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"curl failed on {host}{path}")
    return time.perf_counter() - t


def whole(host: str, path: str, n: int) -> float:
    t = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", f"http://{host}{path}"]) for _ in range(n)]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"curl failed on {host}{path}")
    return time.perf_counter() - t


def summary(times: list[float], size: int) -> tuple[float, float]:
    return min(times), statistics.median(times)


def make_model(work: str, nbytes: int, reg: Registry, name: str) -> tuple[str, str, int]:
    """A model whose weights are ``nbytes`` of real data: in an OCI layout and in the registry."""
    from ollama_oci import OCILayout, Recipe, copy, pack, parse_name
    from ollama_oci.reference import parse_reference
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions
    from gguf_factory import make_big_gguf
    sparse = os.path.join(work, f"{name}-sparse.gguf")
    make_big_gguf(sparse, nbytes)
    gguf = os.path.join(work, f"{name}.gguf")
    with open(sparse, "rb") as src, open(gguf, "wb") as dst:   # real bytes, as a registry stores them
        block = os.urandom(1 << 20)
        head = src.read(4096)
        dst.write(head)
        left = os.path.getsize(sparse) - len(head)
        while left > 0:
            n = min(len(block), left)
            dst.write(block[:n])
            left -= n
    os.unlink(sparse)
    layout = OCILayout(os.path.join(work, "layout"))
    res = pack(Recipe(files=[gguf]), f"bench/{name}:1", [layout], link_mode="hardlink")
    copy(layout, parse_name(f"bench/{name}:1"), RegistryStore(reg.host, TransportOptions(plain_http=True)),
         parse_reference(f"{reg.host}/bench/{name}:1"))
    w = res.manifest.layers[0]
    return f"/v2/bench/{name}/blobs/{w.digest}", os.path.join(work, "layout"), w.size


def warm_page_cache(work: str, nbytes: int) -> None:
    """Write and delete ``nbytes``: on this VM, page-cache pages the guest has never touched cost
    ~0.45 GB/s to fill the first time (4-5 GB/s once backed), which would otherwise be charged to
    whichever server writes first (the gateway's cache). A long-running host has no such pages."""
    p = os.path.join(work, "warm")
    block = os.urandom(1 << 20)
    with open(p, "wb") as f:
        for _ in range(nbytes >> 20):
            f.write(block)
    os.unlink(p)


class LinkedRegistry(Registry):
    """A docker-registry in its own network namespace, reached over a veth pair shaped to LINK."""

    NS, ADDR, PEER = "ollama-oci-bench", "10.77.0.2", "10.77.0.1"

    @classmethod
    def available(cls) -> bool:
        return bool(LINK) and os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None

    def __init__(self, workdir: str):
        super().__init__(workdir, bind=self.ADDR, port=5000)

    def start(self):
        ns, sh = self.NS, lambda *a: subprocess.run(a, check=True)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "oobench-h", "type", "veth", "peer", "name", "oobench-u")
        sh("ip", "link", "set", "oobench-u", "netns", ns)
        sh("ip", "addr", "add", f"{self.PEER}/24", "dev", "oobench-h")
        sh("ip", "link", "set", "oobench-h", "up")
        for cmd in (["ip", "addr", "add", f"{self.ADDR}/24", "dev", "oobench-u"], ["ip", "link", "set", "oobench-u", "up"],
                    ["ip", "link", "set", "lo", "up"],
                    ["tc", "qdisc", "add", "dev", "oobench-u", "root", "tbf", "rate", LINK, "burst", "4mb",
                     "latency", "50ms"]):
            sh("ip", "netns", "exec", ns, *cmd)
        sh("tc", "qdisc", "add", "dev", "oobench-h", "root", "tbf", "rate", LINK, "burst", "4mb", "latency", "50ms")
        cfg = os.path.join(self.workdir, "config.yml")
        with open(cfg, "w") as f:
            f.write(self.config())
        log = open(os.path.join(self.workdir, "registry.log"), "ab")
        from registry_env import REGISTRY_BIN
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, REGISTRY_BIN, "serve", cfg], stdout=log, stderr=log,
                                     start_new_session=True)
        wait_ok(f"http://{self.host}/v2/")
        return self

    def kill(self) -> None:
        super().kill()
        subprocess.run(["ip", "netns", "del", self.NS], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", "oobench-h"], stderr=subprocess.DEVNULL)


def serving_table(work: str, reg, path: str, layout: str, size: int, title: str) -> None:
    local = Gateway(work, "--from", f"oci:{layout}")
    nocache = Gateway(work, "--from", reg.host, "--plain-http")
    rows: dict[str, list[float]] = {k: [] for k in ("dist", "local", "cold", "warm", "stream")}
    for _ in range(ROUNDS):
        rows["dist"].append(ranged(reg.host, path, size))
        rows["local"].append(ranged(local.host, path, size))
        cold = Gateway(work, "--from", reg.host, "--plain-http", "--cache-size", "100GB")
        rows["cold"].append(ranged(cold.host, path, size))
        rows["warm"].append(ranged(cold.host, path, size))
        cold.stop()
        rows["stream"].append(ranged(nocache.host, path, size))
    nocache.stop()
    local.stop()
    d_best, d_med = summary(rows["dist"], size)
    print(f"\n{title}\n")
    print("| serving the blob | best | median | throughput (best) | vs distribution (best / median) |")
    print("|---|---|---|---|---|")
    for key, label in (("dist", "Docker distribution, direct"), ("local", "gateway, OCI layout (sendfile)"),
                       ("cold", "gateway pull-through, empty cache"), ("warm", "gateway pull-through, cached"),
                       ("stream", "gateway stream-through, no cache")):
        b, m = summary(rows[key], size)
        print(f"| {label} | {b:.3f} s | {m:.3f} s | {size / b / 1e9:.2f} GB/s | {d_best / b:.2f}x / {d_med / m:.2f}x |",
              flush=True)


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-gateway-", dir=os.environ.get("BENCH_DIR"))
    reg = Registry(os.path.join(work, "registry"))
    try:
        t = time.perf_counter()
        reg.start()
        wait_ok(f"http://{reg.host}/v2/")
        reg_start = time.perf_counter() - t
        size_big = int(GIB * (1 << 30))
        path, layout, size = make_model(work, size_big, reg, "big")
        small_path, _, small_size = make_model(work, size_big // 4, reg, "quarter")
        warm_page_cache(work, 3 * size_big)
        print(f"blob: {size / 1e9:.2f} GB; {ROUNDS} rounds; client: {PARTS} parallel ranged curl GETs", flush=True)

        serving_table(work, reg, path, layout, size, "Upstream on loopback (CPU-bound: 2 cores for everything)")
        startups = []
        for _ in range(ROUNDS):
            g = Gateway(work, "--from", f"oci:{layout}")
            startups.append(g.startup)
            g.stop()
        print(f"\nstart-up to first 200: distribution {reg_start * 1000:.0f} ms; gateway median "
              f"{statistics.median(startups) * 1000:.0f} ms (min {min(startups) * 1000:.0f} ms)")
        print(f"\n| {CLIENTS} clients GET the whole blob at once | blob | wall | gateway peak RSS |")
        print("|---|---|---|---|")
        for p, n in ((small_path, small_size), (path, size)):
            g = Gateway(work, "--from", f"oci:{layout}")
            wall = whole(g.host, p, CLIENTS)
            print(f"| OCI layout (sendfile) | {n / 1e9:.2f} GB | {wall:.2f} s | {g.peak_rss_mib():.1f} MiB |", flush=True)
            g.stop()
            g = Gateway(work, "--from", reg.host, "--plain-http", "--cache-size", "100GB")
            wall = whole(g.host, p, CLIENTS)
            print(f"| pull-through, empty cache | {n / 1e9:.2f} GB | {wall:.2f} s | {g.peak_rss_mib():.1f} MiB |", flush=True)
            g.stop()
            g = Gateway(work, "--from", reg.host, "--plain-http")
            wall = whole(g.host, p, CLIENTS)
            print(f"| stream-through, no cache | {n / 1e9:.2f} GB | {wall:.2f} s | {g.peak_rss_mib():.1f} MiB |", flush=True)
            g.stop()
        if LinkedRegistry.available():
            far = LinkedRegistry(os.path.join(work, "far")).start()
            try:
                fpath, flayout, fsize = make_model(work, size_big, far, "far")
                serving_table(work, far, fpath, flayout, fsize,
                              f"Upstream behind a {LINK}/s link (a network namespace; clients and gateway local)")
            finally:
                far.kill()
    finally:
        reg.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Faults on the way to and from a real registry: kills, corruption, throttling, 429/503, resets,
redirects to object storage, and ollama's Ed25519 token signing.

The injected faults come from tests/registry_env.Front, a proxy in front of the real
docker-registry: it stands for what proxies, cloud registries and object storage do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY, run_cli
from ollama_oci import OllamaStore, Recipe, pack


def _cli(*args):
    return [sys.executable, "-m", "ollama_oci.cli", *map(str, args)]


def _push_gemma(tmp_path, gemma_path, host):
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[gemma_path]), "gemma3:270m", [store])
    run_cli("push", "gemma3:270m", f"{host}/library/gemma3:270m", "--plain-http", "--models-dir", store.root,
            check=0)
    return store, res


@pytest.mark.slow
def test_sigkill_half_way_through_a_pull_then_resume(tmp_path, registry_factory, gemma_path):
    reg, front = registry_factory("plain", front=True)
    _, res = _push_gemma(tmp_path, gemma_path, reg.host)
    model = res.manifest.layers[0]
    models = tmp_path / "pulled"
    front.throttle = 40e6  # 40 MB/s through the proxy: the pull takes seconds, not a fraction of one
    p = subprocess.Popen(_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models,
                              "-q"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = models / "blobs" / f".partial-{model.digest.hex}.json"
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        try:
            st = json.loads(state.read_text())
            done = sum(part[2] for part in st["parts"])
        except (FileNotFoundError, ValueError):
            pass
        if done >= model.size * 0.45:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert model.size * 0.4 <= done < model.size
    store = OllamaStore(str(models))
    assert store.list() == [] and not store.has_blob(model.digest)  # nothing half-done is visible
    front.throttle = None
    served_before = front.blob_bytes_served
    run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models, "--json",
                 check=0)
    refetched = front.blob_bytes_served - served_before
    assert refetched < model.size * 0.65, f"fetched {refetched} of {model.size} again"
    assert store.verify()[1] == []
    assert [e.name.display for e in store.list()] == [f"{front.addr}/library/gemma3:270m"]
    assert not [n for n in os.listdir(models / "blobs") if n.startswith(".partial")]


@pytest.mark.slow
def test_registry_killed_during_push_then_rerun(tmp_path, registry_factory, gemma_path):
    reg, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[gemma_path], system="hi"), "gemma3:270m", [store])
    front.throttle = 40e6
    p = subprocess.Popen(_cli("push", "gemma3:270m", f"{front.addr}/library/gemma3:270m", "--plain-http",
                              "--models-dir", store.root, "--retries", "1", "-q"), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    reg.kill()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 7, err  # a registry/network failure, reported as such
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: ")
    reg.start()
    front.throttle = None
    cp = run_cli("push", "gemma3:270m", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir",
                 store.root, "--json", check=0)
    assert json.loads(cp.stdout)["manifest_digest"]
    cp = run_cli("pull", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", tmp_path / "pulled",
                 check=0)
    assert OllamaStore(str(tmp_path / "pulled")).verify()[1] == []


def test_corrupted_blob_in_the_registry_is_refused(tmp_path, registry_factory):
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY], system="hi"), "tiny", [store])
    run_cli("push", "tiny", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", store.root, check=0)
    model = res.manifest.layers[0]
    path = reg.blob_data_path(model.digest)
    data = bytearray(open(path, "rb").read())
    data[1000] ^= 0x55
    with open(path, "wb") as f:
        f.write(data)
    models = tmp_path / "pulled"
    cp = run_cli("pull", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", models)
    assert cp.returncode == 5, cp.stderr
    assert "digest" in cp.stderr and model.digest in cp.stderr
    pulled = OllamaStore(str(models))
    assert pulled.list() == [] and not pulled.has_blob(model.digest)
    assert not [n for n in os.listdir(models / "blobs") if n.startswith(".partial") and not n.endswith(".lock")]


def test_retries_429_503_resets_and_redirects_without_leaking_auth(tmp_path, registry_factory):
    reg, front = registry_factory("token")
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY], system="hi", licenses=["MIT"]), "tiny", [store])
    host = front.addr  # talk to the registry through the fault-injecting front
    is_put = lambda m, p: m == "PUT" and "/blobs/uploads/" in p  # noqa: E731
    front.add_fault(lambda m, p: m == "HEAD" and "/blobs/" in p, "429", times=2, retry_after="1")
    front.add_fault(is_put, "503", times=2, retry_after="0")
    front.add_fault(lambda m, p: m == "POST", "reset", times=1)
    t0 = time.monotonic()
    cp = run_cli("push", "tiny", f"{host}/team/tiny:1", "--plain-http", "-u", "alice", "--password-stdin",
                 "--models-dir", store.root, "--json", input="s3cret-pass\n", check=0)
    assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 was honoured
    assert all(f.times == 0 for f in front.faults)  # every fault was hit, and survived
    # downloads: 307 from the registry to "object storage" on another host (127.0.0.2), and a reset
    front.faults.clear()
    front.add_fault(lambda m, p: m == "GET" and "/blobs/sha256:" in p, "redirect", times=10)
    front.add_fault(lambda m, p: m == "GET" and "/manifests/" in p, "reset", times=1)
    cp = run_cli("pull", f"{host}/team/tiny:1", "--plain-http", "-u", "alice", "--password-stdin",
                 "--models-dir", tmp_path / "pulled", "--json", input="s3cret-pass\n", check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == str(res.manifest.digest(newline=False))
    assert front.cdn_log, "the redirect to the other host was not followed"
    assert all(auth is None for _, auth, _ in front.cdn_log), "Authorization leaked to the other host"
    # the registry itself did get our bearer token
    assert any(a and a.startswith("Bearer ") for m, p, a in front.log if "/manifests/" in p)
    assert OllamaStore(str(tmp_path / "pulled")).verify()[1] == []


def test_chunked_upload_and_fallback_from_413(tmp_path, registry_factory):
    reg, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY]), "tiny", [store])
    run_cli("push", "tiny", f"{front.addr}/team/tiny:chunked", "--plain-http", "--chunk-size", "4K",
             "--models-dir", store.root, "--json", check=0)
    patches = [p for m, p, _ in front.log if m == "PATCH"]
    model = res.manifest.layers[0]
    assert len(patches) >= model.size // 4096  # the GGUF went up in 4 KiB chunks
    # a registry that refuses big bodies (413) gets chunks instead of a failure
    front.log.clear()
    front.add_fault(lambda m, p: m == "PUT" and "/blobs/uploads/" in p, "413", times=1)
    run_cli("push", "tiny", f"{front.addr}/team/other:1", "--plain-http", "--models-dir", store.root,
                 "--json", check=0)
    assert any(m == "PATCH" for m, _, _ in front.log)
    run_cli("pull", f"{reg.host}/team/other:1", "--plain-http", "--models-dir", tmp_path / "pulled", check=0)
    assert OllamaStore(str(tmp_path / "pulled")).verify()[1] == []


def _ed25519_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode().split()[1]


def test_ollama_ed25519_key_auth(tmp_path, registry_factory):
    good = _ed25519_key(tmp_path / "id_ed25519")
    _ed25519_key(tmp_path / "other_ed25519")
    reg, front = registry_factory("token", ed25519_keys=[good])
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY]), "tiny", [store])
    host = front.addr  # ollama requires the token realm on the registry's own host
    cp = run_cli("push", "tiny", f"{host}/team/tiny:1", "--plain-http", "--ollama-key", tmp_path / "id_ed25519",
                 "--models-dir", store.root, check=0)
    sig = [t for t in front.token_requests if t["authorization"]]
    assert sig and all(t["authorization"].startswith(good + ":") for t in sig)
    assert all("nonce=" in t["path"] and "ts=" in t["path"] for t in sig)
    cp = run_cli("pull", f"{host}/team/tiny:1", "--plain-http", "--ollama-key", tmp_path / "id_ed25519",
                 "--models-dir", tmp_path / "pulled", "--json", check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == str(res.manifest.digest(newline=False))
    # an unregistered key is refused by the token service: the auth exit code
    cp = run_cli("push", "tiny", f"{host}/team/tiny:2", "--plain-http", "--ollama-key", tmp_path / "other_ed25519",
                 "--models-dir", store.root)
    assert cp.returncode == 8, cp.stderr


def test_ollama_key_signature_format():
    """The string signed and the header sent, byte for byte as docs/ollama-format.md 7.3 gives them."""
    import base64
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from ollama_oci.transport.auth import OllamaKey
    key = OllamaKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    url, header = key.token_request("https://registry.ollama.ai/v2/token?x=1", "ollama.com",
                                    ["repository:library/phi3:pull"], now=1700000000, nonce="abc")
    assert url == ("https://registry.ollama.ai/v2/token?nonce=abc&scope=repository%3Alibrary%2Fphi3%3Apull"
                   "&service=ollama.com&ts=1700000000&x=1")
    pub, _, sig = header.partition(":")
    assert pub == key.public_b64 and base64.b64decode(pub)[:15] == b"\x00\x00\x00\x0bssh-ed25519"
    z = "ZTNiMGM0NDI5OGZjMWMxNDlhZmJmNGM4OTk2ZmI5MjQyN2FlNDFlNDY0OWI5MzRjYTQ5NTk5MWI3ODUyYjg1NQ=="
    key._key.public_key().verify(base64.b64decode(sig), f"GET,{url},{z}".encode())


def test_damaged_local_blob_is_refused_on_push(tmp_path, registry_factory):
    reg = registry_factory("plain")
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[TINY]), "tiny", [store], link_mode="copy")
    p = store.find_blob(res.manifest.layers[0].digest)
    with open(p, "r+b") as f:
        f.seek(500)
        f.write(b"\x00\x01\x02")
    cp = run_cli("push", "tiny", f"{reg.host}/team/tiny:1", "--plain-http", "--models-dir", store.root)
    assert cp.returncode == 5, cp.stderr
    assert "damaged" in cp.stderr and "verify" in cp.stderr
    from ollama_oci.stores.registry import RegistryStore
    from ollama_oci.transport import TransportOptions
    from ollama_oci.reference import parse_reference
    remote = RegistryStore(reg.host, TransportOptions(plain_http=True))
    assert remote.manifest_digest(parse_reference(f"{reg.host}/team/tiny:1")) is None  # no manifest was pushed


def test_verbose_logs_carry_no_secrets(tmp_path, registry_factory):
    reg, front = registry_factory("token")
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[TINY]), "tiny", [store])
    run_cli("push", "tiny", f"{front.addr}/team/tiny:1", "--plain-http", "-u", "alice", "--password-stdin",
            "--models-dir", store.root, input="s3cret-pass\n", check=0)
    front.add_fault(lambda m, p: m == "GET" and "/blobs/sha256:" in p, "redirect", times=10)
    cp = run_cli("-vv", "pull", f"{front.addr}/team/tiny:1", "--plain-http", "-u", "alice", "--password-stdin",
                 "--models-dir", tmp_path / "pulled", input="s3cret-pass\n", check=0)
    assert front.cdn_log  # the presigned redirect happened
    assert "DEBUG" in cp.stderr  # verbose output was on
    for secret in ("X-Amz-Signature", "s3cret-pass", "YWxpY2U6czNjcmV0LXBhc3M", "Bearer ey"):
        assert secret not in cp.stderr + cp.stdout, secret


def test_parallel_pull_and_a_server_that_ignores_ranges(tmp_path, registry_factory):
    from gguf_factory import make_big_gguf
    reg, front = registry_factory("plain", front=True)
    big = tmp_path / "big.gguf"
    make_big_gguf(str(big), 80 << 20)  # above the parallel threshold: two ranged parts
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[str(big)]), "big", [store])
    run_cli("push", "big", f"{reg.host}/team/big:1", "--plain-http", "--models-dir", store.root, check=0)
    run_cli("pull", f"{front.addr}/team/big:1", "--plain-http", "--models-dir", tmp_path / "a", check=0)
    ranged = [p for m, p, _ in front.log if m == "GET" and "/blobs/" in p]
    assert len(ranged) >= 2  # the model blob came in parts
    assert OllamaStore(str(tmp_path / "a")).verify()[1] == []
    front.ignore_ranges = True
    front.blob_bytes_served = 0
    run_cli("pull", f"{front.addr}/team/big:1", "--plain-http", "--models-dir", tmp_path / "b", check=0)
    assert OllamaStore(str(tmp_path / "b")).verify()[1] == []
    assert front.blob_bytes_served < 2 * res.manifest.size + (1 << 20)  # fell back to one stream, no endless refetch


def test_a_closed_port_fails_at_once_naming_host_and_port_and_retries_show(tmp_path):
    """Nothing listens: retrying cannot help, so the first refusal ends the push (it took 40 s of
    silent backoff before). Asked for retries, each one is shown as it waits."""
    import socket
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[TINY]), "tiny:1", [store])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cp = run_cli("push", "tiny:1", f"127.0.0.1:{port}/team/tiny:1", "--plain-http", "--models-dir", store.root)
    assert cp.returncode == 7, cp.stderr
    assert "Traceback" not in cp.stderr and "retrying" not in cp.stderr
    assert cp.stderr.startswith("error: ") and f"127.0.0.1:{port}" in cp.stderr and "refused" in cp.stderr
    cp = run_cli("push", "tiny:1", f"127.0.0.1:{port}/team/tiny:1", "--plain-http", "--models-dir", store.root,
                 "--retries", "2", "--concurrency", "1")
    assert cp.returncode == 7
    lines = cp.stderr.splitlines()
    assert [x for x in lines if "retrying in" in x] and all(
        x.startswith("warning: connection refused by 127.0.0.1:") for x in lines if "retrying in" in x)
    assert any(x.endswith("(1/2)") for x in lines) and any(x.endswith("(2/2)") for x in lines)
    assert lines[-1].startswith("error: ") and "after 3 tries" in lines[-1]


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path):
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[TINY]), "tiny:1", [store])
    cp = run_cli("push", "tiny:1", "no-such-registry.invalid:5000/team/tiny:1", "--models-dir", store.root)
    assert cp.returncode == 7 and "retrying" not in cp.stderr
    assert "cannot resolve the host name 'no-such-registry.invalid'" in cp.stderr


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["pull", "push"])
def test_ctrl_c_mid_transfer_stops_at_once_and_the_rerun_resumes(tmp_path, registry_factory, gemma_path,
                                                                 direction):
    """SIGINT while the 253 MB Gemma moves (throttled, so the transfer would need seconds more): the
    first Ctrl-C stops every worker, the command exits 130 with one line and no traceback, and a
    re-run finishes (a pull from where it stopped)."""
    reg, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "packed"))
    res = pack(Recipe(files=[gemma_path]), "gemma3:270m", [store])
    model = res.manifest.layers[0]
    if direction == "pull":
        run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http",
                "--models-dir", store.root, check=0)
        models = tmp_path / "pulled"
        args = ["pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models]
        state = models / "blobs" / f".partial-{model.digest.hex}.json"
    else:
        args = ["push", "gemma3:270m", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir",
                store.root]
    front.throttle = 20e6  # the whole blob would take ~13 s
    served0 = front.blob_bytes_served
    p = subprocess.Popen(_cli(*args, "-q"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until bytes are moving
        if direction == "pull" and front.blob_bytes_served - served0 > 30e6:
            break
        if direction == "push" and front.log and any(m == "PUT" and "/blobs/uploads/" in path
                                                      for m, path, _ in list(front.log)):
            time.sleep(1.5)
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    out, err = p.communicate(timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err
    print(f"stopped in {took:.2f} s")
    assert took < 5, f"took {took:.1f} s to stop"  # it used to finish the blob (~10 s more)
    front.throttle = None
    if direction == "pull":
        done = sum(part[2] for part in json.loads(state.read_text())["parts"])
        assert 0 < done < model.size  # resumable state was left behind
        before = front.blob_bytes_served
        run_cli(*args, check=0)
        assert front.blob_bytes_served - before <= model.size - done + (16 << 20) * 4
        assert OllamaStore(str(models)).verify()[1] == []
    else:
        run_cli(*args, check=0)
        cp = run_cli("pull", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", tmp_path / "p",
                     check=0)
        assert OllamaStore(str(tmp_path / "p")).verify()[1] == []


@pytest.mark.slow
def test_one_concurrency_budget_for_blobs_and_parts(tmp_path, registry_factory, gemma_path):
    """--concurrency N bounds the blob GETs in flight, parts of the large blob included (it could
    reach N blobs x N parts before); and the parts do run in parallel within it."""
    reg, front = registry_factory("plain", front=True)
    store = OllamaStore(str(tmp_path / "packed"))
    pack(Recipe(files=[gemma_path], system="hi"), "gemma3:270m", [store])
    run_cli("push", "gemma3:270m", f"{reg.host}/library/gemma3:270m", "--plain-http", "--models-dir", store.root,
            check=0)
    front.throttle = 200e6  # slow enough for the parts to overlap
    for n, models in ((2, tmp_path / "c2"), (4, tmp_path / "c4")):
        front.max_blob_gets_inflight = 0
        run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models,
                "--concurrency", n, "-q", check=0)
        assert OllamaStore(str(models)).verify()[1] == []
        assert front.max_blob_gets_inflight <= n, (n, front.max_blob_gets_inflight)
        if n == 4:
            # the 4 parts of the weights all ran at once: the slots the small blobs held at the start
            # were taken up by the waiting part as soon as they were free (a part used to wait for the
            # next part boundary, so only 3 ran together and the 4th ran alone at the end)
            assert front.max_blob_gets_inflight == 4


@pytest.mark.slow
def test_a_kill_soon_after_the_start_loses_at_most_a_few_mib(tmp_path, registry_factory, gemma_path):
    """Progress is noted every 2 MiB per part (durable every 64 MiB): a pull killed early re-fetches
    what it had not received, plus a few MiB, not the whole blob."""
    reg, front = registry_factory("plain", front=True)
    _, res = _push_gemma(tmp_path, gemma_path, reg.host)
    model = res.manifest.layers[0]
    models = tmp_path / "pulled"
    front.throttle = 60e6
    served0 = front.blob_bytes_served
    p = subprocess.Popen(_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models,
                              "-q"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and front.blob_bytes_served - served0 < 24e6:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    received = front.blob_bytes_served - served0
    state = models / "blobs" / f".partial-{model.digest.hex}.json"
    noted = sum(part[2] for part in json.loads(state.read_text())["parts"])
    assert 0 < noted < model.size
    assert received - noted <= 16 << 20, (received, noted)  # four parts, a note every 2 MiB each, in flight
    front.throttle = None
    before = front.blob_bytes_served
    run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", models, check=0)
    assert front.blob_bytes_served - before <= model.size - noted + (1 << 20)
    assert OllamaStore(str(models)).verify()[1] == []


@pytest.mark.slow
def test_a_registry_failing_every_blob_request_gives_up_in_bounded_requests(tmp_path, registry_factory, gemma_path):
    """Every blob GET answers 503: the pull ends with one error after a bounded number of requests
    (each request's retries within its budget, and one failure budget for the whole blob), however
    many parts the blob has (it took 612 requests and 415 s on a 1 GiB model)."""
    reg, front = registry_factory("plain", front=True)
    _push_gemma(tmp_path, gemma_path, reg.host)
    front.add_fault(lambda m, p: m == "GET" and "/blobs/sha256:" in p, "503", times=100000, retry_after="0")
    before = len(front.log)
    cp = run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", tmp_path / "p",
                 "--retries", "2")
    blob_gets = [x for x in front.log[before:] if x[0] == "GET" and "/blobs/sha256:" in x[1]]
    assert cp.returncode == 7 and "503" in cp.stderr, cp.stderr
    # per blob (2 here): 3 tries per request, at most BLOB_TRIES + 1 attempts plus the parts already
    # under way; independent of the blob's size and number of parts
    from ollama_oci.stores.partial import BLOB_TRIES
    assert len(blob_gets) <= 2 * 3 * (BLOB_TRIES + 1 + 4), len(blob_gets)


@pytest.mark.slow
def test_a_long_pull_without_a_terminal_reports_progress_lines(tmp_path, registry_factory, gemma_path):
    """CI and container logs have no terminal: a long transfer prints a line every interval (10 s by
    default; shortened here), with sizes and a rate; -q silences them."""
    reg, front = registry_factory("plain", front=True)
    _push_gemma(tmp_path, gemma_path, reg.host)
    front.throttle = 80e6
    env = {"OLLAMA_OCI_PROGRESS_INTERVAL": "0.5"}
    # one connection: the throttle is then the whole rate (~3 s), whatever the machine's load
    cp = run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", tmp_path / "a",
                 "--concurrency", "1", env=env, check=0)
    lines = [x for x in cp.stderr.splitlines() if x.startswith("progress: ")]
    assert len(lines) >= 2, cp.stderr
    assert all(" of 253.1 MB (" in x and "/s" in x for x in lines[1:]), lines
    cp = run_cli("pull", f"{front.addr}/library/gemma3:270m", "--plain-http", "--models-dir", tmp_path / "b",
                 "-q", env=env, check=0)
    assert "progress:" not in cp.stderr

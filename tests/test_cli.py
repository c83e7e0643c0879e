"""The command line, run as a user runs it: real subprocesses, exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import os

import pytest

from conftest import TINY, run_cli


def test_inspect_json_schema():
    cp = run_cli("inspect", TINY, "--json", "--tensors", check=0)
    doc = json.loads(cp.stdout)
    assert doc["schema"] == "ollama-oci.inspect/v1"
    for key in ("path", "size", "gguf_version", "byte_order", "alignment", "header_end", "data_offset",
                "architecture", "parameter_count", "model_type", "file_type", "file_type_id", "context_length",
                "embedding_length", "chat_template", "kind", "split", "tensor_count", "tensor_types",
                "metadata", "tensors"):
        assert key in doc, key
    assert (doc["architecture"], doc["parameter_count"], doc["model_type"], doc["file_type"]) == (
        "llama", 8320, "8K", "Q8_0")
    assert doc["metadata"]["tokenizer.ggml.tokens"]["len"] == 64
    assert doc["metadata"]["general.file_type"] == {"type": "UINT32", "value": 7}
    assert [t["name"] for t in doc["tensors"]][:2] == ["token_embd.weight", "blk.0.attn_norm.weight"]


def test_inspect_human_and_errors(tmp_path):
    cp = run_cli("inspect", TINY, check=0)
    assert "architecture    llama" in cp.stdout and "Q8_0 (7)" in cp.stdout
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"hello world, not a model")
    cp = run_cli("inspect", bad, check=3)
    assert cp.stderr.startswith("error: ") and cp.stderr.count("\n") == 1 and "not a GGUF file" in cp.stderr
    assert "Traceback" not in cp.stderr
    cp = run_cli("-v", "inspect", bad, check=3)
    assert "Traceback" in cp.stderr  # -v shows the details
    cp = run_cli("inspect", tmp_path / "missing.gguf", check=4)
    assert "no such file" in cp.stderr


def _gguf_files():
    """The tiny fixture and the shared llama.cpp GGUFs when they are there (big vocabularies, v1, v2,
    big-endian)."""
    from conftest import SHARED
    files = [TINY]
    if os.path.isdir(SHARED):
        files += sorted(os.path.join(SHARED, f) for f in os.listdir(SHARED) if f.endswith(".gguf"))
    return files


def test_inspect_of_a_file_is_answered_without_click_and_prints_what_the_command_prints(tmp_path):
    """`inspect FILE` and `inspect FILE --json` are answered by the console script before click is
    loaded (the process is ~30 ms shorter); the bytes are those of the click command, which prints
    the same report. Errors, other options and remote references go to the full program."""
    import subprocess
    import sys

    from conftest import REPO

    def run(entry, *args):
        code = "import sys; before = set(sys.modules)\n" + {
            "console": "from ollama_oci.console import console_main; console_main()",
            "click": "from ollama_oci.cli import main; main()"}[entry]
        # the modules among these that the command loaded (this machine's site hooks may load some first)
        code += "\nprint(' '.join(sorted(m for m in ('click', 're', 'json', 'dataclasses', 'typing') " \
                "if m in set(sys.modules) - before)), file=sys.stderr)"
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
    for f in _gguf_files():
        fast, full = run("console", "inspect", f), run("click", "inspect", f)
        assert fast.returncode == full.returncode == 0, (fast.stderr, full.stderr)
        assert fast.stdout == full.stdout and "architecture" in fast.stdout
        assert fast.stderr.strip() == "", fast.stderr            # none of click, re, json, dataclasses, typing
        fast, full = run("console", "inspect", f, "--json"), run("click", "inspect", f, "--json")
        assert fast.stdout == full.stdout and json.loads(fast.stdout)["schema"] == "ollama-oci.inspect/v1"
        assert "click" not in fast.stderr
    # anything else is the full program's: an error (same line, same exit code), another option
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"hello world, not a model")
    fast, full = run("console", "inspect", bad), run("click", "inspect", bad)
    assert fast.returncode == full.returncode == 3 and fast.stderr.startswith(full.stderr.splitlines()[0])
    fast = run("console", "inspect", TINY, "--tensors")
    assert fast.returncode == 0 and "tensors (" in fast.stdout          # (the full program: it exits itself)


def test_inspect_args_takes_only_the_plain_forms(tmp_path):
    from ollama_oci.console import inspect_args
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert inspect_args(["inspect", str(f)]) == (str(f), False)
    assert inspect_args(["inspect", str(f), "--json"]) == (str(f), True)
    for argv in (["inspect"], ["inspect", str(f), "--tensors"], ["inspect", "--json", str(f)], ["inspect", str(tmp_path)],
                 ["inspect", str(tmp_path / "missing.gguf")], ["inspect", "registry.example.com/a/b:1"],
                 ["inspect", str(f), "--json", "-v"], ["show", str(f)], ["inspect", "--help"]):
        assert inspect_args(argv) is None, argv


def test_report_json_text_is_json_dumps():
    """The text report quotes strings as json.dumps(ensure_ascii=False) does, without importing json."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ollama_oci.gguf_report import json_text
    values = st.recursive(st.text() | st.integers() | st.floats() | st.booleans() | st.none(),
                          lambda inner: st.lists(inner, max_size=4), max_leaves=12)

    @settings(max_examples=3000, deadline=None)
    @given(values)
    def check(v):
        assert json_text(v) == json.dumps(v, ensure_ascii=False)
    check()
    assert json_text("a\x00\x1f\x7f\u2028\"\\é") == json.dumps("a\x00\x1f\x7f\u2028\"\\é", ensure_ascii=False)


def test_pack_list_show_rm_verify(tmp_path):
    models = tmp_path / "models"
    sysf = tmp_path / "system.txt"
    sysf.write_text("You are a tiny model.")
    cp = run_cli("pack", TINY, "--name", "tiny:q8", "--system", sysf, "-p", "temperature=0.7", "-p", "stop=<|im_end|>",
                 "--message", "user=hi", "--message", "assistant=hello", "--json",
                 env={"OLLAMA_MODELS": str(models)}, check=0)
    doc = json.loads(cp.stdout)
    assert doc["name"] == "tiny:q8"
    # the GGUF's ChatML chat template became a Go template layer (issue 5)
    assert [l["kind"] for l in doc["layers"]] == ["model", "template", "system", "params", "messages"]
    assert doc["config"]["model_family"] == "llama" and doc["config"]["file_type"] == "Q8_0"
    assert "derived from its chat template" in cp.stderr

    cp = run_cli("list", "--json", env={"OLLAMA_MODELS": str(models)}, check=0)
    [m] = json.loads(cp.stdout)["models"]
    assert m["name"] == "tiny:q8" and m["digest"] == doc["manifest_digest"]
    cp = run_cli("list", "--models-dir", models, check=0)
    assert cp.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert cp.stdout.splitlines()[1].startswith("tiny:q8")

    cp = run_cli("show", "tiny:q8", "--json", "--models-dir", models, check=0)
    show = json.loads(cp.stdout)
    assert show["system"] == "You are a tiny model."
    assert show["parameters"] == {"temperature": 0.7, "stop": ["<|im_end|>"]}
    assert show["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert show["details"]["architecture"] == "llama" and show["details"]["quantization"] == "Q8_0"

    cp = run_cli("show", "tiny:q8", "--modelfile", "--models-dir", models, check=0)
    mf = cp.stdout
    assert "PARAMETER temperature 0.7" in mf and "PARAMETER stop <|im_end|>" in mf
    assert 'SYSTEM """You are a tiny model."""' in mf and "MESSAGE user hi" in mf
    assert "TEMPLATE" in mf and "<|im_start|>" in mf
    # the generated Modelfile rebuilds the same model
    (tmp_path / "Modelfile").write_text(mf)
    cp = run_cli("pack", "-f", tmp_path / "Modelfile", "--name", "tiny:copy", "--models-dir", models, "--json",
                 check=0)
    assert json.loads(cp.stdout)["manifest_digest"] == doc["manifest_digest"]

    run_cli("verify", "--models-dir", models, check=0)
    cp = run_cli("verify", "--json", "--models-dir", models, check=0)
    assert json.loads(cp.stdout)["ok"] is True

    # corrupt the system blob: verify exits 5 and names it
    sys_digest = next(l["digest"] for l in doc["layers"] if l["kind"] == "system")
    p = models / "blobs" / ("sha256-" + sys_digest[7:])
    os.chmod(p, 0o644)
    p.write_text("You are a HUGE model.")
    cp = run_cli("verify", "--models-dir", models, check=5)
    assert sys_digest in cp.stderr and "digest" in cp.stderr
    cp = run_cli("verify", "--json", "--models-dir", models, check=5)
    assert json.loads(cp.stdout)["problems"][0]["digest"] == sys_digest

    cp = run_cli("rm", "tiny:q8", "tiny:copy", "--models-dir", models, "--json", check=0)
    assert len(json.loads(cp.stdout)["removed"]) == 2
    assert json.loads(run_cli("list", "--json", "--models-dir", models, check=0).stdout)["models"] == []
    cp = run_cli("rm", "tiny:q8", "--models-dir", models, check=4)
    assert "not found" in cp.stderr


def test_pack_modelfile_with_positional_gguf_and_oci_layout(tmp_path):
    (tmp_path / "Modelfile").write_text('FROM ./does-not-matter.gguf\nTEMPLATE """{{ .Prompt }}"""\n'
                                        "PARAMETER num_ctx 128\nLICENSE MIT\n")
    cp = run_cli("pack", TINY, "-f", tmp_path / "Modelfile", "--name", "team/tiny:1", "--oci-layout",
                 tmp_path / "oci", "--json", env={"OLLAMA_MODELS": str(tmp_path / "unused")}, check=0)
    doc = json.loads(cp.stdout)
    assert [l["kind"] for l in doc["layers"]] == ["model", "template", "license", "params"]
    assert doc["stores"] == [f"oci:{tmp_path / 'oci'}"]
    assert not (tmp_path / "unused").exists()  # OLLAMA_MODELS from the environment is not a destination
    cp = run_cli("list", "--oci-layout", tmp_path / "oci", "--json", check=0)
    assert json.loads(cp.stdout)["models"][0]["name"] == "team/tiny:1"


@pytest.mark.parametrize("args,code,text", [
    (["pack"], 2, "give a GGUF file"),
    (["pack", TINY, "--name", "../../etc"], 3, "invalid model name"),
    (["pack", TINY, "-p", "temperature=hot"], 3, "invalid float value [hot]"),
    (["pack", TINY, "-p", "bogus=1"], 3, "unknown parameter 'bogus'"),
    (["pack", TINY, "--message", "robot=hi"], 3, "message role"),
    (["show", "nope"], 4, "not found"),
    (["list", "--models-dir", "x", "--oci-layout", "y"], 2, "not both"),
    (["frobnicate"], 2, "No such command"),
])
def test_exit_codes(tmp_path, args, code, text):
    cp = run_cli(*args, env={"OLLAMA_MODELS": str(tmp_path / "m")})
    assert cp.returncode == code, (cp.stdout, cp.stderr)
    assert text in cp.stderr


def test_modelfile_errors_are_one_line(tmp_path):
    (tmp_path / "Modelfile").write_text("FROM x.gguf\nBOGUS thing\n")
    cp = run_cli("pack", "-f", tmp_path / "Modelfile", "--models-dir", tmp_path / "m", check=3)
    assert cp.stderr.strip() == (f'error: {tmp_path / "Modelfile"}:2: command must be one of "from", "license", '
                                 '"template", "system", "adapter", "draft", "renderer", "parser", "parameter", '
                                 '"message", or "requires"')


def test_help_teaches():
    cp = run_cli("--help", check=0)
    assert "Exit codes" in cp.stdout and "ollama-oci pack model.gguf" in cp.stdout
    cp = run_cli("pack", "--help", check=0)
    assert "--link-mode" in cp.stdout and "Examples" in cp.stdout and "OLLAMA_MODELS" in cp.stdout


def test_no_progress_bar_off_a_tty(tmp_path):
    cp = run_cli("pack", TINY, "--models-dir", tmp_path / "m", check=0)
    assert "\r" not in cp.stderr and "%" not in cp.stderr


def test_prune_command(tmp_path):
    import os as _os
    import time as _time
    models = tmp_path / "m"
    run_cli("pack", TINY, "--name", "t", "--models-dir", models, check=0)
    junk = models / "blobs" / ".tmp-ollama-oci-9-old"
    junk.write_bytes(b"junk")
    old = _time.time() - 86400
    _os.utime(junk, (old, old))
    cp = run_cli("prune", "--dry-run", "--json", "--models-dir", models, check=0)
    assert json.loads(cp.stdout)["removed"] == [str(junk)] and junk.exists()
    cp = run_cli("prune", "--models-dir", models, check=0)
    assert not junk.exists() and "1 file" in cp.stdout
    run_cli("verify", "--models-dir", models, check=0)
    cp = run_cli("prune", "--grace", "soon", "--models-dir", models)
    assert cp.returncode == 2


def test_a_destination_must_name_its_registry(tmp_path):
    """A forgotten repository or a short name would send the model to the public registry.ollama.ai
    (over plain http with --plain-http): each is a usage error naming the fix, and nothing is sent."""
    models = tmp_path / "m"
    run_cli("pack", TINY, "--name", "mf:good", "--models-dir", models, check=0)
    for args, says in [
            (["push", "mf:good", "127.0.0.1:56001", "--plain-http"], "names a registry but no repository"),
            (["push", "mf:good"], "does not name a registry"),
            (["push", "mf:good", "team/model:1"], "does not name a registry"),
            (["copy", "ollama:mf:good", "bar"], "does not name a registry"),
            (["volume", "mf:good", "--to", "bar:1"], "does not name a registry"),
            (["pull", "gemma3:270m", "--plain-http"], "--plain-http applies only to a registry you name")]:
        cp = run_cli(*args, "--models-dir", models)
        assert cp.returncode == 2, (args, cp.stderr)
        assert says in cp.stderr, (args, cp.stderr)
        assert "registry.ollama.ai" in cp.stderr or "no repository" in cp.stderr


def test_pack_shows_the_id_list_shows(tmp_path):
    """Packing into the model store and an OCI layout at once: the ID printed is the model store's,
    the one `list` (and `ollama list`) shows, not the layout's manifest digest."""
    models = tmp_path / "m"
    cp = run_cli("pack", TINY, "--name", "t:1", "--models-dir", models, "--oci-layout", tmp_path / "oci", "--json",
                 check=0)
    packed = json.loads(cp.stdout)["manifest_digest"]
    listed = json.loads(run_cli("list", "--models-dir", models, "--json", check=0).stdout)["models"]
    assert [m["digest"] for m in listed] == [packed]


def test_verbose_anywhere_and_export_into_a_missing_directory(tmp_path):
    """-v after the command works as before it; an export into a directory that does not exist is
    refused (it used to create the directory, even at /)."""
    models = tmp_path / "m"
    run_cli("pack", TINY, "--name", "t:1", "--models-dir", models, check=0)
    cp = run_cli("list", "--models-dir", models, "-vv", check=0)
    assert "t:1" in cp.stdout
    cp = run_cli("export", "t:1", "-o", tmp_path / "missing" / "x.tar", "--models-dir", models, "-v")
    assert cp.returncode == 4 and "does not exist" in cp.stderr
    assert not (tmp_path / "missing").exists()


def test_login_takes_a_url_as_people_paste_it(tmp_path, registry_factory):
    reg = registry_factory("plain")
    env = {"DOCKER_CONFIG": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json")}
    cp = run_cli("login", f"http://{reg.host}/", "-u", "alice", "--password-stdin", "--plain-http", input="pw\n",
                 env=env, check=0)
    assert f"({reg.host}," in cp.stdout
    assert list(json.loads((tmp_path / "none.json").read_text())["auths"]) == [reg.host]  # $REGISTRY_AUTH_FILE
    run_cli("logout", f"http://{reg.host}", env=env, check=0)


def test_quiet_means_nothing_on_success(tmp_path):
    models = tmp_path / "m"
    cp = run_cli("pack", TINY, "--name", "t:1", "--models-dir", models, "-q", check=0)
    assert cp.stdout == ""
    cp = run_cli("verify", "--models-dir", models, "-q", check=0)
    assert cp.stdout == ""
    cp = run_cli("export", "t:1", "-o", tmp_path / "x.tar", "--models-dir", models, "-q", check=0)
    assert cp.stdout == ""
    cp = run_cli("import", tmp_path / "x.tar", "--models-dir", tmp_path / "n", "-q", check=0)
    assert cp.stdout == ""


def test_reading_a_store_that_does_not_exist_says_so(tmp_path):
    """A mistyped --models-dir used to list an empty table with exit 0."""
    for cmd in ("list", "verify", "prune"):
        cp = run_cli(cmd, "--models-dir", tmp_path / "typo")
        assert cp.returncode == 4 and "no model store at" in cp.stderr, (cmd, cp.stderr)
    cp = run_cli("list", "--oci-layout", tmp_path / "typo")
    assert cp.returncode == 4 and "no OCI layout" in cp.stderr
    cp = run_cli("list", env={"HOME": str(tmp_path)}, check=0)  # the implicit default, before any pull
    assert "NAME" in cp.stdout


@pytest.mark.parametrize("text, says", [
    ("FROM {gguf}\nPARAMETER temperature hot\n", "Modelfile:2: PARAMETER temperature hot: invalid float value [hot]"),
    ("FROM {gguf}\n\nBOGUS x\n", "Modelfile:3: command must be one of"),
    ("FROM {gguf}\nPARAMETER temperature\n", "Modelfile:2: unexpected EOF: temperature")])
def test_modelfile_errors_name_the_file_and_line(tmp_path, text, says):
    mf = tmp_path / "Modelfile"
    mf.write_text(text.format(gguf=TINY))
    cp = run_cli("pack", "-f", mf, "--name", "x", "--models-dir", tmp_path / "m")
    assert cp.returncode == 3 and says in cp.stderr, cp.stderr


def test_mixed_case_names_are_flagged_at_pack_and_refused_as_push_destinations(tmp_path):
    models = tmp_path / "m"
    cp = run_cli("pack", TINY, "--name", "localhost:5000/Team/MyModel:1", "--models-dir", models, check=0)
    assert "lower case" in cp.stderr
    cp = run_cli("push", "localhost:5000/Team/MyModel:1", "--models-dir", models, "--plain-http")
    assert cp.returncode == 2 and "localhost:5000/team/mymodel:1" in cp.stderr, cp.stderr


def test_progress_draws_a_bar_per_blob_and_a_total_on_a_terminal(monkeypatch):
    """On a terminal: a bar per blob of 1 MiB and more with sizes, rate and time left, then a total
    line, redrawn in place; off a terminal: a line per interval naming the blobs still moving."""
    import io
    import time as _time
    from ollama_oci.cli.common import Progress
    from ollama_oci.progress import ProgressEvent

    class Term(io.StringIO):
        def isatty(self):
            return True
    for tty in (True, False):
        err = Term() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        monkeypatch.setenv("OLLAMA_OCI_PROGRESS_INTERVAL", "0.1")
        monkeypatch.setenv("TERM", "xterm")
        p = Progress(True)
        a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
        p(ProgressEvent("transfer", a, 0, 200 << 20))
        p(ProgressEvent("transfer", b, 0, 100 << 20))
        p(ProgressEvent("transfer", "sha256:" + "c" * 64, 0, 300))  # too small for a bar of its own
        for i in range(1, 4):
            _time.sleep(0.12)
            p(ProgressEvent("transfer", a, i * (40 << 20), 200 << 20))
            p(ProgressEvent("transfer", b, i * (20 << 20), 100 << 20))
        p.close()
        out = err.getvalue()
        if tty:
            last = out.rsplit("\x1b[", 3)  # the last redraw: cursor up, then the lines
            screen = out[out.rfind("\x1b[2F"):]
            lines = [x.replace("\x1b[K", "") for x in screen[len("\x1b[2F"):].splitlines()]
            assert len(lines) == 3, (lines, last)
            assert lines[0].startswith("aaaaaaaaaaaa") and "[############........] 125.8 MB of 209.7 MB (60%)" in lines[0]
            assert lines[1].startswith("bbbbbbbbbbbb") and "62.9 MB of 104.9 MB (60%)" in lines[1]
            assert "/s, " in lines[0] and " left" in lines[0]
            assert lines[2].startswith("total: 188.7 MB of 314.6 MB (59%)")
            assert "cccccccccccc" not in out
        else:
            rows = [x for x in out.splitlines() if x.startswith("progress: ")]
            assert rows and "aaaaaaaaaaaa 60%" in rows[-1] and "bbbbbbbbbbbb " in rows[-1], rows
            assert "\r" not in out and "\x1b" not in out

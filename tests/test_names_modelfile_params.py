"""Names, the Modelfile grammar and PARAMETER typing, as ollama's own tests define them."""

from __future__ import annotations

import pytest

from ollama_oci import InvalidName, InvalidParameter, ModelfileError, format_params, parse_modelfile, parse_name
from ollama_oci.build import recipe_from_modelfile
from ollama_oci.modelfile import quote_value
from ollama_oci.names import name_from_parts


@pytest.mark.parametrize("s,parts", [
    ("phi3", ("registry.ollama.ai", "library", "phi3", "latest")),
    ("gemma3:270m", ("registry.ollama.ai", "library", "gemma3", "270m")),
    ("user/model", ("registry.ollama.ai", "user", "model", "latest")),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
     ("hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M")),
    ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t")),
    ("https://example.com/ns/m", ("example.com", "ns", "m", "latest")),
    ("h/n/m:t", ("h", "n", "m", "t")),
    ("_why/_the/_lucky:_stiff", ("_why", "_the", "_lucky", "_stiff")),
    ("host:https/namespace/model:tag", ("host:https", "namespace", "model", "tag")),
])
def test_parse_valid(s, parts):
    assert parse_name(s).parts == parts


@pytest.mark.parametrize("s", [
    "", "host/name:space/model:tag", "-hh/nn/mm:tt", "hh/nn/mm:-tt", "n/m:", "mm:", "a/b/c/d",
    "..", "../x", "x/../y", "m:..", "model\x00", "modèle", "a" * 81, "ns.dot/model", "m@sha256:" + "a" * 64,
    "/m", "h//m", "m/", "h" * 351 + "/n/m",
])
def test_parse_invalid(s):
    with pytest.raises(InvalidName):
        parse_name(s)


def test_display_and_paths():
    assert parse_name("phi3").display == "phi3:latest"
    assert parse_name("team/m:1").display == "team/m:1"
    assert parse_name("example.com/library/m").display == "example.com/library/m:latest"
    assert name_from_parts(("registry.ollama.ai", "library", "m", "t")).display == "m:t"
    with pytest.raises(InvalidName):
        name_from_parts(("registry.ollama.ai", "library", ".DS_Store", "t"))


def test_modelfile_trims_and_unquotes():
    mf = parse_modelfile('FROM "     model 1"\nLICENSE "MIT       "\n'
                         'TEMPLATE """   {{ .Prompt }}   """   \nSYSTEM """\nThis is a\nmultiline system.\n"""\n')
    assert [(c.name, c.args) for c in mf] == [
        ("model", "     model 1"), ("license", "MIT       "), ("template", "   {{ .Prompt }}   "),
        ("system", "\nThis is a\nmultiline system.\n")]


def test_modelfile_messages_params_comments_case():
    mf = parse_modelfile("# comment\nfrom m\nparameter stop <|end|>\nPARAMETER stop  \"###\"  \n"
                         "Message user Hey there!\nMESSAGE assistant Hello, I want to parse all the things!\n"
                         "PARAMETER temperature 0.5 # not a comment\n")
    assert [(c.name, c.args) for c in mf] == [
        ("model", "m"), ("stop", "<|end|>"), ("stop", "###"), ("message", "user: Hey there!"),
        ("message", "assistant: Hello, I want to parse all the things!"), ("temperature", "0.5 # not a comment")]


def test_modelfile_utf16_and_bom():
    text = "FROM foo\nSYSTEM café\n"
    for data in (b"\xef\xbb\xbf" + text.encode(), b"\xff\xfe" + text.encode("utf-16-le"),
                 b"\xfe\xff" + text.encode("utf-16-be")):
        assert parse_modelfile(data).commands[1].args == "café"


def test_modelfile_drops_unprintable_runes():
    # Go's parser silently drops runes strconv.IsPrint rejects (here: zero-width space, NBSP)
    assert parse_modelfile("FROM foo\nSYSTEM a\u200bb\u00a0c\n").commands[1].args == "abc"


@pytest.mark.parametrize("text,msg", [
    ("FROM foo\nBADCOMMAND x", '(line 2): command must be one of "from"'),
    ("FROM foo\nMESSAGE badguy I'm a bad guy!", '(line 2): message role must be one of'),
    ("FROM foo\nMESSAGE system", "unexpected EOF"),
    ("FROM foo\nPARAMETER param1", "unexpected EOF"),
    ("FROM foo\nSYSTEM \"\"\"unterminated", "unexpected EOF"),
    ("SYSTEM hi", "no FROM line"),
])
def test_modelfile_errors(text, msg):
    with pytest.raises(ModelfileError) as ei:
        parse_modelfile(text)
    assert msg in str(ei.value)


def test_modelfile_round_trip_quoting():
    assert quote_value("plain") == "plain"
    assert quote_value(" lead") == '" lead"'
    assert quote_value('a\n"b"') == '"""a\n"b\""""'
    mf = parse_modelfile('FROM x\nSYSTEM """ hi "there" """\nPARAMETER stop <|end|>\nMESSAGE user a b\n')
    assert parse_modelfile(mf.to_text()).commands == mf.commands


def test_params_typing_and_errors():
    p = format_params([("num_ctx", "4096"), ("use_mmap", "false"), ("stop", "a"), ("stop", "b"),
                       ("temperature", "0.8"), ("temperature", "0.9"), ("mirostat", "1")], warn=lambda m: None)
    assert p == {"num_ctx": 4096.0, "use_mmap": False, "stop": ["a", "b"], "temperature": 0.9}
    for pairs, msg in [([("Temperature", "1")], "unknown parameter 'Temperature'"),
                       ([("tfs_z", "1")], "unknown parameter 'tfs_z'"),
                       ([("top_k", "5.0")], "invalid int value [5.0]"),
                       ([("top_k", "1_000")], "invalid int value [1_000]"),
                       ([("temperature", "hot")], "invalid float value [hot]"),
                       ([("temperature", "1e39")], "invalid float value [1e39]"),
                       ([("temperature", "NaN")], "invalid float value [NaN]"),
                       ([("use_mmap", "yes")], "invalid bool value [yes]")]:
        with pytest.raises(InvalidParameter) as ei:
            format_params(pairs)
        assert str(ei.value) == msg


def test_recipe_from_modelfile(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    r = recipe_from_modelfile("FROM ./m.gguf\nADAPTER lora.gguf\nTEMPLATE {{ .Prompt }}\nSYSTEM one\nSYSTEM two\n"
                              "LICENSE MIT\nLICENSE Apache\nPARAMETER top_k 3\nMESSAGE user hi\nREQUIRES v0.14.0\n",
                              str(tmp_path))
    assert r.files == [str(tmp_path / "./m.gguf")] and r.adapters == [str(tmp_path / "lora.gguf")]
    assert (r.template, r.system, r.licenses, r.params, r.messages, r.requires) == (
        "{{ .Prompt }}", "two", ["MIT", "Apache"], {"top_k": 3.0}, [("user", "hi")], "0.14.0")
    with pytest.raises(Exception, match="requires must be a valid semver"):
        recipe_from_modelfile("FROM ./m.gguf\nREQUIRES latest\n", str(tmp_path))
    # as in ollama, a FROM that is not a file names a model
    assert recipe_from_modelfile("FROM llama3.2\n", str(tmp_path)).base == "llama3.2"
    with pytest.raises(Exception, match="not a model name"):
        recipe_from_modelfile("FROM ./missing/model.gguf\n", str(tmp_path))


@pytest.mark.parametrize("params, says", [
    ({"temperature": "hot"}, "finite number"), ({"temprature": 0.7}, "unknown parameter 'temprature'"),
    ({"stop": "<|im_end|>"}, "list of strings"), ({"num_ctx": 2048.5}, "integer"), ({"use_mmap": 1}, "true or false"),
    ({"temperature": float("nan")}, "finite"), ({"mirostat": 1}, "no longer used")])
def test_recipe_params_from_the_library_are_checked_as_ollama_checks_them(tmp_path, params, says):
    """A Python caller's params used to pack silently, and Ollama then refused every request."""
    from conftest import TINY
    from ollama_oci import InvalidParameter, OllamaStore, Recipe, pack
    with pytest.raises(InvalidParameter, match=says):
        pack(Recipe(files=[TINY], params=params), "m", [OllamaStore(str(tmp_path / "m"))])
    assert not (tmp_path / "m").exists()
    pack(Recipe(files=[TINY], params={"temperature": 0.5, "stop": ["<|im_end|>"], "num_ctx": 2048}), "m",
         [OllamaStore(str(tmp_path / "ok"))])


# -- disagreements with Ollama's own code, closed (issue 15, items 10 and 11) ------------------------

def test_library_is_dropped_from_short_names_in_any_case():
    """types/model/name.go DisplayShortest compares host and namespace with strings.EqualFold."""
    from ollama_oci.names import parse_name
    assert parse_name("LIBRARY/gemma3:1b").display == "gemma3:1b"
    assert parse_name("Registry.Ollama.AI/Library/gemma3:1b").display == "gemma3:1b"
    assert parse_name("team/gemma3:1b").display == "team/gemma3:1b"


def test_float_parameters_parse_as_go_does():
    """strconv.ParseFloat keeps the sign of zero and takes underscores between digits (underscoreOK);
    strconv.ParseInt with base 10 takes none."""
    from ollama_oci.build import params_layer
    from ollama_oci.errors import InvalidParameter
    from ollama_oci.params import format_params
    p = format_params([("temperature", "-0"), ("top_p", "1_0.5"), ("min_p", "0x_1p-2")])
    assert p == {"temperature": 0.0, "top_p": 10.5, "min_p": 0.25}
    assert params_layer(p).data == b'{"min_p":0.25,"temperature":-0,"top_p":10.5}\n'
    for bad in ("_1", "1_", "1_.5", "1__0", "1._5"):
        with pytest.raises(InvalidParameter, match=r"invalid float value"):
            format_params([("temperature", bad)])
    with pytest.raises(InvalidParameter, match=r"invalid int value \[1_0\]"):
        format_params([("num_ctx", "1_0")])


def test_requires_takes_semver_shorthands_as_ollama_does():
    """x/mod/semver.IsValid: v0.14 and v1 are valid; pre-release only on a full version."""
    from ollama_oci.build import Recipe
    from ollama_oci.errors import InvalidInput
    from ollama_oci.modelfile import parse_modelfile
    for ok in ("0.14", "1", "0.14.0", "0.14.0-rc1+build.5"):
        Recipe(files=["x.gguf"], requires=ok).check()
    for bad in ("0.14-rc1", "01.2", "0.14.", "v"):
        with pytest.raises(InvalidInput, match="semver"):
            Recipe(files=["x.gguf"], requires=bad).check()
    mf = parse_modelfile("FROM x.gguf\nREQUIRES 0.14\n")
    assert [c.args for c in mf.commands if c.name == "requires"] == ["0.14"]


def test_every_requires_line_is_checked_as_ollama_checks_it():
    """Ollama's CreateRequest checks each REQUIRES as it comes: an empty one fails even when a valid
    one follows (found by comparing 28,000 random Modelfiles with Ollama's parser)."""
    from ollama_oci.build import recipe_from_modelfile
    from ollama_oci.errors import InvalidInput
    for mf in ("FROM llama3.2\nREQUIRES \nREQUIRES 0.5.0\n", "FROM llama3.2\nREQUIRES x\nREQUIRES 0.5.0\n",
               "FROM llama3.2\nREQUIRES \n"):
        with pytest.raises(InvalidInput, match=r"Modelfile:2: requires must be a valid semver"):
            recipe_from_modelfile(mf)
    assert recipe_from_modelfile("FROM llama3.2\nREQUIRES 0.4\nREQUIRES v0.5.0\n").requires == "0.5.0"


def test_characters_newer_than_pythons_unicode_are_kept():
    """Go 1.21+ has Unicode 15.0 in strconv.IsPrint; Python 3.11 has 14.0. 🩵 (U+1FA75) and 🛜
    (U+1F6DC) are printable to Ollama and stay; NO-BREAK SPACE and ZERO WIDTH SPACE are not."""
    from ollama_oci.modelfile import parse_modelfile
    mf = parse_modelfile('FROM x.gguf\nSYSTEM """wifi \U0001F6DC heart \U0001FA75 nb\u00a0zw\u200b."""\n')
    assert [c.args for c in mf.commands if c.name == "system"] == ["wifi \U0001F6DC heart \U0001FA75 nbzw."]


@pytest.mark.parametrize("name, says", [("be-ggml-vocab-llama-spm.gguf", "big-endian"),
                                        ("v1-ggml-vocab-llama.gguf", "GGUF v1"),
                                        ("derived/gguf-py-nested-array.gguf", "array of arrays")])
def test_ggufs_ollama_cannot_load_are_flagged_and_refused_with_strict(tmp_path, name, says):
    """Ollama's decoder fails on these (issue 15 item 9, checked with its own code): inspect says so,
    pack warns, pack --strict refuses and writes nothing."""
    from conftest import run_cli, shared_path
    path = shared_path(name)
    cp = run_cli("inspect", path, check=0)
    assert "cannot load this file" in cp.stdout and says in cp.stdout
    doc = __import__("json").loads(run_cli("inspect", path, "--json", check=0).stdout)
    assert any(says in p for p in doc["load_problems"])
    cp = run_cli("pack", path, "--name", "x:1", "--models-dir", tmp_path / "m")
    assert cp.returncode == 0 and "Ollama will not load this model" in cp.stderr and says in cp.stderr
    cp = run_cli("pack", path, "--name", "y:1", "--models-dir", tmp_path / "s", "--strict")
    assert cp.returncode == 3 and "--strict refuses it" in cp.stderr
    assert not [p for p in (tmp_path / "s").rglob("*") if p.is_file()]   # no blob, no manifest, no leftover
    ok = run_cli("inspect", shared_path("ggml-vocab-gpt-2.gguf"), "--json", check=0)
    assert __import__("json").loads(ok.stdout)["load_problems"] == []


def _gguf_with_tensors(path, tensors):
    """A little-endian GGUF v3 with ``general.architecture`` and these (name, type, shape, data bytes)."""
    import struct

    def s(x: bytes) -> bytes:
        return struct.pack("<Q", len(x)) + x
    infos, data, off = b"", b"", 0
    for name, ttype, shape, nbytes in tensors:
        infos += s(name.encode()) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", ttype, off)
        chunk = b"\0" * nbytes + b"\0" * (-nbytes % 32)
        data += chunk
        off += len(chunk)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1) + s(b"general.architecture") + struct.pack("<I", 8) + s(b"llama")
    head += infos
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32) + data)


def test_tensors_ollamas_decoder_cannot_size_are_flagged(tmp_path):
    """fs/ggml's Tensor.size: a type outside its TypeSize table (TQ1_0, which gguf-py knows, or one
    nobody knows) fails Ollama's load with 'tensor "NAME" size overflow' (found by mutating GGUF
    headers and comparing with Ollama's decoder: of 4,500 mutants, none now reads silently here where
    Ollama's decoder fails)."""
    from ollama_oci import read_gguf
    from ollama_oci.errors import GGUFError
    from ollama_oci.modelinfo import load_problems
    ok = tmp_path / "ok.gguf"
    _gguf_with_tensors(ok, [("a", 0, (3,), 12), ("b", 8, (64, 2), 136), ("c", 12, (256,), 144)])
    with read_gguf(ok) as g:
        assert load_problems(g) == ()
    tq = tmp_path / "tq.gguf"
    _gguf_with_tensors(tq, [("a", 0, (3,), 12), ("t", 34, (256,), 54), ("u", 35, (256,), 66)])
    with read_gguf(tq) as g:
        (p,) = load_problems(g)
    assert "tensor 't' has type TQ1_0, which Ollama's decoder cannot size" in p and "size overflow" in p
    assert "(1 more such tensors)" in p
    unknown = tmp_path / "unknown.gguf"
    _gguf_with_tensors(unknown, [("x", 2304, (64,), 64)])      # a type no table knows: its size is unknown
    with read_gguf(unknown) as g:
        (p,) = load_problems(g)
    assert "tensor 'x' has type type2304" in p
    rows = tmp_path / "rows.gguf"                                # rows that are not whole blocks fail Ollama's
    _gguf_with_tensors(rows, [("q", 8, (48, 2), 102)])          # load too: the header reader refuses them
    with pytest.raises(GGUFError, match="row length 48 is not a multiple of the Q8_0 block size 32"):
        read_gguf(rows)


def test_q8_1_tensors_are_sized_as_ggml_and_ollama_size_them(tmp_path):
    """gguf-py's table still has the 2023 Q8_1 block (float scales, 40 bytes); ggml's block_q8_1 is
    two halves and 32 quants (36), and Ollama's decoder sizes it so: a Q8_1 tensor that fits the file
    for both of them is not refused as truncated here (found by the header mutation comparison)."""
    from ollama_oci import ggml_tables, read_gguf
    from ollama_oci.modelinfo import load_problems
    assert ggml_tables.tensor_block(9) == (32, 36)
    path = tmp_path / "q81.gguf"
    _gguf_with_tensors(path, [("q", 9, (64, 2), 144)])      # 4 blocks of 36 bytes (gguf-py's table: 160)
    with read_gguf(path) as g:
        assert g.tensors[0].n_bytes == 144 and load_problems(g) == ()

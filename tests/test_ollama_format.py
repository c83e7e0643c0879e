"""Byte-exact agreement with ollama's own test fixtures (docs/ollama-format.md section 10)."""

from __future__ import annotations

import hashlib

import pytest

from conftest import minimal_gguf
from ollama_oci import (MT, Config, Descriptor, ModelFacts, OllamaStore, Recipe, build_config, build_manifest,
                        format_params, human_number, messages_layer, pack, params_layer, parse_manifest, text_layer)
from ollama_oci.gojson import GoMap, dumps, format_float


def test_minimal_gguf_fixture_bytes():
    b = minimal_gguf()
    assert len(b) == 68
    assert hashlib.sha256(b).hexdigest() == "89a2116c3a82d6a97f59f748d86ed4417214353fd178ee54df418fde32495fad"


@pytest.mark.parametrize("legacy,digest,size", [
    (False, "99759ad5b91e723db0393d698ffbb448b1b7df5ff6377a108c49254583b1bc8c", 147),
    (True, "6bcdb8859d417753645538d7bbfbd7ca91a3f0c191aef5379c53c05e86b669dd", 261),
])
def test_minimal_model_config(tmp_path, legacy, digest, size):
    gg = tmp_path / "model.gguf"
    gg.write_bytes(minimal_gguf())
    store = OllamaStore(str(tmp_path / "models"))
    res = pack(Recipe(files=[str(gg)]), "test", [store], legacy_rootfs=legacy)
    assert res.manifest.config.digest == "sha256:" + digest
    assert res.manifest.config.size == size
    cfg = (tmp_path / "models" / "blobs" / f"sha256-{digest}").read_bytes()
    if not legacy:
        assert cfg == (b'{"model_format":"gguf","model_family":"test","model_families":["test"],'
                       b'"model_type":"0","file_type":"unknown","architecture":"amd64","os":"linux"}\n')
    # the manifest: compact Go encoding, keys in struct order, one trailing newline
    raw = (tmp_path / "models/manifests/registry.ollama.ai/library/test/latest").read_bytes()
    assert raw == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:' + digest.encode()
        + b'","size":' + str(size).encode() + b'},"layers":[{"mediaType":"application/vnd.ollama.image.model",'
        b'"digest":"sha256:89a2116c3a82d6a97f59f748d86ed4417214353fd178ee54df418fde32495fad","size":68}]}\n')


def test_config_and_manifest_from_descriptors_alone():
    """Build scripts that already know digests need no files."""
    layer = Descriptor(MT.MODEL, "sha256:89a2116c3a82d6a97f59f748d86ed4417214353fd178ee54df418fde32495fad", 68)
    cfg = build_config([ModelFacts("test", "0", "unknown")], [layer])
    manifest, cblob = build_manifest([layer], cfg)
    assert cblob.descriptor.digest == "sha256:99759ad5b91e723db0393d698ffbb448b1b7df5ff6377a108c49254583b1bc8c"
    legacy = build_config([ModelFacts("test", "0", "unknown")], [layer], legacy_rootfs=True)
    assert build_manifest([layer], legacy)[1].descriptor.digest.startswith("sha256:6bcdb8859d41")
    assert parse_manifest(manifest.to_bytes()) == manifest
    assert manifest.to_bytes(newline=False) + b"\n" == manifest.to_bytes()


@pytest.mark.parametrize("media_type,text,prefix", [
    (MT.SYSTEM, "Say hi!", "f29e82a8"), (MT.SYSTEM, "Say bye!", "4c5f51fa"),
    (MT.TEMPLATE, "{{ .System }} {{ .Prompt }}", "fe7ac77b"),
    (MT.LICENSE, "MIT", "e5dcffe8"), (MT.LICENSE, "Apache-2.0", "2af71558"),
])
def test_text_layers(media_type, text, prefix):
    blob = text_layer(media_type, text)
    assert blob.descriptor.digest.hex.startswith(prefix)
    assert blob.data == text.encode()  # nothing added, nothing trimmed


@pytest.mark.parametrize("pairs,prefix,body", [
    ([("stop", "USER:"), ("stop", "ASSISTANT:"), ("temperature", "1"), ("top_k", "10")], "1d0ad712",
     b'{"stop":["USER:","ASSISTANT:"],"temperature":1,"top_k":10}\n'),
    ([("stop", "USER:"), ("stop", "ASSISTANT:"), ("temperature", "0.6"), ("top_k", "10"), ("top_p", "0.7")],
     "e29a7b3c", b'{"stop":["USER:","ASSISTANT:"],"temperature":0.6,"top_k":10,"top_p":0.7}\n'),
    ([("stop", "<|endoftext|>"), ("temperature", "0.6"), ("top_k", "10"), ("top_p", "0.7")], "12f58bb7",
     b'{"stop":["\\u003c|endoftext|\\u003e"],"temperature":0.6,"top_k":10,"top_p":0.7}\n'),
])
def test_params_layers(pairs, prefix, body):
    blob = params_layer(format_params(pairs))
    assert blob.data == body
    assert blob.descriptor.digest.hex.startswith(prefix)


def test_autodetect_params_fixture_encoding():
    # the params blob ollama writes for the phi-3 template: HTML-escaped stop words
    data = dumps(GoMap(stop=["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]))
    assert hashlib.sha256(data).hexdigest().startswith("0d79f567714c62c0")


def test_messages_layer():
    blob = messages_layer([("assistant", "What is my purpose?"), ("user", "You run tests."),
                           ("assistant", "Oh, my god.")])
    assert blob.descriptor.digest.hex.startswith("298baeaf")


@pytest.mark.parametrize("n,text", [
    (0, "0"), (999, "999"), (1000, "1K"), (1001, "1K"), (1000000, "1M"), (125000000, "125M"),
    (500500000, "500.50M"), (500550000, "500.55M"), (1000000000, "1B"), (2800000000, "2.8B"),
    (2850000000, "2.9B"), (1000000000000, "1000B"), (7_999_999_999, "8.0B"), (268_098_176, "268.10M"),
])
def test_human_number(n, text):
    assert human_number(n) == text


@pytest.mark.parametrize("x,text", [
    (1.0, "1"), (0.7, "0.7"), (4096.0, "4096"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
    (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (-0.0, "-0"), (0.0, "0"), (-2.5, "-2.5"),
    (123456789.125, "123456789.125"), (1e-10, "1e-10"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_go_float_format(x, text):
    assert format_float(x) == text


def test_go_string_escapes():
    s = 'a<b>&c\u2028\u2029"\\\n\r\t\b\f\x01\x7f/é\udcff'
    assert dumps(s, newline=False) == ('"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\"\\\\\\n\\r\\t\\b\\f\\u0001'
                                       '\x7f/é\ufffd"').encode()
    assert dumps(GoMap({"b": 1, "a": None, "é": [], "<": True})) == b'{"\\u003c":true,"a":null,"b":1,"\xc3\xa9":[]}\n'


def test_float32_parameter_rounding():
    p = format_params([("temperature", "0.123456789"), ("top_p", "1e-7"), ("repeat_penalty", "1.1")])
    assert params_layer(p).data == b'{"repeat_penalty":1.1,"temperature":0.12345679,"top_p":1e-7}\n'


def test_config_round_trip_and_null_families():
    c = Config(model_format="", model_family="", model_families=None)
    assert b'"model_families":null' in c.to_bytes()
    parsed = Config.from_json(build_config([ModelFacts("llama", "8.0B", "Q4_K_M")], renderer="x").to_bytes())
    assert parsed.model_families == ("llama",) and parsed.renderer == "x" and parsed.parser == ""


def test_arch_defaults_like_ollama(tmp_path):
    """gemma4 models get renderer/parser gemma4 and stop <turn|> (ollama v0.20+)."""
    cfg = build_config([ModelFacts("gemma4", "1B", "Q4_K_M")])
    assert (cfg.renderer, cfg.parser) == ("gemma4", "gemma4")
    assert b'"renderer":"gemma4","parser":"gemma4"' in cfg.to_bytes()


def test_the_id_is_the_hash_of_what_ollamas_decoder_read(tmp_path):
    """server/manifest.go hashes a manifest file through a TeeReader while json.Decoder reads it:
    the decoder's buffer grows 512 -> 1536 -> 3584 -> ..., and it stops once the value is complete. A
    manifest whose JSON ends exactly at one of those sizes leaves its trailing newline unread, so the
    ID is the hash of the file without it (issue 15 item 2)."""
    import hashlib
    import json

    from ollama_oci import OllamaStore
    from ollama_oci.spec import go_decoder_consumed, ollama_manifest_id
    for size in (511, 512, 513, 1535, 1536, 3584, 7680):
        body = json.dumps({"schemaVersion": 2, "pad": ""}, separators=(",", ":"))
        body = body.replace('"pad":""', '"pad":"' + "x" * (size - len(body)) + '"')
        data = body.encode() + b"\n"
        assert len(data) == size + 1
        full, short = hashlib.sha256(data).hexdigest(), hashlib.sha256(data[:-1]).hexdigest()
        expect = short if size in (512, 1536, 3584, 7680) else full
        assert ollama_manifest_id(data) == "sha256:" + expect, size
        assert go_decoder_consumed(data) == (size if expect == short else size + 1)
    # a real store: pack a model whose manifest is padded to 1536 bytes of JSON; list shows Ollama's ID
    from conftest import TINY
    from ollama_oci import Recipe, pack
    store = OllamaStore(str(tmp_path / "m"))
    res = pack(Recipe(files=[TINY]), "edge:1", [store], link_mode="copy")
    path = store.manifest_path(res.name)
    raw = open(path, "rb").read()
    assert store.list()[0].manifest_digest == "sha256:" + hashlib.sha256(raw).hexdigest()   # the common case
    doc = json.loads(raw)
    doc["layers"][0]["annotations"] = {"pad": ""}
    text = json.dumps(doc, separators=(",", ":"))
    doc["layers"][0]["annotations"]["pad"] = "x" * (1536 - len(text))
    edge = json.dumps(doc, separators=(",", ":")).encode()
    assert len(edge) == 1536
    open(path, "wb").write(edge + b"\n")
    assert store.list()[0].manifest_digest == "sha256:" + hashlib.sha256(edge).hexdigest()

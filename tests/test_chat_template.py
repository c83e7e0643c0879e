"""Deriving Ollama Go templates and stop words from GGUF Jinja chat templates."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import REPO, TINY, run_cli, shared_path
from ollama_oci import MT, OllamaStore, Recipe, pack, parse_name
from ollama_oci.chat_template import TemplateDerivationError, derive_template, render_jinja
from ollama_oci.gotemplate import TemplateError, check_ollama_template, render

with open(os.path.join(REPO, "tests", "data_chat_templates.json")) as f:
    DATA = json.load(f)

# conversations the derivation never saw (its own checks use others)
CONVERSATIONS = [
    [("user", "Write a haiku about registries.")],
    [("system", "You answer in French."), ("user", "Hello"), ("assistant", "Bonjour !"), ("user", "Thanks")],
    [("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"), ("user", "e"), ("assistant", "f"),
     ("user", "g")],
    [("system", "Only JSON."), ("user", "{\"x\": 1} <tag> & stuff")],
    [("user", "Line one\nline two\n\nline four"), ("assistant", "OK\nsure"), ("user", "Again?")],
]


def _same_text(jinja: str, derived, eos: str = "</s>") -> int:
    """Render every conversation both ways; return how many the Jinja template accepts (all must match)."""
    jobs = [([{"role": r, "content": c} for r, c in conv], True) for conv in CONVERSATIONS]
    want = render_jinja(jinja, jobs, eos_token=eos)
    compared = 0
    for conv, w in zip(CONVERSATIONS, want):
        if isinstance(w, tuple):  # the Jinja template refuses this conversation (e.g. a system message)
            continue
        msgs = [{"Role": r, "Content": c} for r, c in conv]
        if derived.system == "unsupported":
            msgs = [m for m in msgs if m["Role"] != "system"]
        data = {"Messages": msgs, "System": "\n\n".join(c for r, c in conv if r == "system")}
        assert render(derived.template, data) == w, conv
        compared += 1
    return compared


@pytest.mark.parametrize("family", ["llama3", "chatml", "qwen-chatml-default-system", "gemma", "mistral",
                                    "zephyr", "chatqa"])
def test_families_render_like_their_jinja_templates(family):
    src = DATA["jinja"][family]
    d = derive_template(src, eos_token="</s>")
    check_ollama_template(d.template)  # a template Ollama's parser accepts
    assert _same_text(src, d) >= 3
    expected_stops = {"llama3": {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
                      "chatml": {"<|im_start|>", "<|im_end|>"},
                      "qwen-chatml-default-system": {"<|im_start|>", "<|im_end|>"},
                      "gemma": {"<start_of_turn>", "<end_of_turn>"},
                      "mistral": {"[INST]", "[/INST]"}}.get(family)
    if expected_stops:
        assert expected_stops <= set(d.stop)  # the stop words ollama ships for these families, at least
    assert d.system == {"qwen-chatml-default-system": "default", "gemma": "unsupported",
                        "mistral": "unsupported"}.get(family, "turn")


def test_phi3_gguf_packs_with_a_derived_template(tmp_path):
    path = shared_path("ggml-vocab-phi-3.gguf")
    store = OllamaStore(str(tmp_path / "models"))
    warnings = []
    res = pack(Recipe(files=[path]), "phi3:vocab", [store], warn=warnings.append)
    kinds = [l.kind for l in res.manifest.layers]
    assert kinds == ["model", "template", "params"]
    m, _ = store.get_manifest(parse_name("phi3:vocab"))
    template = store.read_blob(m.layers_of(MT.TEMPLATE)[0].digest, 1 << 20).decode()
    params = json.loads(store.read_blob(m.layers_of(MT.PARAMS)[0].digest, 1 << 20))
    assert {"<|end|>", "<|user|>", "<|assistant|>"} <= set(params["stop"])
    assert all(s in ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>") for s in params["stop"])
    assert any("derived" in w for w in warnings) and any("no place for a system prompt" in w for w in warnings)
    from ollama_oci import read_gguf
    with read_gguf(path) as g:
        jinja = g["tokenizer.chat_template"]
    d = derive_template(jinja)
    assert d.template == template
    assert _same_text(jinja, d) >= 3
    # show says where the template came from
    cp = run_cli("show", "phi3:vocab", "--models-dir", store.root, "--json", check=0)
    assert json.loads(cp.stdout)["template_source"] == "derived"


def test_system_folded_into_the_first_user_turn():
    """A template that writes the system prompt inside the first user turn (the shape Gemma 3 uses);
    synthetic: no real template of that shape is small enough to be in the fixtures."""
    src = ("{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first = messages[0]['content'] + '\\n\\n' -%}"
           "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first = '' -%}{%- set loop_messages = messages -%}"
           "{%- endif -%}{%- for message in loop_messages -%}{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
           "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
           "{{ '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' }}"
           "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}")
    d = derive_template(src)
    assert d.system == "first-user"
    assert _same_text(src, d) == len(CONVERSATIONS)


def test_explicit_template_wins_and_auto_can_be_turned_off(tmp_path):
    store = OllamaStore(str(tmp_path / "m"))
    res = pack(Recipe(files=[TINY], template="{{ .Prompt }}"), "a", [store])
    t = [l for l in res.manifest.layers if l.kind == "template"]
    assert store.read_blob(t[0].digest, 100) == b"{{ .Prompt }}"
    res = pack(Recipe(files=[TINY], auto_template=False), "b", [store])
    assert [l.kind for l in res.manifest.layers] == ["model"]
    cp = run_cli("pack", TINY, "--name", "c", "--no-auto-template", "--models-dir", tmp_path / "m", "--json", check=0)
    assert [l["kind"] for l in json.loads(cp.stdout)["layers"]] == ["model"]


def test_invalid_explicit_template_is_refused_like_ollama(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}")  # Jinja, not Go
    cp = run_cli("pack", TINY, "--template", bad, "--models-dir", tmp_path / "m")
    assert cp.returncode == 3 and "template error" in cp.stderr and "bos_token" in cp.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["llama3.1", "gemma3", "mistral", "command-r", "solar-instruct", "gemma-instruct"])
def test_ollamas_own_templates_pass_the_check(name):
    check_ollama_template(DATA["ollama_gotmpl"][name])


def test_break_and_continue_as_go_has_them():
    """Go 1.18+ text/template: {{break}} and {{continue}} inside a range body only (Ollama's
    command-r template skips system messages with {{continue}})."""
    from ollama_oci.gotemplate import TemplateError, parse, render
    t = "{{ range $i, $m := .M }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $m }},{{ end }}"
    assert render(t, {"M": ["a", "b", "c", "d", "e"]}) == "a,c,"
    out = render(DATA["ollama_gotmpl"]["command-r"], {"Messages": [{"Role": "system", "Content": "sys-xyz"},
                                                                   {"Role": "user", "Content": "hi"}]})
    assert "sys-xyz" not in out and "<|USER_TOKEN|>hi" in out
    for bad, msg in (("{{ break }}", "{{break}} outside {{range}}"),
                     ("{{ range .M }}{{ else }}{{ continue }}{{ end }}", "{{continue}} outside {{range}}"),
                     ("{{ range .M }}{{ break 1 }}{{ end }}", "in {{break}}")):
        with pytest.raises(TemplateError, match=re.escape(msg)):
            parse(bad)


@pytest.mark.parametrize("src,why", [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "took more than"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ 'x' * 100000000 }}", "repetition too large"),
    ("{% for i in range(99999) %}{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}", "output larger"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ("{{ raise_exception('no') }}", "template raised"),
])
def test_hostile_templates_are_stopped(src, why):
    with pytest.raises(TemplateDerivationError) as ei:
        derive_template(src, timeout=1.5)
    assert why in str(ei.value)


def test_hostile_template_in_a_gguf_packs_without_a_template(tmp_path):
    from gguf import GGUFWriter
    path = str(tmp_path / "evil.gguf")
    w = GGUFWriter(path, "llama")
    w.add_chat_template("{{ ''.__class__.__mro__ }}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    warnings = []
    res = pack(Recipe(files=[path]), "evil", [OllamaStore(str(tmp_path / "m"))], warn=warnings.append)
    assert [l.kind for l in res.manifest.layers] == ["model"]
    assert any("no template layer" in w and "unsafe" in w for w in warnings)


def test_go_template_renderer_semantics():
    # trim markers, variables assigned inside range, else-if chains, literals with braces
    t = ('{{- $n := 0 }}{{ range .Messages }}{{ $n = len $.Messages }}{{ end -}}\n  [{{ $n }}]'
         '{{ if eq 1 2 }}a{{ else if ne 1 2 }}b{{ else }}c{{ end }}{{ "{{" }}{{/* note */}}')
    assert render(t, {"Messages": [1, 2, 3]}) == "[3]b{{"
    with pytest.raises(TemplateError):
        check_ollama_template("{{ .Messages | jinja }}")


def test_go_template_parser_and_renderer_never_crash_on_garbage():
    """User TEMPLATEs are untrusted: only TemplateError may come out of checking or rendering."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    pieces = st.sampled_from(["{{", "}}", "{{-", "-}}", " ", "\n", "if", "else", "end", "range", "with", ".System",
                              ".Messages", "$", "$x", ":=", "=", "|", "(", ")", '"', "\\", "`", "eq", "len", "slice",
                              "and", "not", "1", "-1", ".", ",", "/*", "*/", "$.Messages", ".Role", '"user"',
                              "define", "template", "block", "x", "index", "print"])

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(pieces, max_size=30).map("".join))
    def run(t):
        try:
            nodes = check_ollama_template(t)
            render(nodes, {"System": "s", "Messages": [{"Role": "user", "Content": "c"}]})
        except TemplateError:
            pass
    run()


def test_string_growth_is_bounded_in_memory_as_well_as_time():
    """ljust, center, %-widths and str.format slip past the repetition and output caps; the sandbox's
    memory limit stops them at once (issue 14 item 6). Measured in a fresh process: the rendering
    child's peak RSS stays far under 256 MB, and each fails in well under 6 s."""
    import subprocess
    import sys
    code = r'''
import resource, time
from ollama_oci.chat_template import derive_template, TemplateDerivationError
for src in ["{{ 'x'.ljust(4000000000)|length }}", "{{ 'x'.center(3000000000) }}", "{{ '%4000000000s' % 'x' }}",
            "{{ '{:>4000000000}'.format('x') }}", "{{ ('x' * 1000000).ljust(900000000) }}"]:
    t = time.time()
    try:
        derive_template(src)
        print("derived", src)
    except TemplateDerivationError as e:
        print("refused", round(time.time() - t, 2), "memory limit" in str(e))
print("rss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
'''
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = cp.stdout.split("\n")
    refused = [ln.split() for ln in lines if ln.startswith("refused")]
    assert len(refused) == 5, cp.stdout + cp.stderr
    assert all(float(r[1]) < 6 and r[2] == "True" for r in refused), refused
    rss = int(next(ln.split()[1] for ln in lines if ln.startswith("rss")))
    assert rss < 256, rss


GRANITE_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set system_message = \"Knowledge Cutoff Date: April 2024."
    "\\nToday's Date: \" + strftime_now('%B %d, %Y') + \".\\nYou are Granite.\" %}{%- set loop_messages = messages %}"
    "{%- endif %}{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}"
    "{%- for message in loop_messages %}{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + "
    "message['content'] + '<|end_of_text|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}")


def test_no_date_is_baked_into_a_derived_template():
    """strftime_now becomes Ollama's currentDate at chat time (issue 14 item 1): the derived template
    holds no date, and rendering it on two clocks gives each clock's date in the template's format."""
    import datetime

    from ollama_oci import gotemplate
    d = derive_template(GRANITE_LIKE)
    assert "Today's Date: {{" in d.template and "2026" not in d.template and "\ue000" not in d.template
    for day in (datetime.date(2030, 1, 5), datetime.date(2041, 12, 31)):
        gotemplate.TODAY = lambda day=day: day
        try:
            out = gotemplate.render(d.template, {"Messages": [{"Role": "user", "Content": "hi"}], "System": ""})
        finally:
            gotemplate.TODAY = None
        assert f"Today's Date: {day.strftime('%B %d, %Y')}." in out
    iso = derive_template("{{ 'Date: ' + strftime_now('%Y-%m-%d') }}{% for m in messages %}[{{ m['role'] }}]"
                          "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}")
    assert iso.template.startswith("Date: {{ currentDate }}")
    with pytest.raises(TemplateDerivationError, match=r"strftime_now\('%A'\).*'%A' cannot be built"):
        derive_template("{{ strftime_now('%A') }}{% for m in messages %}{{ m['content'] }}{% endfor %}")


@pytest.mark.parametrize("src, vocab, stops", [
    ("{% for m in messages %}{% if m['role'] == 'user' %}<｜User｜>{{ m['content'] }}{% elif m['role'] == 'assistant' %}"
     "<｜Assistant｜>{{ m['content'] }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}",
     ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>"],
     ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"]),          # DeepSeek-R1 distills: never "<think>"
    ("{% for m in messages %}{% if m['role'] == 'user' %}[|user|]{{ m['content'] }}\n{% elif m['role'] == 'assistant' %}"
     "[|assistant|]{{ m['content'] }}[|endofturn|]\n{% endif %}{% endfor %}{% if add_generation_prompt %}[|assistant|]"
     "{% endif %}", ["[|user|]", "[|assistant|]", "[|endofturn|]"], ["[|user|]", "[|assistant|]", "[|endofturn|]"]),
    ("{% for m in messages %}{% if m['role'] == 'user' %}<extra_id_1>User\n{{ m['content'] }}\n"
     "{% elif m['role'] == 'assistant' %}<extra_id_1>Assistant\n{{ m['content'] }}\n{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}<extra_id_1>Assistant\n{% endif %}", ["<extra_id_1>"], ["<extra_id_1>"]),
    # Qwen 3: every earlier assistant turn opens with <think>...</think>, and an answer with <think>
    ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}<think>\n\n</think>\n\n"
     "{% endif %}{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
     "{% endif %}", ["<|im_start|>", "<|im_end|>", "<think>", "</think>"], ["<|im_start|>", "<|im_end|>"]),
])
def test_stop_words_in_every_bracket_style(src, vocab, stops):
    """Turn markers as full-width <｜…｜> (DeepSeek), [|…|] (EXAONE) and <extra_id_N> (Nemotron) are stop
    words; what only the generation prompt adds (DeepSeek-R1's <think>) and thinking tags in a turn's
    opening (Qwen 3) are not (issue 14 item 5)."""
    assert derive_template(src, vocab=vocab).stop == stops


def test_jinja_loop_controls_as_transformers_enables_them():
    src = ("{% for m in messages %}{% if m['role'] == 'system' %}{% continue %}{% endif %}<|{{ m['role'] }}|>"
           "{{ m['content'] }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    d = derive_template(src)
    assert "<|user|>" in d.template


def test_an_empty_system_message_is_one_system_turn():
    """A template with a default system prompt: an empty system message replaces the default, it does
    not come after it (issue 14 item 2: Qwen2.5, Llama 3.x, SmolLM2 ... gave two system turns)."""
    from ollama_oci.gotemplate import render
    src = DATA["jinja"]["qwen-chatml-default-system"]
    src = src if isinstance(src, str) else src.get("template") or src.get("jinja")
    d = derive_template(src, eos_token="</s>")
    out = render(d.template, {"Messages": [{"Role": "system", "Content": ""}, {"Role": "user", "Content": "Hi."}],
                              "System": ""})
    assert out.count("<|im_start|>system") == 1
    want = render_jinja(src, [([{"role": "system", "content": ""}, {"role": "user", "content": "Hi."}], True)],
                        eos_token="</s>")[0]
    assert out == want


def test_an_empty_system_message_can_mean_the_default():
    """The other convention (MiniMax-M2): a system message without content is no system message, and
    the default system prompt stands in for it; a system message with content replaces the default."""
    from ollama_oci.chat_tools import go_message
    from ollama_oci.gotemplate import ollama_execute
    src = ('{%- if messages[0].role == "system" and messages[0].content -%}{%- set sys = messages[0].content -%}'
           '{%- else -%}{%- set sys = "You are helpful." -%}{%- endif -%}{{- "<S>" + sys + "</S>" -}}'
           '{%- for m in messages if m.role != "system" -%}{{- "<" + m.role + ">" + m.content + "</>" -}}{%- endfor -%}'
           '{%- if add_generation_prompt -%}{{- "<assistant>" -}}{%- endif -%}')
    d = derive_template(src, eos_token="</>")
    convs = [[{"role": "system", "content": ""}, {"role": "user", "content": "Hi."}],
             [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi."}],
             [{"role": "user", "content": "Hi."}]]
    wants = render_jinja(src, [(c, True) for c in convs], eos_token="</>")
    outs = [ollama_execute(d.template, [go_message(m) for m in c]) for c in convs]
    assert outs == wants
    assert outs[0] == "<S>You are helpful.</S><user>Hi.</><assistant>" and outs[1].startswith("<S>Be terse.</S>")


def _gguf_with_template(path, chat_template):
    """A minimal model GGUF (llama architecture, a ChatML vocabulary) carrying ``chat_template``."""
    import struct

    def s(x: bytes) -> bytes:
        return struct.pack("<Q", len(x)) + x
    tokens = [b"<unk>", b"<s>", b"</s>", b"<|im_start|>", b"<|im_end|>"]
    kvs = [(b"general.architecture", struct.pack("<I", 8) + s(b"llama")),
           (b"tokenizer.ggml.tokens", struct.pack("<IIQ", 9, 8, len(tokens)) + b"".join(s(t) for t in tokens)),
           (b"tokenizer.ggml.token_type", struct.pack("<IIQ", 9, 5, 5) + struct.pack("<5i", 2, 3, 3, 3, 3)),
           (b"tokenizer.ggml.eos_token_id", struct.pack("<II", 4, 4))]
    if chat_template is not None:
        kvs.append((b"tokenizer.chat_template", struct.pack("<I", 8) + s(chat_template.encode())))
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + b"".join(s(k) + v for k, v in kvs)
    head += s(b"t") + struct.pack("<IQIQ", 1, 8, 0, 0)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + b"\0" * 32)
    return str(path)


TOOLS_CHATML = (
    "{%- if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{%- endif %}"
    "{% for message in messages %}{% if message['role'] == 'tool' %}<|im_start|>tool\n<tool_response>"
    "{{ message['content'] }}</tool_response><|im_end|>\n{% else %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}{% if message.tool_calls %}<tool_call>{{ message.tool_calls | tojson }}</tool_call>"
    "{% endif %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


#: tools listed as prose (name and description): derived field by field
TOOLS_PROSE = TOOLS_CHATML.replace("Tools: {{ tools | tojson }}",
                                   "Tools: {% for t in tools %}{{ t.function.name }} ({{ t.function.description }}) "
                                   "{% endfor %}")
#: tool names in capitals, which no Ollama template function writes: the derived template carries no tools
TOOLS_OWN_FORM = TOOLS_PROSE.replace("{{ t.function.name }}", "{{ t.function.name | upper }}")


def test_which_template_ollama_will_use_and_template_modes(tmp_path):
    """pack and show say which template each Ollama version renders with, as server/images.go decides;
    --template-mode chooses."""
    from ollama_oci.template_choice import chat_template_capabilities, go_template_capabilities
    models = tmp_path / "m"
    # tools written as JSON: the derived Go template writes them too, and Ollama >= 0.30 keeps it
    json_tools = _gguf_with_template(tmp_path / "json-tools.gguf", TOOLS_CHATML)
    cp = run_cli("pack", json_tools, "--name", "tools:json", "--models-dir", models, "--json", check=0)
    doc = json.loads(cp.stdout)
    sel = {s["ollama"]: s["source"] for s in doc["template_selection"]}
    assert sel[">=0.30"] == "go_template" and sel["<0.30"] == "go_template", sel
    assert "tool definitions, calls and results are written as the chat template writes them" in cp.stderr
    gguf = _gguf_with_template(tmp_path / "tools.gguf", TOOLS_OWN_FORM)
    cp = run_cli("pack", gguf, "--name", "tools:auto", "--models-dir", models, "--json", check=0)
    doc = json.loads(cp.stdout)
    assert "template" in [x["kind"] for x in doc["layers"]]
    assert "tools are left out (tool definitions are not written as JSON" in cp.stderr
    # the Jinja template has tools, the derived Go template has none: Ollama >= 0.30 skips the Go one
    sel = {s["ollama"]: s["source"] for s in doc["template_selection"]}
    assert sel[">=0.30"] == "gguf_chat_template" and sel["<0.30"] == "go_template", sel
    assert "Ollama >= 0.30 will not use this Go template" in cp.stderr
    shown = json.loads(run_cli("show", "tools:auto", "--models-dir", models, "--json", check=0).stdout)
    assert shown["template_selection"] == doc["template_selection"]
    # inspect says the same of the GGUF before anything is packed, for both modes
    seen = json.loads(run_cli("inspect", gguf, "--json", check=0).stdout)["template_selection"]
    assert seen["chat_template_capabilities"] == ["tools"]
    assert [s["source"] for s in seen["auto"]] == [s["source"] for s in doc["template_selection"]]
    assert [(s["ollama"], s["source"]) for s in seen["gguf"]] == [(">=0.30", "gguf_chat_template"), ("<0.30", "default")]
    # gguf mode: no template layer; Ollama >= 0.30 renders the Jinja, older versions the raw prompt
    doc = json.loads(run_cli("pack", gguf, "--name", "tools:gguf", "--template-mode", "gguf", "--models-dir", models,
                             "--json", check=0).stdout)
    assert "template" not in [x["kind"] for x in doc["layers"]]
    assert [(s["ollama"], s["source"]) for s in doc["template_selection"]] == [(">=0.30", "gguf_chat_template"),
                                                                               ("<0.30", "default")]
    # go mode: a Go template or an error
    plain = _gguf_with_template(tmp_path / "plain.gguf", None)
    cp = run_cli("pack", plain, "--name", "p:1", "--template-mode", "go", "--models-dir", models)
    assert cp.returncode == 3 and "--template-mode go" in cp.stderr
    bad = _gguf_with_template(tmp_path / "bad.gguf", "{{ raise_exception('no') }}")
    cp = run_cli("pack", bad, "--name", "b:1", "--template-mode", "go", "--models-dir", models)
    assert cp.returncode == 3 and "--template-mode go needs a Go template" in cp.stderr
    cp = run_cli("pack", gguf, "--name", "x:1", "--template-mode", "gguf", "--template", os.path.join(
        REPO, "tests", "ollama_templates", "chatml.gotmpl"), "--models-dir", models)
    assert cp.returncode == 3 and "TEMPLATE was given" in cp.stderr
    # Ollama's capability tests, string for string
    assert chat_template_capabilities(TOOLS_CHATML) == ["tools"]
    assert chat_template_capabilities("<think>x</think>") == ["thinking"]
    assert chat_template_capabilities("{{ content.split('</think>') }}") == ["thinking"]
    with open(os.path.join(REPO, "tests", "ollama_templates", "command-r.gotmpl")) as f:
        assert go_template_capabilities(f.read()) == ["tools"]
    assert go_template_capabilities("{{ .Prompt }}{{ .Suffix }}") == ["insert"]
    thinking = ('{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}'
                '{{ .Content }}{{ end }}')
    assert go_template_capabilities(thinking) == ["thinking"]


def test_a_trimming_chat_template_is_said_to_differ_on_whitespace(tmp_path):
    """Llama 3 and Gemma trim each message; Go templates cannot: the derivation says so (and pack warns)."""
    assert derive_template(DATA["jinja"]["llama3"]).trims
    assert derive_template(DATA["jinja"]["gemma"]).trims
    assert not derive_template(DATA["jinja"]["chatml"]).trims
    gguf = _gguf_with_template(tmp_path / "llama3.gguf", DATA["jinja"]["llama3"])
    cp = run_cli("pack", gguf, "--name", "l3:1", "--models-dir", tmp_path / "m", check=0)
    assert "trims each message" in cp.stderr and "--template-mode gguf" in cp.stderr


PHI35 = ("{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
         "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
         "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
         "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")


def test_eos_without_a_generation_prompt_and_a_skipped_empty_system_message():
    """Phi-3.5/4-mini's shape: EOS ends a conversation rendered without a generation prompt (Ollama
    always renders for generation), and an empty system message writes no turn."""
    d = derive_template(PHI35, eos_token="<|endoftext|>")
    assert "<|endoftext|>" not in d.template and d.system == "turn"
    assert _same_text(PHI35, d, eos="<|endoftext|>") == len(CONVERSATIONS)
    empty = render(d.template, {"Messages": [{"Role": "system", "Content": ""}, {"Role": "user", "Content": "Hi"}]})
    want = render_jinja(PHI35, [([{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}], True)],
                        eos_token="<|endoftext|>")[0]
    assert empty == want == "<|user|>\nHi<|end|>\n<|assistant|>\n"


LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
          "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
          "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
          "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
          "alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}"
          "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
          "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
          "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")


def test_llama2_system_folded_into_the_first_inst_and_bos_before_every_later_turn():
    """Llama 2: <<SYS>> inside the first [INST], and <s> before every user turn but the first (which
    the runtime adds): the derived template renders as the Jinja one, less that first BOS."""
    d = derive_template(LLAMA2, bos_token="<s>", eos_token="</s>")
    assert d.system == "first-user" and d.trims
    jobs = [([{"role": r, "content": c} for r, c in conv], True) for conv in CONVERSATIONS]
    for conv, want in zip(CONVERSATIONS, render_jinja(LLAMA2, jobs, bos_token="<s>", eos_token="</s>")):
        if isinstance(want, tuple):
            continue
        got = render(d.template, {"Messages": [{"Role": r, "Content": c} for r, c in conv]})
        assert "<s>" + got == want, conv
    assert "</s><s>[INST]" in render(d.template, {"Messages": [{"Role": "user", "Content": "a"},
                                                               {"Role": "assistant", "Content": "b"},
                                                               {"Role": "user", "Content": "c"}]})


NEMOTRON = ("{{'<extra_id_0>System'}}{% for message in messages %}{% if message['role'] == 'system' %}"
            "{{'\\n' + message['content'].strip()}}{% if tools or contexts %}{{'\\n'}}{% endif %}{% endif %}{% endfor %}"
            "{{'\\n\\n'}}{% for message in messages %}{% if message['role'] == 'user' %}"
            "{{ '<extra_id_1>User\\n' + message['content'].strip() + '\\n' }}{% elif message['role'] == 'assistant' %}"
            "{{ '<extra_id_1>Assistant\\n' + message['content'].strip() + '\\n' }}{% endif %}{% endfor %}"
            "{%- if add_generation_prompt %}{{'<extra_id_1>Assistant\\n'}}{%- endif %}")


def test_nemotron_system_header_before_every_turn():
    """Nemotron-mini: the system prompt goes into a fixed header written before the turns."""
    d = derive_template(NEMOTRON, eos_token="</s>", vocab=["<extra_id_0>", "<extra_id_1>", "</s>"])
    assert d.system == "header" and d.stop == ["<extra_id_1>"]
    assert _same_text(NEMOTRON, d) == len(CONVERSATIONS)


QWEN3 = '{%- if tools %}{{- \'<|im_start|>system\\n\' }}{%- if messages[0].role == \'system\' %}{{- messages[0].content + \'\\n\\n\' }}{%- endif %}{{- "# Tools" }}{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}{{- "<|im_end|>\\n" }}{%- else %}{%- if messages[0].role == \'system\' %}{{- \'<|im_start|>system\\n\' + messages[0].content + \'<|im_end|>\\n\' }}{%- endif %}{%- endif %}\n{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith(\'<tool_response>\') and message.content.endswith(\'</tool_response>\')) %}{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}\n{%- for message in messages %}\n    {%- if message.content is string %}{%- set content = message.content %}{%- else %}{%- set content = \'\' %}{%- endif %}\n    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}\n        {{- \'<|im_start|>\' + message.role + \'\\n\' + content + \'<|im_end|>\' + \'\\n\' }}\n    {%- elif message.role == "assistant" %}\n        {%- set reasoning_content = \'\' %}\n        {%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}{%- else %}{%- if \'</think>\' in content %}{%- set reasoning_content = content.split(\'</think>\')[0].rstrip(\'\\n\').split(\'<think>\')[-1].lstrip(\'\\n\') %}{%- set content = content.split(\'</think>\')[-1].lstrip(\'\\n\') %}{%- endif %}{%- endif %}\n        {%- if loop.index0 > ns.last_query_index %}\n            {%- if loop.last or (not loop.last and reasoning_content) %}\n                {{- \'<|im_start|>\' + message.role + \'\\n<think>\\n\' + reasoning_content.strip(\'\\n\') + \'\\n</think>\\n\\n\' + content.lstrip(\'\\n\') }}\n            {%- else %}\n                {{- \'<|im_start|>\' + message.role + \'\\n\' + content }}\n            {%- endif %}\n        {%- else %}\n            {{- \'<|im_start|>\' + message.role + \'\\n\' + content }}\n        {%- endif %}\n        {{- \'<|im_end|>\\n\' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}{{- \'<|im_start|>assistant\\n\' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- \'<think>\\n\\n</think>\\n\\n\' }}{%- endif %}{%- endif %}'


def test_qwen3_last_assistant_turn_unlike_history():
    """Qwen3 writes the last assistant turn with an empty <think> block and earlier ones without:
    Ollama renders for the next answer, so the turns come from a conversation whose assistant turn is
    history, and the derived template renders every conversation ending in a user turn as Qwen3's."""
    d = derive_template(QWEN3, eos_token="<|im_end|>", vocab=["<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    assert d.system == "turn" and d.stop == ["<|im_start|>", "<|im_end|>"]
    assert _same_text(QWEN3, d, eos="<|im_end|>") == len(CONVERSATIONS)


OLMO2 = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}{% else %}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}"


def test_olmo2_history_assistant_turn_ends_unlike_the_last():
    """OLMo 2 writes a newline after EOS in history but not after the last assistant turn."""
    d = derive_template(OLMO2, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    assert d.system == "turn"
    jobs = [([{"role": r, "content": c} for r, c in conv], True) for conv in CONVERSATIONS]
    for conv, want in zip(CONVERSATIONS, render_jinja(OLMO2, jobs, bos_token="<|endoftext|>",
                                                      eos_token="<|endoftext|>")):
        got = render(d.template, {"Messages": [{"Role": r, "Content": c} for r, c in conv]})
        assert "<|endoftext|>" + got == want, conv

"""Ollama's own 20 templates (tests/ollama_templates/, MIT, from Ollama's source): each packs, comes
back byte-identical, and renders as Ollama's golden test outputs say, through this project's Go template
parser and an emulation of Ollama's Template.Execute."""

from __future__ import annotations

import json
import os

import pytest

from conftest import TINY, run_cli
from ollama_oci.gotemplate import ollama_execute

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ollama_templates")
NAMES = sorted(f for f in os.listdir(HERE) if f.endswith(".gotmpl"))
CASES = {
    "user": [("user", "Hello, how are you?")],
    "user-assistant-user": [("user", "Hello, how are you?"),
                            ("assistant", "I'm doing great. How can I help you today?"),
                            ("user", "I'd like to show off how chat templating works!")],
    "system-user-assistant-user": [("system", "You are a helpful assistant."), ("user", "Hello, how are you?"),
                                   ("assistant", "I'm doing great. How can I help you today?"),
                                   ("user", "I'd like to show off how chat templating works!")],
}
#: Ollama's test strips one trailing space from these templates' output before comparing
TRAILING_SPACE = {"chatqa.gotmpl", "llama2-chat.gotmpl", "mistral-instruct.gotmpl", "openchat.gotmpl", "vicuna.gotmpl"}


def test_all_twenty_are_here():
    assert len(NAMES) == 20


@pytest.mark.parametrize("name", NAMES)
def test_renders_as_ollamas_golden_outputs(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        text = f.read().replace("\r\n", "\n")
    for case, conv in CASES.items():
        got = ollama_execute(text, [{"Role": r, "Content": c} for r, c in conv])
        if name in TRAILING_SPACE and got.endswith(" "):
            got = got[:-1]
        with open(os.path.join(HERE, "testdata", name, case), encoding="utf-8") as f:
            want = f.read()
        assert got == want, (name, case)


@pytest.mark.parametrize("name", NAMES)
def test_packs_and_comes_back_byte_identical(tmp_path, name):
    path = os.path.join(HERE, name)
    cp = run_cli("pack", TINY, "--template", path, "--name", "t:1", "--models-dir", tmp_path / "m", "--json",
                 check=0)
    layer = next(x for x in json.loads(cp.stdout)["layers"] if x["kind"] == "template")
    blob = tmp_path / "m" / "blobs" / layer["digest"].replace(":", "-")
    assert blob.read_bytes() == open(path, "rb").read()
    shown = json.loads(run_cli("show", "t:1", "--models-dir", tmp_path / "m", "--json", check=0).stdout)
    assert shown["template"] == open(path, encoding="utf-8").read()


# What Go's text/template parser (Go 1.26, Ollama's go.mod) and Ollama's template.Parse say of each
# template: None = accepted, else a piece of the error. Read off parse/lex.go and parse/parse.go of
# Go and template/template.go of Ollama (Identifiers), then checked against Ollama's own template.Parse
# (built from its source, commit fb30760, with Go 1.27.3): it says the same of every entry, and of
# 12,000 generated templates (docs/design.md, "Checked with Ollama's own code").
CORPUS = [
    ('{{ template "x" }}', "undefined template specified"),          # Ollama refuses; Go would parse it
    ('{{ template "x" . }}', None),
    ("{{ template }}", 'unexpected "}}" in template clause'),
    ("{{ $x }}", 'undefined variable "$x"'),
    ("{{ $x = 1 }}", None),                                          # parses; executing it fails
    ("{{ $x := $x }}", None),                                       # declared before its value is read
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", None),
    ("{{ if true }}{{ $y := 2 }}{{ end }}{{ $y }}", 'undefined variable "$y"'),
    ("{{ range $i, $m := .Messages }}{{ $i }}{{ end }}{{ $i }}", 'undefined variable "$i"'),
    ("{{ with $s := .System }}{{ $s }}{{ else }}{{ $s }}{{ end }}", None),
    ('{{ $x := 1 }}{{ define "t" }}{{ $x }}{{ end }}', 'undefined variable "$x"'),
    ("{{ range $i, $e, $f := .Messages }}{{ end }}", "too many declarations in range"),
    ("{{ $a, $b := 1 }}", "too many declarations in command"),
    ("{{ 'a' }}", None), ("{{ '\\n' }}", None), ("{{ '\\u00e9' }}", None), ("{{ 'ab' }}", "character constant"),
    ("{{ .Images }}{{ .Messages }}{{ .Anything.Deep }}", None),       # fields are not checked by the parser
    ("{{ range .Messages }}{{ break }}{{ end }}", None),
    ("{{ range .Messages }}{{ if .Content }}{{ continue }}{{ end }}{{ end }}", None),
    ("{{ break }}", "{{break}} outside {{range}}"),
    ("{{ with .System }}{{ continue }}{{ end }}", "{{continue}} outside {{range}}"),
    ("{{ bos_token }}", 'function "bos_token" not defined'),
    ("{{ json .Tools }}{{ currentDate }}{{ yesterdayDate }}{{ toTypeScriptType . }}", None),
    ("{{ if }}{{ end }}", "missing value for if"),
    ("{{ range }}{{ end }}", "missing value for range"),
    ("{{ }}", "missing value for command"),
    ('{{ "a" | "b" }}', "non executable command in pipeline stage 2"),
    ('{{ "a" | printf "%s" }}', None),
    ("{{ 1.5e3 }}{{ 0x1F }}{{ 0o17 }}{{ 0b101 }}{{ 1_000 }}{{ -1 }}{{ +2 }}{{ .5 }}", None),
    ("{{ 1abc }}", "bad number syntax"),
    ("{{/* a comment */}}{{- /* trimmed */ -}}", None),
    ("{{ /* not a comment */ }}", "unexpected"),
    ("{{/* c */ x}}", "comment ends before closing delimiter"),
    ("{{ nil }}", None),                                              # an execution error, not a parse one
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ if .System }}", "unexpected EOF"),
    ("{{ .System", "unclosed action"),
    ('{{ "open }}', "unterminated"),
    ("{{ with .A }}a{{ else with .B }}b{{ else }}c{{ end }}", None),  # else with: Go 1.23+
    ("{{ if .A }}{{ else range }}{{ end }}", 'unexpected <range> in else'),
    ('{{ block "b" . }}{{ .System }}{{ end }}', None),
    ('{{ define "t" }}{{ .X }}{{ end }}{{ template "t" . }}', None),
    # found by comparing with Ollama's own template.Parse on generated templates
    ("{{ len .Messages | }}", None),                                 # a trailing "|" ends the pipeline
    ("{{ | json }}", 'unexpected "|" in command'),
    ("{{ json . | | json }}", 'unexpected "|" in command'),
    ("{{ if .A }}{{ end .B }}", 'unexpected ".B" in end'),
    ("{{ len(.Messages) }}", 'unexpected "(" in operand'),          # operands need a space between
    ("{{ len 1.2.3 }}", 'unexpected ".3" in operand'),
    ("{{ len 08 }}", 'integer overflow: "08"'),
    ("{{ len 99999999999999999999 }}", "integer overflow"),
    ("{{ len 08i }}", None),
    ("{{ len 0b102 }}", 'bad number syntax: "0b102"'),
    ("{{ len 1__0 }}", 'illegal number syntax: "1__0"'),
    ("{{ range $a, 1 }}{{ end }}", "range can only initialize variables"),
    ("{{ range $i, $m = .Messages }}{{ end }}", None),              # parses; executing it fails
    ("{{ (($x := 1)) }}{{ $x }}", None),                             # a declaration in parentheses
    # definitions: only at the top (derived templates put theirs there)
    ('{{ if .X }}{{ define "a" }}x{{ end }}{{ end }}', "unexpected <define> in command"),
    ('{{ define "a" }}{{ define "b" }}{{ end }}{{ end }}', "unexpected <define> in command"),
    ('{{ range .Messages }}{{ define "a" }}{{ end }}{{ end }}', "unexpected <define> in command"),
    ('{{ if .X }}{{ block "a" . }}x{{ end }}{{ end }}', None),         # a block may stand anywhere
    ('{{ template "nope" . }}', None),                                # an execution error, not a parse one
]


@pytest.mark.parametrize("text, error", CORPUS, ids=[t for t, _ in CORPUS])
def test_the_parser_agrees_with_ollamas(text, error):
    from ollama_oci.gotemplate import TemplateError, check_ollama_template
    if error is None:
        check_ollama_template(text)
    else:
        with pytest.raises(TemplateError) as ei:
            check_ollama_template(text)
        assert error in str(ei.value)


def test_a_defined_template_runs_with_its_argument_and_may_call_itself():
    """{{ template "name" pipeline }} runs the definition with the pipeline as the dot and $ (what
    Go does; checked with Ollama's engine): derived templates write nested JSON values so."""
    from ollama_oci.gojson import GoMap
    from ollama_oci.gotemplate import TemplateError, render
    t = ('{{ define "d" }}{{ if eq (printf "%T" .) "[]interface {}" }}[{{ range . }}{{ template "d" . }}{{ end }}]'
         '{{ else }}{{ . }}{{ $ }}{{ end }}{{ end }}{{ $x := 1 }}{{ template "d" .V }}|{{ block "b" .W }}<{{ . }}>{{ end }}')
    assert render(t, GoMap(V=[1.0, [2.0, "a"]], W="w")) == "[11[22aa]]|<w>"
    with pytest.raises(TemplateError, match='template "nope" not defined'):
        render('{{ template "nope" . }}', {})
    with pytest.raises(TemplateError, match="maximum template depth"):
        render('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}', {})


def test_assigning_an_undeclared_variable_parses_but_fails_when_executed():
    from ollama_oci.gotemplate import TemplateError, check_ollama_template, render
    check_ollama_template("{{ $x = 1 }}")
    with pytest.raises(TemplateError, match=r"undefined variable: \$x"):
        render("{{ $x = 1 }}", {})


def test_values_print_as_go_prints_them():
    from ollama_oci.gotemplate import render
    assert render("{{ 'a' }} {{ 0x10 }} {{ 1.5e3 }} {{ 1e6 }} {{ 2.5 }} {{ true }} {{ .Missing }}", {}) == \
        "97 16 1500 1e+06 2.5 true <no value>"
    # a map ranges in key order; {{ . }} is the element
    assert render("{{ range $k, $v := .D }}{{ $k }}={{ $v }};{{ end }}{{ range .L }}[{{ . }}]{{ end }}",
                  {"D": {"b": 2, "a": 1}, "L": [1, 2]}) == "a=1;b=2;[1][2]"


def test_a_template_without_messages_runs_once_per_exchange_as_ollama_does():
    """Ollama's legacy path: .System/.Prompt/.Response per exchange, the last cut after .Response."""
    from ollama_oci.gotemplate import ollama_execute
    t = "{{ if .System }}S:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:{{ .Response }}<end>\n"
    conv = [{"Role": "system", "Content": "be brief"}, {"Role": "user", "Content": "hi"},
            {"Role": "assistant", "Content": "hello"}, {"Role": "user", "Content": "bye"}]
    assert ollama_execute(t, conv) == "S:be brief\nU:hi\nA:hello<end>\nU:bye\nA:"
    # neither .Messages nor .Response: {{ .Response }} is appended, as template.Parse does
    assert ollama_execute("Q: {{ .Prompt }} ", [{"Role": "user", "Content": "x"}]) == "Q: x "


@pytest.mark.parametrize("text, want", [
    ('{{ range .Messages }}{{ len .Content }}{{ end }}', "8"),                   # bytes, not characters
    ('{{ range .Messages }}{{ slice .Content 2 5 }}{{ end }}', "日"),
    ('{{ range .Messages }}{{ index .Content 0 }}{{ end }}', "195"),               # a byte
    ('{{ range .Messages }}{{ printf "%q" (slice .Content 0 1) }}{{ end }}', '"\\xc3"'),   # half a character
    ('{{ len (slice .Messages 1) }}', "0"),
])
def test_strings_are_bytes_as_in_go(text, want):
    """Go's len, index and slice count a string's UTF-8 bytes; each expected output is what Ollama's
    Template.Execute gave (a random comparison of 12,000 executions with Ollama's engine found the
    character-counting versions: 232 of 2,000 disagreed before)."""
    from ollama_oci.chat_tools import go_message
    assert ollama_execute(text, [go_message({"role": "user", "content": "é日本"})]) == want


@pytest.mark.parametrize("text, error", [
    ('{{ range .Messages }}{{ slice .Content 0 9 }}{{ end }}', "index out of range: 9"),
    ('{{ range .Messages }}{{ slice .Content 3 2 }}{{ end }}', "invalid slice index: 3 > 2"),
    ("{{ index .Messages 1 }}", "index out of range"),
    ("{{ index .Messages -1 }}", "index out of range: -1"),        # no wrap-around from the end
])
def test_indexes_out_of_range_fail_as_in_go(text, error):
    from ollama_oci.chat_tools import go_message
    from ollama_oci.gotemplate import TemplateError
    with pytest.raises(TemplateError, match=error):
        ollama_execute(text, [go_message({"role": "user", "content": "é日本"})])


def test_nested_objects_in_arguments_are_go_maps():
    """A call's arguments reach a template as Go maps, nested objects too: json writes their keys in
    order, as Ollama's engine did on this very conversation (a random comparison over tool data found
    the nested ones kept in arrival order)."""
    from ollama_oci.chat_tools import call_view, go_message
    call = {"function": {"name": "f", "arguments": {"z": {"k": [1, 2], "b": {"c": None, "a": 1}}, "a": 1.5,
                                                       "n": 123456789012, "t": True}}}
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    out = ollama_execute("{{ range .Messages }}{{ range .ToolCalls }}{{ json .Function.Arguments }}{{ end }}{{ end }}",
                         [go_message(m) for m in msgs])
    assert out == '{"a":1.5,"n":123456789012,"t":true,"z":{"b":{"a":1,"c":null},"k":[1,2]}}'
    assert list(call_view(call)["function"]["arguments"]["z"]) == ["b", "k"]    # the Jinja side alike


_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather & more", "parameters": {
    "type": "object", "required": ["city"], "properties": {"city": {"type": "string", "description": "The city"},
                                                           "days": {"type": ["integer", "null"]}}}}}]


@pytest.mark.parametrize("text, want", [
    ("{{ json .Tools }}", '[{"type":"function","function":{"name":"get_weather","description":"Weather \\u0026 more",'
                          '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string",'
                          '"description":"The city"},"days":{"type":["integer","null"]}}}}}]'),
    ("{{ range .Tools }}{{ . }}{{ end }}", '{"type":"function","function":{"name":"get_weather","description":'
                                          '"Weather \\u0026 more","parameters":{"type":"object","required":["city"],'
                                          '"properties":{"city":{"type":"string","description":"The city"},'
                                          '"days":{"type":["integer","null"]}}}}}'),
    ("{{ range .Tools }}{{ range $k, $v := .Function.Parameters.Properties }}{{ $k }}={{ $v.Type }}/{{ json $v.Type }};"
     "{{ end }}{{ end }}", 'city=string/"string";days=[integer null]/["integer","null"];'),
    ('{{ print 1 2 "a" 3 }}|{{ range .Tools }}{{ json .Function.Parameters.Required }}{{ range $k, $v := '
     ".Function.Parameters.Properties }}{{ json $v.Enum }}{{ $v.Enum }}{{ end }}{{ end }}", '1 2a3|["city"]null[]null[]'),
    ("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}{{ end }}{{ end }}",
     '{"city":"Paris","n":123456789012,"x":null}'),
    ('{{ range .Messages }}{{ range .ToolCalls }}{{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }}|'
     '{{ printf "%v" $v }};{{ end }}{{ end }}{{ end }}', "city=Paris|Paris;n=1.23456789012e+11|1.23456789012e+11;"
                                                       "x=<no value>|<nil>;"),
])
def test_tool_data_prints_and_encodes_as_ollamas_types(text, want):
    """Ollama's template data are Go types: a tool prints as its JSON (templateTool's String), json
    writes JSON field names, a property's type prints as PropertyType's String, a nil slice prints
    [] and encodes null, arguments are float64 and print as their JSON. Each expected output is what
    Ollama's Template.Execute gave (random templates over tool data, 2,900 of them, now agree)."""
    from ollama_oci.chat_tools import go_message, go_tools
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris", "n": 123456789012, "x": None}}}]}]
    assert ollama_execute("{{ range .Messages }}{{ end }}" + text, [go_message(m) for m in msgs],
                          tools=go_tools(_TOOLS)) == want


def test_ollamas_command_r_template_writes_tools_as_ollama_does():
    """Ollama's own command-r template prints each property's type: one name, or [a b]."""
    from ollama_oci.chat_tools import go_message, go_tools
    text = open(os.path.join(HERE, "command-r.gotmpl"), encoding="utf-8").read()
    out = ollama_execute(text, [go_message({"role": "user", "content": "hi"})], tools=go_tools(_TOOLS))
    assert "def get_weather(city: string, days: [integer null], ) -> List[Dict]:" in out
    assert "city (string): The city" in out

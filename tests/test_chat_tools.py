"""Tools in derived templates (ollama_oci/chat_tools.py): Ollama's .Tools and tool calls printed as
transformers' tojson prints them, and chat templates whose tool definitions, calls and results are
derived. The same renderings were compared with Ollama's own template engine, built from its
source (docs/design.md, "Checked with Ollama's own code"): they agree on every one."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ollama_oci.chat_template import _DATE_MARK, derive_template, render_jinja
from ollama_oci.chat_tools import call_view, go_message, go_tools, json_snippet, tool_view, with_py_json
from ollama_oci.gotemplate import check_ollama_template, go_quote, ollama_execute
from ollama_oci.template_choice import template_selection, tool_call_tag

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_templates")

SEARCH = {"type": "function", "function": {"name": "search_docs", "description": "Search the docs & return <hits>",
          "parameters": {"type": "object", "required": ["query"], "properties": {
              "query": {"type": "string", "description": "What to look for"},
              "limit": {"type": "integer", "description": "At most this many"},
              "kinds": {"type": "array", "items": {"type": "string"}, "description": "Kinds"},
              "mode": {"type": ["string", "null"], "enum": ["fast", "full"]}}}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "Zeit jetzt 🕒 \"quoted\"",
                                          "parameters": {"type": "object", "properties": {}}}}
BARE = {"type": "function", "function": {"name": "bare", "description": "no parameters at all",
                                         "parameters": {"type": "object"}}}
#: items that nest: an array of objects with their own properties
NESTED = {"type": "function", "function": {"name": "batch", "description": "several at once", "parameters": {
    "type": "object", "properties": {"jobs": {"type": "array", "description": "Jobs", "items": {
        "type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["id"]}}}}}}


@pytest.mark.parametrize("indent", [None, 2, 4])
@pytest.mark.parametrize("root", ["tool", "function"])
def test_a_tool_prints_as_pythons_json_dumps_prints_it(indent, root):
    snippet = json_snippet("$t", indent=indent, root=root)
    template = with_py_json("{{ range $t := .Tools }}" + snippet + "\n{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}")
    check_ollama_template(template)
    for tool in (SEARCH, CLOCK, BARE) + ((NESTED,) if indent is None else ()):
        v = tool_view(tool)
        want = json.dumps(v if root == "tool" else v["function"], indent=indent, ensure_ascii=False) + "\n"
        assert ollama_execute(template, [{"Role": "user", "Content": ""}], tools=go_tools([tool])) == want


def test_the_view_is_ollamas_structure():
    v = tool_view({"function": {"name": "f", "parameters": {"type": "object", "properties": {
        "b": {"type": "string"}, "a": {"type": ["integer"], "description": "x"}}}}})
    # Ollama's field order, empty fields left out, properties in key order, a one-type list as a string
    assert json.dumps(v) == ('{"type": "function", "function": {"name": "f", "description": "", "parameters": '
                             '{"type": "object", "properties": {"a": {"type": "integer", "description": "x"}, '
                             '"b": {"type": "string"}}}}}')


def test_strings_are_quoted_as_go_quotes_them():
    # what Go's strconv.Quote writes (checked against Go): printable text unchanged, C escapes,
    # \x for ASCII controls, \u for other non-printable characters
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("<>& 🩵 日本") == '"<>& 🩵 日本"'
    assert go_quote("\t\n\x01\x7f\u2028\U000e0001") == '"\\t\\n\\x01\\x7f\\u2028\\U000e0001"'


def _templates():
    out = {n: open(os.path.join(HERE, "ollama-renderers", n), encoding="utf-8").read()
           for n in ("laguna_v2_chat_template.jinja2", "laguna_v8_chat_template.jinja2", "qwen38_chat_template.jinja",
                     "nemotron35_chat_template.jinja2", "nemotron3nano_chat_template.jinja2",
                     "glimmer_chat_template.jinja", "gemma4_31b_chat_template.jinja2",
                     "gemma4_e2b_chat_template.jinja2")}
    for shape in ("chatml-tools", "fields-markdown", "qwen3-loop"):
        out[shape] = open(os.path.join(HERE, "shapes", shape + ".jinja"), encoding="utf-8").read()
    with open(os.path.join(HERE, "ollama-index-extra.jsonl")) as f:
        out.update(next(iter(json.loads(line).items())) for line in f if line.strip())
    return out


TOKENS = {"llama3-instruct": ("<|begin_of_text|>", "<|eot_id|>"), "qwen38_chat_template.jinja": ("", "<|im_end|>"),
          "chatml-tools": ("", "<|im_end|>"), "nemotron35_chat_template.jinja2": ("<s>", "<|im_end|>"),
          "nemotron3nano_chat_template.jinja2": ("<s>", "<|im_end|>"), "fields-markdown": ("", "<|end|>"),
          "gemma4_31b_chat_template.jinja2": ("<bos>", "<turn|>"), "gemma4_e2b_chat_template.jinja2": ("<bos>", "<turn|>"),
          "qwen3-loop": ("", "<|im_end|>")}
CALL = {"function": {"name": "search_docs", "arguments": {"query": "registry auth", "limit": 3}}}
CALL2 = {"function": {"name": "get_time", "arguments": {}}}
#: arguments of every JSON type: an object holding a list, false, null, a float
CALL3 = {"function": {"name": "search_docs", "arguments": {"query": "x", "filters": {"kind": "doc", "tags": ["a", 2]},
                                                            "exact": False, "since": None, "score": 0.5}}}
U = {"role": "user", "content": "Find docs on auth"}
CONVERSATIONS = [
    ([U], [SEARCH]),
    ([{"role": "system", "content": "You are terse."}, U], [SEARCH, CLOCK]),
    ([U, {"role": "assistant", "content": "", "tool_calls": [CALL]}, {"role": "tool", "content": "3 hits: a, b"}],
     [SEARCH]),
    ([U, {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]},
      {"role": "tool", "content": "none", "name": "search_docs"},
      {"role": "assistant", "content": "Nothing found."}, {"role": "user", "content": "Try again"}], [SEARCH, CLOCK]),
    ([{"role": "system", "content": "S"}, U, {"role": "assistant", "content": "", "tool_calls": [CALL, CALL2]},
      {"role": "tool", "content": "x", "name": "search_docs"}, {"role": "tool", "content": "12:00", "name": "get_time"}],
     [SEARCH, CLOCK]),
    ([U, {"role": "assistant", "content": "", "tool_calls": [CALL2]}, {"role": "tool", "content": '{"t": 1}'}],
     [CLOCK]),
    ([U, {"role": "assistant", "content": "", "tool_calls": [CALL3]}, {"role": "tool", "content": "0 hits"}],
     [SEARCH, NESTED]),
]


def _renderings(d, src, convs, bos="", eos="", string_args=False):
    """For each (messages, tools): (the derived template in Go, the chat template in Jinja), the
    Jinja side without its leading BOS; a conversation the chat template refuses gives (None, its
    error)."""
    jobs = [([dict(m, tool_calls=[call_view(c, string_args) for c in m["tool_calls"]]) if m.get("tool_calls") else m
              for m in msgs], True, [tool_view(t) for t in tools]) for msgs, tools in convs]
    out = []
    for (msgs, tools), want in zip(convs, render_jinja(src, jobs, bos_token=bos, eos_token=eos)):
        if isinstance(want, tuple):
            out.append((None, want))
            continue
        want = want[len(bos):] if bos and want.startswith(bos) else want
        want = _DATE_MARK.sub(lambda m: datetime.date.today().strftime(m.group(1)), want)   # Glimmer's date
        out.append((ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools(tools)), want))
    return out


@pytest.mark.parametrize("name", ["laguna_v2_chat_template.jinja2", "laguna_v8_chat_template.jinja2",
                                  "qwen38_chat_template.jinja", "llama3-instruct", "chatml-tools",
                                  "nemotron35_chat_template.jinja2", "nemotron3nano_chat_template.jinja2",
                                  "fields-markdown", "glimmer_chat_template.jinja",
                                  "gemma4_31b_chat_template.jinja2", "gemma4_e2b_chat_template.jinja2",
                                  "qwen3-loop"])
def test_tool_conversations_render_as_the_chat_template(name):
    """Tool definitions in the system turn (Laguna, Qwen 3.8) or in the first user message (Llama 3.1,
    indented JSON), calls as JSON or as name/value pairs, one call per turn (Llama 3.1 refuses two),
    results in turns of their own or grouped in one (Qwen), results written as JSON strings (Llama),
    everything in Gemma 4's notation with the results inside the calling turn."""
    src = _templates()[name]
    bos, eos = TOKENS.get(name, ("<s>", "</s>"))
    d = derive_template(src, bos_token=bos, eos_token=eos)
    assert d.tools and d.tools_error is None
    rendered = 0
    for got, want in _renderings(d, src, CONVERSATIONS, bos, eos):
        if isinstance(want, tuple):
            assert name == "llama3-instruct" and "single tool-calls" in want[1]
            continue
        assert got == want
        rendered += 1
    assert rendered >= 5
    # without tools the template is what it was
    plain = [{"role": "user", "content": "Hi"}]
    want = render_jinja(src, [(plain, True)], bos_token=bos, eos_token=eos)[0]
    want = _DATE_MARK.sub(lambda m: datetime.date.today().strftime(m.group(1)), want)
    assert ollama_execute(d.template, [go_message(m) for m in plain]) == \
        (want[len(bos):] if bos and want.startswith(bos) else want)


def test_ollama_030_keeps_a_derived_template_with_tools():
    src = _templates()["llama3-instruct"]
    d = derive_template(src, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    sel = template_selection(go_template=d.template, chat_template=src)
    assert sel[0]["ollama"] == ">=0.30" and sel[0]["source"] == "go_template"
    assert "tools: yes" in sel[-1]["why"]


def test_tools_listed_by_name_and_description_only_derive_too():
    """A template that writes each tool's name and description and nothing of its parameters (a
    field the probes never see written is left out) derives with tools, and renders as the Jinja."""
    from test_chat_template import TOOLS_PROSE
    d = derive_template(TOOLS_PROSE, eos_token="<|im_end|>")
    assert d.tools and d.tools_error is None
    assert ".Parameters" not in d.template and "{{ $tool.Function.Name }} ({{ $tool.Function.Description }})" \
        in d.template
    for got, want in _renderings(d, TOOLS_PROSE, CONVERSATIONS, "", "<|im_end|>"):
        assert got == want


def _gemma4(name="gemma4_31b_chat_template.jinja2"):
    return open(os.path.join(HERE, "ollama-renderers", name), encoding="utf-8").read()


@pytest.mark.parametrize("change, why", [
    # results named "result:" where the notation has "response:": no token of the notation to learn
    (("'response:' + tool_name", "'result:' + tool_name"), "a tool result is not written as response:NAME"),
    # properties in reverse order: learned alike, but the checks see the difference
    (("for key, value in properties | dictsort -%}", "for key, value in properties | dictsort(reverse=true) -%}"),
     "renders"),
])
def test_a_notation_written_otherwise_is_left_out_with_the_reason(change, why):
    """Gemma 4's notation is written as it is: a template that writes it in any other way is not
    given a Go template that differs from it; it keeps the template without tools, and says why."""
    src = _gemma4()
    assert change[0] in src
    d = derive_template(src.replace(change[0], change[1]), bos_token="<bos>", eos_token="<turn|>")
    assert not d.tools and why in d.tools_error, d.tools_error
    assert ".Tools" not in d.template


def _gemma4_older_shape() -> str:
    """Gemma 4's template in the shape of an earlier one (as llama.cpp's copy writes a conversation):
    tool messages are turns of their own (``<|turn>tool``), every turn opens and closes, no forward
    scan for results. Made from the current template here, with its macros, so that the tests hold no
    second copy."""
    src = _gemma4()
    src = src.replace("    {%- if message['role'] != 'tool' -%}\n", "    {%- if true -%}\n", 1)
    a = src.index("{%- elif message.get('tool_calls') -%}\n                {#- OpenAI Chat Completions")
    b = src.index("{%- endif -%}\n\n            {%- set captured_content -%}")
    src = src[:a] + src[b:]
    a = src.index("        {#- Forward-scan: find next non-tool message role")
    b = src.index("    {#- Track previous non-tool role")
    src = src[:a] + "        {{- '<turn|>\\n' -}}\n\n" + src[b:]
    src = src.replace("{%- if not continue_same_model_turn -%}", "{%- if true -%}", 1)
    return src.replace("{%- if ns.prev_message_type != 'tool_response' and ns.prev_message_type != 'tool_call' -%}",
                       "{%- if true -%}", 1)


def test_gemma4s_notation_in_turns_of_the_usual_kind_derives_the_general_way():
    """Definitions and calls in Gemma 4's notation, results as tool turns: the notation's definitions
    and values go into the general solver, and every tool conversation, and an agent loop's thinking,
    render as the chat template renders them."""
    src = _gemma4_older_shape()
    d = derive_template(src, bos_token="<bos>", eos_token="<turn|>")
    assert d.tools and d.tools_error is None
    assert "<|turn>tool" in render_jinja(src, [([U, {"role": "tool", "content": "x"}], False)], bos_token="<bos>")[0]
    rendered = 0
    for got, want in _renderings(d, src, CONVERSATIONS, "<bos>", "<turn|>"):
        assert got == want
        rendered += "<|tool>declaration:" in want
    assert rendered == len(CONVERSATIONS)
    jobs = [([dict(m, reasoning_content=m.get("thinking"), tool_calls=[call_view(c) for c in m["tool_calls"]])
              if m.get("tool_calls") else m for m in msgs], True, [tool_view(SEARCH), tool_view(CLOCK)])
            for msgs in LOOP_CONVERSATIONS]
    for msgs, want in zip(LOOP_CONVERSATIONS, render_jinja(src, jobs, bos_token="<bos>", eos_token="<turn|>")):
        got = ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools([SEARCH, CLOCK]))
        assert got == want[len("<bos>"):]
    # macros that write an array's items otherwise: the conversation with every kind of property
    # shows it, and the template keeps no tools, saying where the renderings part
    odd = src.replace("                    items:{", '                    items:{<|"|><|"|>', 1)
    d = derive_template(odd, bos_token="<bos>", eos_token="<turn|>")
    assert not d.tools and "as turns of the usual kind: with tools of every kind" in d.tools_error


#: Gemma 4 conversations the tool checks do not hold: a result named by its call's id, thinking in the
#: turn that calls (written only after the last user message), the answer going on in the same turn
G4_TOOLS = [{"type": "function", "function": {"name": "find", "description": "Find things", "parameters": {
    "type": "object", "required": ["q"], "properties": {
        "q": {"type": "string", "description": "Query"}, "mode": {"type": "string", "enum": ["a", "b"]},
        "opts": {"type": "object", "description": "Options", "required": ["deep"], "properties": {
            "deep": {"type": "boolean"}, "depth": {"type": "integer", "description": "How deep"}}}}}}},
    {"type": "function", "function": {"name": "now", "description": "The time", "parameters": {
        "type": "object", "properties": {}}}}]
G4_CALLS = [{"id": "call_1", "function": {"name": "find", "arguments": {"q": "x", "opts": {"deep": True, "depth": 2}}}},
            {"id": "call_2", "function": {"name": "now", "arguments": {}}}]
G4_CONVERSATIONS = [
    ([U, {"role": "assistant", "content": "", "thinking": "Two lookups.", "tool_calls": G4_CALLS},
      {"role": "tool", "content": "found", "tool_call_id": "call_1"},
      {"role": "tool", "content": "12:00", "tool_call_id": "call_2"}], G4_TOOLS),
    ([U, {"role": "assistant", "content": "", "tool_calls": G4_CALLS[:1]},
      {"role": "tool", "content": "found", "tool_call_id": "call_1"},
      {"role": "assistant", "content": "It is x."}, {"role": "user", "content": "And now?"}], G4_TOOLS),
    ([{"role": "system", "content": "Be brief."}, U, {"role": "assistant", "content": "", "tool_calls": G4_CALLS[1:]},
      {"role": "user", "content": "Never mind."}], G4_TOOLS),
]


@pytest.mark.parametrize("name", ["gemma4_31b_chat_template.jinja2", "gemma4_e2b_chat_template.jinja2"])
def test_gemma4_tools_render_as_the_chat_template_with_thinking_on_off_and_unset(name):
    """Results inside the calling turn, named by their call's id; thinking before the calls; a turn
    whose calls have no results yet ending with the results' opener; with enable_thinking unset, on
    and off (Ollama's .IsThinkSet and .Think pick the variant)."""
    src = _gemma4(name)
    d = derive_template(src, bos_token="<bos>", eos_token="<turn|>")
    assert d.tools and d.tools_error is None and d.think_switch and d.thinking_error is None
    for setting in (None, True, False):
        variables = {} if setting is None else {"enable_thinking": setting}
        jobs = [([dict(m, reasoning_content=m.get("thinking"), tool_calls=[call_view(c) for c in m["tool_calls"]])
                  if m.get("tool_calls") else m for m in msgs], True, [tool_view(t) for t in tools])
                for msgs, tools in G4_CONVERSATIONS]
        wants = render_jinja(src, jobs, bos_token="<bos>", eos_token="<turn|>", variables=variables)
        for (msgs, tools), want in zip(G4_CONVERSATIONS, wants):
            got = ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools(tools),
                                 think=bool(setting), is_think_set=setting is not None)
            assert got == want[len("<bos>"):], (setting, msgs)
    first = ollama_execute(d.template, [go_message(m) for m in G4_CONVERSATIONS[0][0]], tools=go_tools(G4_TOOLS))
    assert ('<|tool_call>call:find{opts:{deep:true,depth:2},q:<|"|>x<|"|>}<tool_call|>' in first
            and "<|tool_response>response:now{value:<|\"|>12:00<|\"|>}<tool_response|>" in first
            and "<|channel>thought\nTwo lookups.\n<channel|>" in first)
    assert ('opts:{description:<|"|>Options<|"|>,properties:{deep:{type:<|"|>BOOLEAN<|"|>},depth:{description:'
            '<|"|>How deep<|"|>,type:<|"|>INTEGER<|"|>}},required:[<|"|>deep<|"|>],type:<|"|>OBJECT<|"|>}') in first
    # calls not in JSON: Ollama's template-derived parser is given no tag to hold the answer back at
    assert tool_call_tag(d.template) == "{"
    # Ollama 0.30 and later keep the Go template: it has the tools the chat template has
    assert template_selection(go_template=d.template, chat_template=src)[0]["source"] == "go_template"


#: an agent loop: turns that call, with thinking, after the last user message (templates that drop
#: earlier turns' thinking keep these turns'), and one more round after a next question
LOOP_CONVERSATIONS = [
    [U, {"role": "assistant", "content": "", "thinking": "Need a search.", "tool_calls": [CALL]},
     {"role": "tool", "content": "3 hits"}],
    [U, {"role": "assistant", "content": "", "thinking": "Need a search.", "tool_calls": [CALL]},
     {"role": "tool", "content": "3 hits"},
     {"role": "assistant", "content": "", "thinking": "Now the time.", "tool_calls": [CALL2]},
     {"role": "tool", "content": "12:00"}],
    [U, {"role": "assistant", "content": "", "tool_calls": [CALL]}, {"role": "tool", "content": "3 hits"},
     {"role": "assistant", "content": "Found 3.", "thinking": "Answer."}, {"role": "user", "content": "The time?"},
     {"role": "assistant", "content": "", "thinking": "Use the clock.", "tool_calls": [CALL2]},
     {"role": "tool", "content": "12:00"}],
]


@pytest.mark.parametrize("name", ["nemotron35_chat_template.jinja2", "nemotron3nano_chat_template.jinja2",
                                  "qwen38_chat_template.jinja", "laguna_v8_chat_template.jinja2",
                                  "gemma4_31b_chat_template.jinja2", "gemma4_e2b_chat_template.jinja2",
                                  "qwen3-loop"])
def test_thinking_in_an_agent_loop_is_written_where_the_chat_template_writes_it(name):
    """Nemotron 3 and Qwen 3's shape (as GLM-4.5/4.6, MiniMax-M2 and LFM2.5, checked outside the
    tests) drop an earlier turn's thinking but write that of the turns after the last user message,
    which is what an agent loop sends back: the derived template writes .Thinking there (found from
    two more probes; in Qwen 3's shape also after a tool result, where its turns reopen), with
    thinking unset, on and off."""
    src = _templates()[name]
    bos, eos = TOKENS.get(name, ("<s>", "</s>"))
    d = derive_template(src, bos_token=bos, eos_token=eos)
    assert d.tools and d.tools_error is None
    tools = [SEARCH, CLOCK]
    with_thinking = 0
    for setting in (None, True, False):
        jobs = [([dict(m, reasoning_content=m.get("thinking"), tool_calls=[call_view(c) for c in m["tool_calls"]])
                  if m.get("tool_calls") else dict(m, reasoning_content=m["thinking"]) if m.get("thinking") else m
                  for m in msgs], True, [tool_view(t) for t in tools]) for msgs in LOOP_CONVERSATIONS]
        variables = {} if setting is None else {"enable_thinking": setting}
        wants = render_jinja(src, jobs, bos_token=bos, eos_token=eos, variables=variables)
        for msgs, want in zip(LOOP_CONVERSATIONS, wants):
            if isinstance(want, tuple):
                continue
            want = want[len(bos):] if bos and want.startswith(bos) else want
            with_thinking += "Use the clock." in want or "Need a search." in want
            got = ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools(tools),
                                 think=bool(setting), is_think_set=setting is not None)
            assert got == want, (setting, msgs)
    assert with_thinking >= 3         # the chat template does write an agent loop's thinking
    # tools and thinking on both sides: Ollama 0.30 and later keep the derived template (Nemotron's
    # block takes the "<think></think>" its turns write, so Ollama infers those tags from it)
    assert template_selection(go_template=d.template, chat_template=src)[0]["source"] == "go_template"
    if "<think>" in src:
        from ollama_oci.gotemplate import ollama_parse
        from ollama_oci.template_choice import _thinking_tags
        assert _thinking_tags(ollama_parse(d.template)) == ("<think>", "</think>") and d.thinking


THINK_CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello.", "thinking": "A greeting; answer briefly."},
     {"role": "user", "content": "2+2?"}],
]


@pytest.mark.parametrize("name, bos, eos, tags", [
    ("qwen38_chat_template.jinja", "", "<|im_end|>", ("<think>", "</think>")),
    ("laguna_v8_chat_template.jinja2", "<s>", "</s>", ("<think>", "</think>")),
    ("nemotron3nano_chat_template.jinja2", "<s>", "<|im_end|>", ("<think>", "</think>")),
])
def test_thinking_follows_the_requests_think_and_earlier_turns_keep_theirs(name, bos, eos, tags):
    """enable_thinking unset, on and off: Ollama's .IsThinkSet and .Think pick the matching variant;
    an earlier turn's .Thinking is written where reasoning_content is (Qwen 3.8 always, Laguna with
    thinking on), or only changes what it changes (Nemotron drops it but adds a newline; the turns of
    an agent loop, after the last user message, keep theirs between <think> tags, from which Ollama
    infers the tags)."""
    from ollama_oci.gotemplate import ollama_parse
    from ollama_oci.template_choice import _thinking_tags, go_template_capabilities
    src = open(os.path.join(HERE, "ollama-renderers", name), encoding="utf-8").read()
    d = derive_template(src, bos_token=bos, eos_token=eos)
    assert d.think_switch and d.thinking_error is None
    for setting in (None, True, False):
        jobs = [([dict(m, reasoning_content=m["thinking"]) if m.get("thinking") else m for m in msgs], True)
                for msgs in THINK_CONVERSATIONS]
        variables = {} if setting is None else {"enable_thinking": setting}
        for msgs, want in zip(THINK_CONVERSATIONS, render_jinja(src, jobs, bos_token=bos, eos_token=eos,
                                                                variables=variables)):
            want = want[len(bos):] if bos and want.startswith(bos) else want
            got = ollama_execute(d.template, [go_message(m) for m in msgs], think=bool(setting),
                                 is_think_set=setting is not None)
            assert got == want, (setting, msgs)
    # what Ollama infers from the Go template: thinking with the model's own tags, or none
    assert _thinking_tags(ollama_parse(d.template)) == tags
    assert ("thinking" in go_template_capabilities(d.template)) == d.thinking == bool(tags[0])


def test_ollama_030_keeps_a_derived_template_with_tools_and_thinking():
    src = open(os.path.join(HERE, "ollama-renderers", "qwen38_chat_template.jinja"), encoding="utf-8").read()
    d = derive_template(src, eos_token="<|im_end|>")
    assert d.tools and d.thinking
    assert template_selection(go_template=d.template, chat_template=src)[0]["source"] == "go_template"


def test_the_first_calls_opening_is_where_ollama_looks_for_its_tool_call_tag():
    """Ollama finds tool calls in a model's output by a tag: the first text inside the template's
    {{ if .ToolCalls }} (tools.parseTag; template_choice.tool_call_tag agreed with Ollama's own on
    these templates). Its parser reads JSON arguments back ("<tool_call>" for the ChatML shape, "{"
    for Llama 3.1); calls in any other form it would hold back whole, so there the opening is a
    string action and the tag is "{": the model's calls reach the client as text."""
    from ollama_oci.template_choice import tool_call_tag
    d = derive_template(_templates()["chatml-tools"], eos_token="<|im_end|>")
    assert '{{ if .ToolCalls }}{{ if not .Content }}<tool_call>\n{"name": "{{ else }}' in d.template
    assert tool_call_tag(d.template) == "<tool_call>"
    d = derive_template(_templates()["llama3-instruct"], bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    assert tool_call_tag(d.template) == "{"
    for name, bos, eos in (("laguna_v8_chat_template.jinja2", "<s>", "</s>"),
                           ("nemotron3nano_chat_template.jinja2", "<s>", "<|im_end|>"),
                           ("glimmer_chat_template.jinja", "<s>", "</s>")):
        d = derive_template(_templates()[name], bos_token=bos, eos_token=eos)
        assert d.tools and tool_call_tag(d.template) == "{", name
    d = derive_template(_templates()["laguna_v8_chat_template.jinja2"], bos_token="<s>", eos_token="</s>")
    assert '{{ if .ToolCalls }}{{ if not .Content }}{{ "<tool_call>" }}{{ else }}' in d.template


def test_the_tool_call_tag_is_found_as_ollama_finds_it():
    """tools.parseTag's walk: the first {{ if }} on a .ToolCalls field (not a variable's), its first
    non-blank text cut at "{", an action before any text ending the search."""
    from ollama_oci.template_choice import tool_call_tag
    assert tool_call_tag("{{ if .ToolCalls }} <tc>{{ range .ToolCalls }}{}{{ end }}{{ end }}") == "<tc>"
    assert tool_call_tag('{{ if .ToolCalls }}[TOOL_CALLS] {"name"{{ end }}') == "[TOOL_CALLS]"
    assert tool_call_tag("{{ if .ToolCalls }}{{ .Content }}<tc>{{ end }}") == "{"
    assert tool_call_tag("{{ $m := . }}{{ if $m.ToolCalls }}<a>{{ end }}{{ if .ToolCalls }}<b>{{ end }}") == "<b>"
    assert tool_call_tag("{{ if .ToolCalls }}{{ if .X }}{{ else }}<c>{{ end }}<d>{{ end }}") == "<c>"
    assert tool_call_tag("{{ if .ToolCalls }}{{ if .X }}{{ end }}<d>{{ end }}") == "{"
    assert tool_call_tag("{{ range .Messages }}{{ if .ToolCalls }}\n <e>\n{{ end }}{{ end }}") == "<e>"
    assert tool_call_tag("{{ if .X }}{{ else if .ToolCalls }}<f>{{ end }}") == "<f>"
    assert tool_call_tag("{{ if and .ToolCalls .Y }}<g>{{ end }}") == "<g>"
    assert tool_call_tag("{{ with .ToolCalls }}<h>{{ end }}{{ if .ToolCalls }}<i>{{ end }}") == "<i>"
    assert tool_call_tag("{{ if .ToolCalls }}{{ end }}{{ if .ToolCalls }}<x>{{ end }}") == "{"   # the first if counts
    assert tool_call_tag("no calls") == "{"


def test_a_second_list_that_names_the_tools_is_written_too():
    """Besides the definitions, a template may list the tools' names elsewhere (Glimmer's metadata and
    recipients lines); each such list is written from .Tools as well."""
    src = _templates()["chatml-tools"].replace(
        '{{- "\\n</tools>',
        '{{- "\\n</tools>\\nNames: " }}{% for t in tools %}{{ t.function.name }}{% if not loop.last %}, {% endif %}'
        '{% endfor %}{{- "',
        1)
    assert "Names: " in src
    d = derive_template(src, eos_token="<|im_end|>")
    assert d.tools, d.tools_error
    msgs, tools = CONVERSATIONS[1]
    want = render_jinja(src, [(msgs, True, [tool_view(t) for t in tools])], eos_token="<|im_end|>")[0]
    assert "Names: search_docs, get_time" in want
    assert ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools(tools)) == want


def test_arguments_spliced_in_as_text_are_written_as_their_json():
    """Some templates take a call's arguments as a JSON string and write it as it is (DeepSeek's):
    the derivation tries that convention too, and the Go template writes the arguments' JSON."""
    src = _templates()["chatml-tools"].replace("{{- tool_call.arguments | tojson }}", "{{- tool_call.arguments }}")
    assert "tool_call.arguments }}" in src
    d = derive_template(src, eos_token="<|im_end|>")
    assert d.tools, d.tools_error
    msgs, tools = CONVERSATIONS[3]
    jinja_msgs = [dict(m, tool_calls=[call_view(c, string_args=True) for c in m["tool_calls"]])
                  if m.get("tool_calls") else m for m in msgs]
    want = render_jinja(src, [(jinja_msgs, True, [tool_view(t) for t in tools])], eos_token="<|im_end|>")[0]
    assert '"arguments": {"limit": 3, "query": "registry auth"}' in want
    assert ollama_execute(d.template, [go_message(m) for m in msgs], tools=go_tools(tools)) == want


#: written for this test in the shape LFM2 uses: tools as one JSON list in the system turn, a turn's
#: calls as one list that a closing token ends, the turn's text after its calls
CALL_LIST = r"""{%- set ns = namespace(sys="") -%}
{%- if messages[0]['role'] == 'system' -%}{%- set ns.sys = messages[0]['content'] -%}{%- set messages = messages[1:] -%}{%- endif -%}
{%- if tools -%}
{%- set ns.sys = ns.sys + ("\n" if ns.sys else "") + "Tools: <|tl|>[" -%}
{%- for t in tools -%}{%- set ns.sys = ns.sys + (t | tojson) + (", " if not loop.last else "") -%}{%- endfor -%}
{%- set ns.sys = ns.sys + "]<|/tl|>" -%}
{%- endif -%}
{%- if ns.sys -%}{{- "<|im_start|>system\n" + ns.sys + "<|im_end|>\n" -}}{%- endif -%}
{%- for m in messages -%}
{{- "<|im_start|>" + m["role"] + "\n" -}}
{%- set c = m["content"] if m["content"] else "" -%}
{%- if m["role"] == "tool" -%}{%- set c = "<|tr|>" + c + "<|/tr|>" -%}
{%- elif m["role"] == "assistant" and m.get("tool_calls") -%}
{%- set tc = namespace(r="") -%}
{%- for call in m["tool_calls"] -%}
{%- set tc.r = tc.r + (", " if not loop.first else "") + '{"name": "' + call["function"]["name"] + '", "arguments": ' + (call["function"]["arguments"] | tojson) + "}" -%}
{%- endfor -%}
{%- set c = "<|tc|>[" + tc.r + "]<|/tc|>" + c -%}
{%- endif -%}
{{- c + "<|im_end|>\n" -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|im_start|>assistant\n" -}}{%- endif -%}"""


def test_a_list_of_calls_with_its_closer_and_the_text_after_the_calls():
    d = derive_template(CALL_LIST, eos_token="<|im_end|>")
    assert d.tools, d.tools_error
    for got, want in _renderings(d, CALL_LIST, CONVERSATIONS, eos="<|im_end|>"):
        assert got == want
    assert '"arguments": {"limit": 3, "query": "registry auth"}}, {"name": "get_time"' in \
        ollama_execute(d.template, [go_message(m) for m in CONVERSATIONS[4][0]], tools=go_tools(CONVERSATIONS[4][1]))


#: written for this test in the shape DeepSeek V3.1 and the R1 distills use: no tool definitions, calls
#: between two tokens that share their start, arguments spliced in as text, and after a tool's output
#: the answer goes on with no assistant opening (and no generation prompt)
AFTER_RESULT = r"""{{- bos_token -}}
{%- set st = namespace(prev="") -%}
{%- for m in messages -%}
{%- if m.role == "system" -%}{{- m.content -}}
{%- elif m.role == "user" -%}{{- "<｜User｜>" + m.content -}}
{%- elif m.role == "assistant" -%}
{%- if st.prev != "tool" -%}{{- "<｜Assistant｜>" -}}{%- endif -%}
{{- m.content -}}
{%- if m.tool_calls -%}
{{- "<｜tool▁calls▁begin｜>" -}}
{%- for c in m.tool_calls -%}
{{- "<｜tool▁call▁begin｜>" + c.function.name + "<｜tool▁sep｜>" + c.function.arguments + "<｜tool▁call▁end｜>" -}}
{%- endfor -%}
{{- "<｜tool▁calls▁end｜>" -}}
{%- endif -%}
{{- "<｜end▁of▁sentence｜>" -}}
{%- elif m.role == "tool" -%}{{- "<｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>" -}}
{%- endif -%}
{%- set st.prev = m.role -%}
{%- endfor -%}
{%- if add_generation_prompt and st.prev != "tool" -%}{{- "<｜Assistant｜>" -}}{%- endif -%}"""


def test_after_a_tool_result_the_answer_goes_on_without_an_opening():
    """DeepSeek's shape: after a tool's output neither the generation prompt nor the answer turn
    writes the assistant opening; the derived template follows (``$prev`` is "tool"), and the list
    of calls closes with the whole token that ends it, not the tail the two closing tokens share."""
    bos, eos = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
    d = derive_template(AFTER_RESULT, bos_token=bos, eos_token=eos)
    assert d.tools, d.tools_error
    assert "{{ end }}<｜tool▁calls▁end｜>{{ end }}" in d.template and "<｜tool▁call{{" not in d.template
    outs = []
    for got, want in _renderings(d, AFTER_RESULT, CONVERSATIONS, bos, eos, string_args=True):
        assert got == want
        outs.append(got)
    assert outs[2].endswith("<｜tool▁output▁begin｜>3 hits: a, b<｜tool▁output▁end｜>")     # no prompt after a result
    assert "<｜tool▁output▁end｜>Nothing found.<｜end▁of▁sentence｜>" in outs[3]             # the answer, no opening
    assert outs[0].endswith("<｜User｜>Find docs on auth<｜Assistant｜>")


def test_a_check_that_fails_shows_where_the_renderings_part():
    from ollama_oci.chat_template import _first_difference
    common = "x" * 200
    at, got, want = _first_difference(common + "A>tail", common + "B>tail")
    assert at == 200 and got == "..." + "x" * 30 + "A>tail" and want == "..." + "x" * 30 + "B>tail"
    assert _first_difference("abc", "abcdef") == (3, "abc", "abcdef")


#: written for this test in the shape of NVIDIA's Nemotron Nano 2: one header opens every
#: conversation, the system prompt goes into it, and the tool instructions follow the system prompt
#: after a blank line that is written only when there is a system prompt
SYSTEM_HEADER = r"""{%- set sys = messages[0].content if messages[0].role == "system" else "" -%}
{{- "<H>System\n" + sys -}}
{%- if tools -%}
{%- if sys -%}{{- "\n\n" -}}{%- endif -%}
{{- "Tools: [" -}}{%- for t in tools -%}{{- t | tojson -}}{{- ", " if not loop.last else "" -}}{%- endfor -%}{{- "]" -}}
{%- endif -%}
{{- "\n\n" -}}
{%- for m in messages if m.role != "system" -%}
{%- if m.role == "user" -%}{{- "<T>User\n" + m.content + "\n" -}}
{%- elif m.role == "tool" -%}{{- "<T>Tool\n" + m.content + "\n" -}}
{%- else -%}{{- "<T>Assistant\n" + m.content -}}
{%- if m.tool_calls -%}{{- "<CALL>" -}}{%- for c in m.tool_calls -%}{{- {"name": c.function.name, "arguments": c.function.arguments} | tojson -}}{%- endfor -%}{{- "</CALL>" -}}{%- endif -%}
{{- "\n<E>\n" -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<T>Assistant\n" -}}{%- endif -%}"""


def test_a_system_prompt_in_a_header_with_a_separator_of_its_own():
    """Without a system prompt the tool instructions follow the header's opening directly; with one,
    after a blank line: the derived template writes that blank line only with a system prompt."""
    d = derive_template(SYSTEM_HEADER, eos_token="<E>")
    assert d.tools, d.tools_error
    outs = []
    for got, want in _renderings(d, SYSTEM_HEADER, CONVERSATIONS, eos="<E>"):
        assert got == want
        outs.append(got)
    assert outs[0].startswith("<H>System\nTools: [") and outs[1].startswith("<H>System\nYou are terse.\n\nTools: [")


#: written for this test in the shape of LFM2.5: tools as one JSON list in the system turn, calls
#: written as Python calls, name(key='text', n=3, flag=True), in one list per turn
PY_CALLS = r"""{%- macro arg(v) -%}{%- if v is string -%}{{- "'" + v + "'" -}}{%- elif v is mapping -%}{{- v | tojson -}}{%- else -%}{{- v | string -}}{%- endif -%}{%- endmacro -%}
{%- set sys = messages[0].content if messages[0].role == "system" else "" -%}
{%- if tools -%}{%- set sys = sys + ("\n" if sys else "") + "Tools: " + (tools | tojson) -%}{%- endif -%}
{%- if sys -%}{{- "<|im_start|>system\n" + sys + "<|im_end|>\n" -}}{%- endif -%}
{%- for m in messages if m.role != "system" -%}
{{- "<|im_start|>" + m.role + "\n" + m.content -}}
{%- if m.tool_calls -%}
{%- set calls = namespace(items=[]) -%}
{%- for c in m.tool_calls -%}
{%- set a = namespace(items=[]) -%}
{%- for k, v in c.function.arguments.items() -%}{%- set a.items = a.items + [k + "=" + arg(v)] -%}{%- endfor -%}
{%- set calls.items = calls.items + [c.function.name + "(" + (a.items | join(", ")) + ")"] -%}
{%- endfor -%}
{{- "<|tool_call_start|>[" + (calls.items | join(", ")) + "]<|tool_call_end|>" -}}
{%- endif -%}
{{- "<|im_end|>\n" -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|im_start|>assistant\n" -}}{%- endif -%}"""


def test_calls_written_as_python_calls():
    """Strings in single quotes as they are, True/False for booleans, numbers as numbers; and a
    template that writes the whole argument map as it is (Python's repr of a dict) is still taken
    as the JSON-string convention, not as this form."""
    d = derive_template(PY_CALLS, eos_token="<|im_end|>")
    assert d.tools, d.tools_error
    call = {"function": {"name": "search_docs", "arguments": {"query": "it's", "limit": 3, "exact": True}}}
    convs = CONVERSATIONS + [([U, {"role": "assistant", "content": "", "tool_calls": [call]},
                               {"role": "tool", "content": "none"}], [SEARCH])]
    outs = []
    for got, want in _renderings(d, PY_CALLS, convs, eos="<|im_end|>"):
        assert got == want
        outs.append(got)
    assert "[search_docs(exact=True, limit=3, query='it's')]" in outs[-1]


def test_a_requests_thinking_level_picks_the_reasoning_effort():
    """Ollama hands a template its request's level in .ThinkLevel ("medium" for think: true, as its
    own Qwen 3.8 renderer reads it); Qwen 3.8's chat template takes reasoning_effort low, medium or
    xhigh (its default). The levels it knows pick their variant; "high" and "max", which it refuses,
    keep the default. Checked against Ollama's engine too (docs/design.md)."""
    src = open(os.path.join(HERE, "ollama-renderers", "qwen38_chat_template.jinja"), encoding="utf-8").read()
    d = derive_template(src, eos_token="<|im_end|>")
    assert d.think_levels == ["low", "medium"]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    outs = {}
    for level in ("low", "medium", "high", "max"):
        variables = {"enable_thinking": True}
        if level in d.think_levels:
            variables["reasoning_effort"] = level
        want = render_jinja(src, [(msgs, True)], eos_token="<|im_end|>", variables=variables)[0]
        got = ollama_execute(d.template, [go_message(m) for m in msgs], think=True, think_level=level,
                             is_think_set=True)
        assert got == want, level
        outs[level] = got
    assert "Reasoning effort is set to low" in outs["low"] and "Reasoning effort" not in outs["medium"]
    assert "Reasoning effort is set to xhigh" in outs["high"] and outs["high"] == outs["max"]

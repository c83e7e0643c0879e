"""Tool definitions written field by field (ollama_oci/chat_tool_fields.py), on chat templates
generated here: tags, separators, field order, which fields are written at all, lists as JSON or
joined, the required list before or after the properties, properties wrapped or not, calls in five
forms, results with their tool's name. Every
generated template must either derive with tools and render every tool conversation exactly as its
Jinja does, or be left without tools with a reason; the shapes markers can show must derive."""

from __future__ import annotations

import random

from ollama_oci.chat_template import derive_template
from ollama_oci.chat_tool_fields import split_two
from test_chat_tools import CONVERSATIONS, _renderings


def _lit(s: str) -> str:
    """A Jinja string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def generated_template(rng: random.Random) -> tuple[str, bool]:
    """A ChatML-like chat template whose tools are written field by field in a random style, and
    whether markers can show that style (no numbering, no types in capitals)."""
    tag = rng.choice([("<{k}>", "</{k}>"), ("[{k}]", "[/{k}]"), ("{k}: ", ""), ("**{k}** ", ""), ("{k}=", ";")])
    nl = rng.choice(["\n", " ", "", "\n  "])
    derivable = True

    def field(k: str, expr: str) -> str:
        return "{{- " + _lit(nl + tag[0].format(k=k)) + " ~ " + expr + " ~ " + _lit(tag[1].format(k=k)) + " }}"
    join_list = rng.choice(["tojson", "join(', ')", "join('|')"])
    exprs = {"type": "(p.type if p.type is string else p.type | join(' or '))", "description": "p.description",
             "enum": "(p.enum | " + join_list + ")"}
    order = list(exprs)
    rng.shuffle(order)
    written = [f for f in order if rng.random() >= 0.2]           # some fields are not written at all
    fields = ["{%- if p." + f + " is defined %}" + field(f[:4], exprs[f]) + "{%- endif %}" for f in written]
    if rng.random() < 0.2:        # inline, one separator between the fields present: {type: X, enum: Y}
        fields = (["{%- set ns = namespace(c=false) %}{{- ' {' }}"]
                  + ["{%- if p." + f + " is defined %}{%- if ns.c %}{{- ', ' }}{%- endif %}{%- set ns.c = true %}"
                     "{{- " + _lit(f + ": ") + " ~ " + exprs[f] + " }}{%- endif %}" for f in written] + ["{{- '}' }}"])
    if "type" in written and rng.random() < 0.1:         # types in capitals
        derivable = False
        fields = [f.replace("p.type if p.type is string", "p.type | upper if p.type is string") for f in fields]
    opener, name_close, closer = rng.choice([("\n- ", ":", ""), ('\n<param name="', '">', "</param>"),
                                             (" (", ":", ")")])
    numbered = rng.random() < 0.1                        # "1. city": a count markers do not show
    derivable = derivable and not numbered
    props = ("{%- for k, p in t.parameters.properties | items %}{{- " + _lit(opener)
             + (" ~ loop.index ~ '. '" if numbered else "") + " ~ k ~ " + _lit(name_close) + " }}"
             + "".join(fields) + "{{- " + _lit(closer) + " }}{%- endfor %}")
    if rng.random() < 0.5:
        props = ("{%- if t.parameters.properties %}{{- " + _lit(nl + "Params:") + " }}" + props
                 + "{{- " + _lit(nl + "End.") + " }}{%- endif %}")
    req = ""
    if rng.random() < 0.7:
        req = ("{%- if t.parameters.required is defined %}" + field("required", "(t.parameters.required | "
                                                                        + join_list + ")") + "{%- endif %}")
    req_first = rng.random() < 0.3
    body = ("{%- for tool in tools %}{%- set t = tool.function %}{%- if not loop.first %}{{- "
            + _lit(rng.choice(["\n\n", "\n", "", "\n---\n"])) + " }}{%- endif %}"
            + field("name", "t.name") + field("description", "t.description")
            + (req if req_first else "") + props + ("" if req_first else req) + "{%- endfor %}")
    call = rng.choice([             # calls: name/value lines, JSON, Qwen3-Coder's tags (Python's str()),
        # a Python-like call naming the tool twice, an invoke tag naming it in its closer too
        "{{- '<call>' ~ tc.function.name ~ '\\n' }}{%- for k, v in tc.function.arguments | items %}"
        "{{- k ~ '=' ~ (v if v is string else v | tojson) ~ '\\n' }}{%- endfor %}{{- '</call>' }}",
        "{{- '<tool_call>' ~ ({'name': tc.function.name, 'arguments': tc.function.arguments} | tojson) ~ '</tool_call>' }}",
        "{{- '<tool_call>\\n<function=' ~ tc.function.name ~ '>\\n' }}{%- for k, v in tc.function.arguments | items %}"
        "{{- '<parameter=' ~ k ~ '>\\n' ~ (v | tojson if v is mapping or (v is sequence and v is not string) "
        "else v | string) ~ '\\n</parameter>\\n' }}{%- endfor %}{{- '</function>\\n</tool_call>' }}",
        "{{- '[' ~ tc.function.name ~ '(' }}{%- for k, v in tc.function.arguments | items %}{{- k ~ '=' ~ (v | tojson) }}"
        "{%- if not loop.last %}{{- ', ' }}{%- endif %}{%- endfor %}{{- ')] call ' ~ tc.function.name }}",
        "{{- '<invoke name=\"' ~ tc.function.name ~ '\">' }}{%- for k, v in tc.function.arguments | items %}"
        "{{- '<arg name=\"' ~ k ~ '\">' ~ (v if v is string else v | tojson) ~ '</arg>' }}{%- endfor %}"
        "{{- '</invoke name=\"' ~ tc.function.name ~ '\">' }}",
    ])
    src = ("{%- if messages[0].role == 'system' %}{%- set sys = messages[0].content %}{%- set msgs = messages[1:] %}"
           "{%- else %}{%- set sys = '' %}{%- set msgs = messages %}{%- endif %}"
           "{%- if sys or tools %}{{- '<|system|>\\n' ~ sys }}{%- if tools %}{{- '\\n# Tools' }}" + body
           + "{%- endif %}{{- '<|end|>\\n' }}{%- endif %}"
           "{%- for m in msgs %}{%- if m.role == 'assistant' %}{{- '<|assistant|>\\n' ~ m.content }}"
           "{%- for tc in m.tool_calls or [] %}" + call + "{%- endfor %}{{- '<|end|>\\n' }}"
           "{%- elif m.role == 'tool' %}{{- '<|tool|>' ~ (m.name or '') ~ '\\n' ~ m.content ~ '<|end|>\\n' }}"
           "{%- else %}{{- '<|' ~ m.role ~ '|>\\n' ~ m.content ~ '<|end|>\\n' }}{%- endif %}{%- endfor %}"
           "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}")
    return src, derivable


def test_generated_field_templates_derive_exactly_or_say_why():
    rng = random.Random(20261126)
    derived = 0
    for _ in range(40):
        src, derivable = generated_template(rng)
        d = derive_template(src, eos_token="<|end|>")
        if not d.tools:
            assert d.tools_error and "internal error" not in d.tools_error, (d.tools_error, src)
            assert not derivable, (d.tools_error, src)
            continue
        derived += 1
        for got, want in _renderings(d, src, CONVERSATIONS, "", "<|end|>"):
            assert not isinstance(want, tuple) and got == want, src
    assert derived >= 30, derived


def test_two_items_are_cut_where_a_reader_would_cut_them():
    """Between two items, the text they share goes to the items, cut after a tag or at a line break:
    any cut writes the same, this one reads as the template's own."""
    one = "<tools>\n<f>\n<n>A</n>\n</f>\n</tools>"
    other = "<tools>\n<f>\n<n>B</n>\n</f>\n</tools>"
    both = "<tools>\n<f>\n<n>A</n>\n</f>\n<f>\n<n>B</n>\n</f>\n</tools>"
    before, first, between, second, after = split_two(one, other, both)
    assert (before, first, between, second, after) == ("<tools>", "\n<f>\n<n>A</n>\n</f>", "", "\n<f>\n<n>B</n>\n</f>",
                                                        "\n</tools>")
    assert before + first + between + second + after == both


def test_literal_text_never_runs_into_an_action():
    """A "{{" in literal text must not open an action, nor a "{" at its end run into the action
    after it ("{{{", which Go refuses)."""
    from ollama_oci.gotemplate import check_ollama_template, go_lit, render
    for text in ("a{", "{", "{{x", "a{{", "x{{{", "a{b}", "no braces"):
        template = go_lit(text) + "{{ .A }}" + go_lit(text)
        check_ollama_template(template)
        assert render(template, {"A": "!"}) == text + "!" + text

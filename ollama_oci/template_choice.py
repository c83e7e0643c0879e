"""Which template Ollama will render a model with, by version, as ``server/images.go`` decides.

Ollama >= 0.30 (llama-server for every GGML model) can render a model three ways: its renderer/parser
pair (set in the config), the Go template layer, or the GGUF's own Jinja ``tokenizer.chat_template``.
It keeps the Go template unless the Jinja one offers more (``shouldPreferChatTemplate``): more
capabilities (tools, thinking), or the same tool capability with a tool round trip the Go template
lacks. ``OLLAMA_GO_TEMPLATE`` set forces one way. Older versions always use the Go template, or
``{{ .Prompt }}`` when there is none. The capability tests below are Ollama's, string for string.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover  (typing is not imported at load: `inspect` is a short process)
    from typing import Any, Optional

# gotemplate is imported where a Go template is looked at: a model without one (pack's common case)
# does not pay for the parser

__all__ = ["template_selection", "go_template_capabilities", "chat_template_capabilities", "tool_call_tag"]

TOOLS, THINKING, INSERT = "tools", "thinking", "insert"


def chat_template_capabilities(chat_template: str) -> list[str]:
    """``chatTemplateCapabilities``: what Ollama reads off a Jinja chat template."""
    caps = []
    if not chat_template:
        return caps
    if "tools" in chat_template or "tool_call" in chat_template:
        caps.append(TOOLS)
    if _jinja_thinks(chat_template):
        caps.append(THINKING)
    return caps


def _jinja_thinks(t: str) -> bool:
    if "<think>" in t and "</think>" in t:
        return True
    return (("content.split('</think>')" in t or 'content.split("</think>")' in t)
            and "reasoning_content" not in t and "<SPECIAL_12>" not in t)


def chat_template_tool_round_trip(t: str) -> bool:
    if TOOLS not in chat_template_capabilities(t):
        return False
    calls = "tool_calls" in t or "assistant_tool_call" in t
    results = ("tool_response" in t or "tool_results" in t or "role'] == 'tool'" in t or "role'] == \"tool\"" in t
               or "role\"] == 'tool'" in t or 'role"] == "tool"' in t or "message.role == 'tool'" in t
               or 'message.role == "tool"' in t or "ipython" in t)
    return calls and results


def _thinking_tags(nodes: list) -> tuple[str, str]:
    """``thinking.InferTags``: around the last ``.Thinking`` inside a ``range`` over ``.Messages``, the
    first and last text of the nearest list."""
    from .gotemplate import Action, If, Pipe, Range, Text, With
    tags = ("", "")

    def pipe_has(p: Pipe, name: str) -> bool:
        for cmd in p.cmds:
            for kind, val in cmd:
                if kind == "field" and val.split(".")[1:2] == [name]:
                    return True
                if kind == "pipe" and pipe_has(val, name):
                    return True
        return False

    def ends(lst: list) -> tuple[str, str]:
        first = lst[0].text.strip() if lst and isinstance(lst[0], Text) else ""
        last = lst[-1].text.strip() if lst and isinstance(lst[-1], Text) else ""
        return first, last

    def walk(lst: list, in_messages: bool) -> None:
        nonlocal tags
        for n in lst:
            if isinstance(n, Action):
                if in_messages and pipe_has(n.pipe, "Thinking"):
                    tags = ends(lst)
            elif isinstance(n, If):
                for cond, body in n.branches:
                    if in_messages and pipe_has(cond, "Thinking"):
                        tags = ends(lst)
                    walk(body, in_messages)
                walk(n.otherwise, in_messages)
            elif isinstance(n, Range):
                walk(n.body, pipe_has(n.pipe, "Messages"))
                walk(n.otherwise, in_messages)
            elif isinstance(n, With):
                if in_messages and pipe_has(n.pipe, "Thinking"):
                    tags = ends(lst)
                walk(n.body, in_messages)
                walk(n.otherwise, in_messages)
    walk(nodes, False)
    return tags


def go_template_capabilities(template: str) -> list[str]:
    """``goTemplateCapabilities``: tools (``.Tools``), insert (``.Suffix``), thinking (tags found)."""
    low = template.lower()
    if "tools" not in low and "suffix" not in low and "thinking" not in low:
        return []        # none of the names it looks for: no need to parse (or import the parser)
    from .gotemplate import TemplateError, identifiers, ollama_parse
    try:
        nodes = ollama_parse(template)
    except TemplateError:
        return []
    ids = identifiers(nodes)
    caps = []
    if "tools" in ids:
        caps.append(TOOLS)
    if "suffix" in ids:
        caps.append(INSERT)
    opening, closing = _thinking_tags(nodes)
    if opening and closing:
        caps.append(THINKING)
    return caps


def tool_call_tag(template) -> str:
    """The tag Ollama's tool parser looks for in a model's output (``tools.parseTag``): the first
    non-blank text inside the first ``{{ if }}`` on a ``.ToolCalls`` field, up to a ``{``, trimmed;
    ``{`` where there is none (then only output that starts with a JSON object is read as calls,
    and anything else reaches the client as text). An action before any text ends the search."""
    from .gotemplate import Action, If, Range, Text, With, ollama_parse
    nodes = ollama_parse(template) if isinstance(template, str) else template

    def on_calls(pipe) -> bool:      # a field argument naming ToolCalls (not a variable, not a sub-pipe)
        return any(kind == "field" and "ToolCalls" in val.split(".")[1:] for cmd in pipe.cmds for kind, val in cmd)

    def chain(n: If, k: int) -> tuple:
        """Go's view of branch k of an if/else-if chain: (condition, body, else list)."""
        cond, body = n.branches[k]
        rest = [If(n.branches[k + 1:], n.otherwise)] if k + 1 < len(n.branches) else n.otherwise
        return cond, body, rest

    def find_if(lst):
        for n in lst:
            if isinstance(n, If):
                cond, body, rest = chain(n, 0)
                if on_calls(cond):
                    return body          # even an empty body: Go's search ends at this if
                for lst2 in (body, rest):
                    found = find_if(lst2)
                    if found is not None:
                        return found
            elif isinstance(n, (Range, With)):
                for lst2 in (n.body, n.otherwise):
                    found = find_if(lst2)
                    if found is not None:
                        return found
        return None

    def find_text(lst):
        for n in lst:
            if isinstance(n, Text):
                if n.text.strip():
                    return n.text
            elif isinstance(n, If):
                _cond, body, rest = chain(n, 0)
                return find_text(body) or find_text(rest)
            elif isinstance(n, (Range, With)):
                return find_text(n.body) or find_text(n.otherwise)
            elif isinstance(n, Action):
                return None
        return None
    body = find_if(nodes)
    text = find_text(body) if body is not None else None
    tag = (text or "").replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


def go_template_tool_round_trip(template: str) -> bool:
    if "toolcalls" not in template.lower():
        return False
    from .gotemplate import TemplateError, identifiers, ollama_parse
    try:
        ids = identifiers(ollama_parse(template))
    except TemplateError:
        return False
    if "tools" not in ids or "toolcalls" not in ids:
        return False
    return 'eq .Role "tool"' in template or "tool_response" in template or "TOOL_RESULTS" in template


def _prefer_chat(chat: str, chat_caps: list[str], go: str, go_caps: list[str]) -> bool:
    """``shouldPreferChatTemplate``."""
    if len(chat_caps) > len(go_caps):
        return not go_template_tool_round_trip(go) or chat_template_tool_round_trip(chat)
    if set(chat_caps) != set(go_caps) or len(chat_caps) != len(go_caps) or TOOLS not in chat_caps or TOOLS not in go_caps:
        return False
    return chat_template_tool_round_trip(chat) and not go_template_tool_round_trip(go)


def template_selection(*, go_template: Optional[str], chat_template: Optional[str], renderer: str = "",
                       parser: str = "", model_family: str = "") -> list[dict[str, Any]]:
    """How each Ollama version range renders a model: ``[{"ollama": range, "source": ..., "why": ...}]``.

    ``source`` is Ollama's own name (``selectedTemplateSource``): ``renderer_parser``, ``renderer``,
    ``parser``, ``harmony``, ``go_template``, ``gguf_chat_template`` or ``none``; below 0.30,
    ``go_template`` or ``default`` (``{{ .Prompt }}``)."""
    go_caps = go_template_capabilities(go_template) if go_template else []
    chat_caps = chat_template_capabilities(chat_template or "")
    harmony = bool(go_template) and model_family in ("gptoss", "gpt-oss") and "<|start|>" in go_template \
        and "<|end|>" in go_template
    out = []
    if renderer or parser:
        src = "renderer_parser" if renderer and parser else "renderer" if renderer else "parser"
        out.append({"ollama": ">=0.30", "source": src, "why": "the config names a renderer/parser"})
    elif harmony:
        out.append({"ollama": ">=0.30", "source": "harmony", "why": "a gpt-oss template with harmony tags"})
    elif go_template:
        if chat_template and _prefer_chat(chat_template, chat_caps, go_template, go_caps):
            out.append({"ollama": ">=0.30", "source": "gguf_chat_template",
                        "why": f"the GGUF's chat template offers more ({', '.join(chat_caps) or 'none'} against "
                               f"the Go template's {', '.join(go_caps) or 'none'}): the Go template is skipped"})
        else:
            out.append({"ollama": ">=0.30", "source": "go_template",
                        "why": "the Go template layer" + (f" (its capabilities: {', '.join(go_caps)})" if go_caps
                                                          else "")})
    elif chat_template:
        out.append({"ollama": ">=0.30", "source": "gguf_chat_template",
                    "why": "no Go template layer: llama-server renders the GGUF's Jinja"
                           + (f" (capabilities: {', '.join(chat_caps)})" if chat_caps else "")})
    else:
        out.append({"ollama": ">=0.30", "source": "none", "why": "no template at all: prompts go in raw"})
    if go_template and chat_template and not (renderer or parser or harmony):
        out.append({"ollama": ">=0.30 with OLLAMA_GO_TEMPLATE=0", "source": "gguf_chat_template",
                    "why": "the variable turns Go templates off"})
    if renderer or parser:
        out.append({"ollama": "<0.30", "source": out[0]["source"], "why": "the config names a renderer/parser"})
    elif go_template:
        out.append({"ollama": "<0.30", "source": "go_template", "why": "the Go template layer (tools: "
                    + ("yes" if TOOLS in go_caps else "no") + ")"})
    else:
        out.append({"ollama": "<0.30", "source": "default", "why": "no template layer: {{ .Prompt }}, the raw "
                                                                  "prompt (the GGUF's Jinja is not read)"})
    return out

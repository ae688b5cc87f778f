"""Deterministic answers and token counting, shared by the three wire protocols.

Token counting rule (prompts and completions alike)
----------------------------------------------------
* ``tokens(text)`` is the number of matches of the regex ``\\w+|[^\\w\\s]`` (Unicode): every
  run of word characters is one token, every other non-space character is one token,
  white space is free.
* Prompt tokens = sum over the messages of ``3 + tokens(message text)``, where
    - the system prompt (OpenAI ``system``/``developer`` message, Anthropic ``system``,
      Gemini ``systemInstruction``) counts as one message;
    - a message's text is the sum over its parts: text parts; a tool call counts
      ``tokens(name) + tokens(arguments JSON)`` (OpenAI ``tool_calls``, Anthropic
      ``tool_use`` with compact JSON of ``input``, Gemini ``functionCall`` with compact JSON
      of ``args``); a tool result counts its text (OpenAI ``tool`` message content,
      Anthropic ``tool_result`` content, Gemini compact JSON of ``functionResponse.response``);
      images, audio and files count 0;
  plus, when the request has tools, ``tokens(compact JSON of the request's tools list)``
  (orjson serialisation of the list exactly as received, key order kept).
* Completion tokens = ``tokens(answer text)`` summed over the choices; a tool call counts
  ``tokens(function name) + tokens(arguments JSON)``.
* Streams split the answer at token boundaries (each delta is white space + one token),
  so the deltas' token counts add up exactly to the completion tokens.
* Embeddings: sum of ``tokens(input)`` over the inputs, no per-input overhead.

Answer text
-----------
``[<model>] You asked: "<last user text>". <filler sentences>``; after a tool result:
``[<model>] The tool returned: "<tool result>". <filler>``. The fillers and the target
length (20–60 tokens, longer when the quote itself is long) are picked by a hash of the
model and the whole conversation. Quotes longer than 240 characters are clipped with "…".
Then, in this order: a stop sequence found in the text cuts it there (finish "stop"), and
more tokens than the request's max tokens cut it to that many tokens (finish "length").
JSON mode returns ``{"answer": "<text>"}`` (or an object built from the JSON schema whose
strings hold the text), then the same truncation rules apply to the JSON text.

Tool calls happen when the request has tools, the last message is not a tool result and
either the request forces a tool or the last user text contains the word "weather"; the
arguments are built from the schema's required properties (strings get the first word of
the last user message, integers 1, numbers 1.0, booleans true, arrays [], enums their first
value). max tokens do not truncate tool calls.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
WORD_RE = re.compile(r"\w+")
WEATHER_RE = re.compile(r"\bweather\b", re.IGNORECASE)
MESSAGE_OVERHEAD = 3
QUOTE_LIMIT = 240

_findall = TOKEN_RE.findall
_pieces = re.compile(r"\s*(?:\w+|[^\w\s])").findall


def count_tokens(text: str) -> int:
    return len(_findall(text)) if text else 0


def split_pieces(text: str) -> tuple[str, ...]:
    """Split `text` at token boundaries: each piece is leading white space + one token,
    trailing white space sticks to the last piece. ''.join(pieces) == text."""
    out = _pieces(text)
    if not out:
        return (text,) if text else ()
    tail = len(text) - sum(map(len, out))
    if tail:
        out[-1] += text[-tail:]
    return tuple(out)


FILLERS: tuple[str, ...] = (
    "This is a simulated answer from the AkaRouter upstream simulator.",
    "The same model and conversation always produce the same words.",
    "No real language model was consulted to write it.",
    "Latency and token rates follow the model's catalog profile.",
    "Token counts are exact under the simulator's simple tokenizer.",
    "Consider this a placeholder for a thoughtful reply.",
    "In production, a real provider would answer here.",
    "The quick brown fox jumps over the lazy dog.",
    "Every sentence here was chosen by a hash of the model and the prompt.",
    "Streaming delivers these words one token at a time.",
    "Short answers keep the benchmarks honest and fast.",
    "Caches, routers and retries can all be exercised against this text.",
    "Nothing here should be taken as factual advice.",
    "The weather inside the test harness is always calm.",
    "Gateways appreciate predictable upstreams.",
    "A second thought adds a little more length to the reply.",
    "Determinism makes failures easy to reproduce.",
    "Please check the usage block for the exact token counts.",
    "Here is one more sentence, for good measure.",
    "The simulator speaks OpenAI, Anthropic and Gemini fluently.",
    "Results may vary with a real model, but not here.",
    "Thank you for testing responsibly.",
    "Each reply ends when the budget of tokens is spent.",
    "Long prompts are quoted, then clipped to keep answers short.",
)
_FILLER_TOKENS = tuple(count_tokens(s) for s in FILLERS)


@dataclass(slots=True)
class Tool:
    name: str
    schema: dict


@dataclass(slots=True)
class Conversation:
    """The protocol-neutral view of a generation request."""

    model: str
    texts: list[str] = field(default_factory=list)  # every text counted in the prompt, in order
    messages: int = 0  # number of messages, system prompt included
    tools_json_tokens: int = 0
    last_user: str = ""
    tool_result: str | None = None  # set when the last message is a tool result
    tools: list[Tool] = field(default_factory=list)
    tool_mode: str = "auto"  # auto | none | forced
    forced_tool: str | None = None  # None with mode forced = the first tool
    max_tokens: int | None = None
    stops: tuple[str, ...] = ()
    json_mode: bool = False
    json_schema: dict | None = None
    n: int = 1
    stream: bool = False

    def prompt_tokens(self) -> int:
        return sum(count_tokens(t) for t in self.texts) + MESSAGE_OVERHEAD * self.messages + self.tools_json_tokens

    def digest(self) -> int:
        h = blake2b(digest_size=8)
        h.update(self.model.encode())
        for t in self.texts:
            h.update(b"\x1f")
            h.update(t.encode("utf-8", "surrogatepass"))
        return int.from_bytes(h.digest(), "big")


@dataclass(slots=True)
class ToolCall:
    id_hex: str
    name: str
    arguments: str  # JSON text
    args: Any


@dataclass(slots=True)
class Completion:
    text: str  # the answer text, or the tool call's arguments JSON
    pieces: tuple[str, ...]
    tokens: int
    finish: str  # stop | length | stop_sequence | tool
    stop_sequence: str | None = None
    tool: ToolCall | None = None


def _clip(text: str) -> str:
    if len(text) <= QUOTE_LIMIT:
        return text
    cut = text[:QUOTE_LIMIT]
    if " " in cut[QUOTE_LIMIT // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut + "…"


@lru_cache(maxsize=8192)
def base_answer(model: str, label: str, quote: str, h: int) -> tuple[str, tuple[str, ...]]:
    head = f'[{model}] {label}: "{_clip(quote)}".'
    total = count_tokens(head)
    target = 20 + h % 41
    parts = [head]
    i = (h >> 8) % len(FILLERS)
    step = 1 + (h >> 16) % 5
    used = 0
    while used == 0 or (total < target and used < len(FILLERS)):
        parts.append(FILLERS[i])
        total += _FILLER_TOKENS[i]
        i = (i + step) % len(FILLERS)
        used += 1
    text = " ".join(parts)
    return text, split_pieces(text)


def first_word(text: str) -> str:
    m = WORD_RE.search(text)
    return m.group(0) if m else "value"


def build_from_schema(schema: Any, fill: str, *, all_props: bool, root: Any = None, depth: int = 0) -> Any:
    """A deterministic value valid for `schema` (the subset of JSON schema tools use)."""
    if not isinstance(schema, dict) or depth > 8:
        return fill
    if root is None:
        root = schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return build_from_schema(node, fill, all_props=all_props, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            pick = next((o for o in options if isinstance(o, dict) and o.get("type") != "null"), options[0])
            return build_from_schema(pick, fill, all_props=all_props, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        kind = kind.lower()
    else:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        # A schema is the client's, so it may be malformed: only string names make arguments.
        names = list(props) if all_props else [n for n in schema.get("required") or () if isinstance(n, str)]
        return {
            name: build_from_schema(props.get(name, {}), fill, all_props=all_props, root=root, depth=depth + 1) for name in names
        }
    if kind == "array":
        if all_props:
            return [build_from_schema(schema.get("items", {}), fill, all_props=all_props, root=root, depth=depth + 1)]
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return fill


def _truncate(text: str, pieces: tuple[str, ...], conv: Conversation) -> Completion:
    finish = "stop"
    stop_seq = None
    if conv.stops:
        best = -1
        for s in conv.stops:
            if s:
                at = text.find(s)
                if at != -1 and (best == -1 or at < best):
                    best, stop_seq = at, s
        if best != -1:
            text = text[:best]
            pieces = split_pieces(text)
            finish = "stop_sequence"
    limit = conv.max_tokens
    if limit is not None and len(pieces) > limit:
        pieces = pieces[: max(limit, 0)]
        text = "".join(pieces)
        finish, stop_seq = "length", None
    return Completion(text=text, pieces=pieces, tokens=len(pieces), finish=finish, stop_sequence=stop_seq)


def complete_with(conv: Conversation, text: str, finish: str = "stop") -> Completion:
    """`text` as the answer (replay mode's recorded answers), under the same truncation rules."""
    completion = _truncate(text, split_pieces(text), conv)
    if completion.finish == "stop":
        completion.finish = finish
    return completion


def _pick_tool(conv: Conversation) -> Tool | None:
    if not conv.tools or conv.tool_result is not None or conv.tool_mode == "none":
        return None
    if conv.tool_mode == "forced":
        if conv.forced_tool:
            for tool in conv.tools:
                if tool.name == conv.forced_tool:
                    return tool
        return conv.tools[0]
    if WEATHER_RE.search(conv.last_user):
        return conv.tools[0]
    return None


def generate(conv: Conversation, index: int = 0, digest: int | None = None) -> Completion:
    h = conv.digest() if digest is None else digest
    if index:
        h = zlib.crc32(index.to_bytes(4, "big"), h & 0xFFFFFFFF) | (h & ~0xFFFFFFFF)
    tool = _pick_tool(conv)
    if tool is not None:
        args = build_from_schema(tool.schema, first_word(conv.last_user), all_props=False)
        if not isinstance(args, dict):
            args = {}
        arguments = orjson.dumps(args).decode()
        pieces = split_pieces(arguments)
        call_id = blake2b(f"{h}:{index}".encode(), digest_size=12).hexdigest()
        call = ToolCall(id_hex=call_id, name=tool.name, arguments=arguments, args=args)
        return Completion(text=arguments, pieces=pieces, tokens=count_tokens(tool.name) + len(pieces), finish="tool", tool=call)
    if conv.tool_result is not None:
        text, pieces = base_answer(conv.model, "The tool returned", conv.tool_result, h)
    else:
        text, pieces = base_answer(conv.model, "You asked", conv.last_user, h)
    if conv.json_mode:
        schema = conv.json_schema
        value = None
        if isinstance(schema, dict) and (schema.get("properties") or schema.get("$ref") or schema.get("anyOf")):
            value = build_from_schema(schema, text, all_props=True)
        if not isinstance(value, dict):
            value = {"answer": text}
        text = orjson.dumps(value).decode()
        pieces = split_pieces(text)
    return _truncate(text, pieces, conv)


_ALTERNATIVES = (
    " the",
    " a",
    ".",
    ",",
    " and",
    " of",
    " to",
    " is",
    " it",
    " in",
    " that",
    " for",
    " on",
    " with",
    " as",
    " I",
    " this",
    " be",
    " at",
    " or",
)


def _lp(token: str, i: int) -> float:
    return -round(0.0001 + (zlib.crc32(f"{i}:{token}".encode()) % 2500) / 1000.0, 4)


def logprobs(pieces: tuple[str, ...], top: int, start: int = 0) -> list[dict]:
    """OpenAI `logprobs.content` entries for `pieces` (deterministic, negative)."""
    out = []
    top = max(0, min(int(top or 0), 20))
    for offset, tok in enumerate(pieces):
        i = start + offset
        lp = _lp(tok, i)
        entry: dict[str, Any] = {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": []}
        if top:
            alts = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
            j = 0
            k = zlib.crc32(tok.encode()) % len(_ALTERNATIVES)
            while len(alts) < top:
                alt = _ALTERNATIVES[(k + j) % len(_ALTERNATIVES)]
                j += 1
                if alt == tok:
                    continue
                alts.append({"token": alt, "logprob": round(lp - 0.75 * len(alts), 4), "bytes": list(alt.encode())})
            entry["top_logprobs"] = alts
        out.append(entry)
    return out

"""What makes two requests share an answer.

The *context key* hashes everything besides the last user turn that changes the right
answer: the model route, the system prompt and earlier turns, tools, response format and
sampling parameters. Semantic search only compares prompts under the same context key
(and scope), so a hit can never cross a different system prompt or conversation. The
*exact key* adds the scope and the last user turn itself.
"""

import hashlib

import orjson

from apps.core.llm import ChatRequest

SAMPLING = ("temperature", "top_p", "max_tokens", "stop", "logprobs", "top_logprobs", "n")
# Sampling parameters read since entries were first cached: in the key only when given, so
# that the keys of requests without them, and the entries cached under those, stay as they were.
LATER_SAMPLING = ("top_k",)


def last_user_turn(req: ChatRequest) -> tuple[int, str] | None:
    """(index, text) of the final message when it is a plain-text user turn, else None:
    images, tool results and assistant prefills are not matched semantically."""
    message = req.messages[-1]
    content = message.get("content")
    if message.get("role") != "user":
        return None
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content if isinstance(part, dict)):
            return None
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        return None
    return len(req.messages) - 1, content


def context_key(req: ChatRequest, route: str) -> str:
    sampling = {name: getattr(req, name) for name in SAMPLING}
    sampling.update((name, getattr(req, name)) for name in LATER_SAMPLING if getattr(req, name) is not None)
    material = {
        "route": route,
        "history": req.messages[:-1],
        "tools": req.tools,
        "tool_choice": req.tool_choice,
        "response_format": req.response_format,
        "sampling": sampling,
        "extra": req.extra,
    }
    return hashlib.blake2b(orjson.dumps(material, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def exact_key(context: str, scope: str, prompt: str) -> str:
    return hashlib.sha256(f"{context}\x1f{scope}\x1f{prompt}".encode()).hexdigest()

"""The client-facing wire formats, each a bundle of its parser and renderers."""

from collections.abc import Callable
from dataclasses import dataclass

from . import anthropic_wire, openai_wire


@dataclass(frozen=True)
class Wire:
    endpoint: str
    id_prefix: str
    parse: Callable           # body bytes -> ChatRequest (ApiError 400 when malformed)
    render: Callable          # (ChatResult, response id, created) -> bytes
    writer: Callable          # (response id, created, model, request, usage if already known) -> stream writer
    error_body: Callable      # (ApiError, the call's request id) -> bytes
    stream_error: Callable    # ApiError -> SSE bytes
    model_list: Callable      # model ids -> bytes
    model_object: Callable    # one model id -> bytes


OPENAI = Wire("chat.completions", "chatcmpl-", openai_wire.parse_chat, openai_wire.completion, openai_wire.ChunkWriter,
              openai_wire.error_body, openai_wire.stream_error, openai_wire.model_list,
              openai_wire.model_object)
ANTHROPIC = Wire("messages", "msg_", anthropic_wire.parse_messages, anthropic_wire.message, anthropic_wire.EventWriter,
                 anthropic_wire.error_body, anthropic_wire.stream_error, anthropic_wire.model_list,
                 anthropic_wire.model_object)


def for_path(path: str) -> Wire:
    return ANTHROPIC if path.startswith("/v1/messages") else OPENAI


def for_request(request) -> Wire:
    """Anthropic's SDKs send `anthropic-version` on every call, the model list included."""
    return ANTHROPIC if "anthropic-version" in request.headers else OPENAI

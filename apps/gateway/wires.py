"""The client-facing wire formats, each a bundle of its parser, renderers and errors."""

from collections.abc import Callable
from dataclasses import dataclass

from . import anthropic_wire, openai_wire


@dataclass(frozen=True)
class Wire:
    name: str
    endpoint: str
    id_prefix: str
    parse: Callable
    render: Callable          # (ChatResult, response id, created) -> bytes
    writer: Callable          # (response id, created, model, include_usage) -> stream writer
    stream_error: Callable    # ApiError -> bytes
    error_body: Callable      # ApiError -> dict


OPENAI = Wire("openai", "chat.completions", "chatcmpl-", openai_wire.parse_chat, openai_wire.completion,
              openai_wire.ChunkWriter, openai_wire.stream_error, lambda err: err.openai_body())
ANTHROPIC = Wire("anthropic", "messages", "msg_", anthropic_wire.parse_messages, anthropic_wire.message,
                 anthropic_wire.EventWriter, anthropic_wire.stream_error, lambda err: err.anthropic_body())

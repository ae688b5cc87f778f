"""The one internal shape of a chat call, whatever wire format it came in or goes out in.

Messages use OpenAI's chat format (roles system/user/assistant/tool, `tool_calls` on
assistant turns, content as a string or a list of parts) because it can express every
protocol we speak; the wire modules translate to and from it.
"""

from dataclasses import dataclass, field

# A text's size in tokens, estimated where no tokenizer runs.
CHARACTERS_PER_TOKEN = 4


# The catalog capability a content part other than text needs.
PART_NEEDS = {"image_url": "vision", "input_audio": "audio", "file": "file"}


def estimated_tokens(text: str) -> int:
    return _tokens_of(len(text))


def _tokens_of(characters: int) -> int:
    return -(-characters // CHARACTERS_PER_TOKEN)


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[dict]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None                 # Anthropic's and Gemini's; OpenAI's API has none
    stop: list[str] | None = None
    n: int = 1
    tools: list[dict] | None = None          # OpenAI shape: {"type": "function", "function": {...}}
    tool_choice: object = None               # OpenAI shape: "auto" | "none" | "required" | {...}
    response_format: dict | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    user: str | None = None
    include_usage: bool = False
    # Parameters we pass through untouched to OpenAI-compatible upstreams (seed, penalties...).
    extra: dict = field(default_factory=dict)

    def needs(self) -> frozenset[str]:
        """The catalog capabilities a model must have to serve this request whole: a fallback
        or a routed model without one would drop what was asked (images, audio, files, a schema,
        logprobs) and answer anyway."""
        wanted = {PART_NEEDS[part["type"]] for message in self.messages if isinstance(message.get("content"), list)
                  for part in message["content"] if isinstance(part, dict) and part.get("type") in PART_NEEDS}
        if self.tools:
            wanted.add("tools")
        if isinstance(self.response_format, dict) and self.response_format.get("type") in ("json_object", "json_schema"):
            wanted.add("json")
        if self.logprobs:
            wanted.add("logprobs")
        return frozenset(wanted)

    def estimated_prompt_tokens(self) -> int:
        """The messages' text in tokens, estimated: for an input whose count the provider
        never sent."""
        return _tokens_of(sum(len(content_text(message.get("content"))) for message in self.messages))

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatResult:
    id: str
    model: str                      # the model that answered
    content: str | None
    finish_reason: str              # stop | length | tool_calls | content_filter
    usage: Usage
    tool_calls: list[dict] | None = None   # OpenAI shape, complete
    logprobs: dict | None = None            # OpenAI choice.logprobs shape
    provider: str = ""
    stop_sequence: str | None = None        # the one that ended a "stop", when the provider says (Anthropic)


# Stream events, in order: any number of Delta, then one Finish, then (always) one Final.
@dataclass(slots=True)
class Delta:
    content: str | None = None
    tool_calls: list[dict] | None = None   # OpenAI delta fragments: {"index", "id"?, "function": {...}}
    logprobs: dict | None = None


@dataclass(slots=True)
class Finish:
    finish_reason: str
    stop_sequence: str | None = None        # as ChatResult's


@dataclass(slots=True)
class Final:
    usage: Usage
    id: str
    model: str


def content_text(content) -> str:
    """The text of a message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def image_url(part) -> str | None:
    """The URL of an image part (OpenAI's object, or the bare string some clients send); None
    for any other part."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    value = part.get("image_url")
    return value.get("url", "") if isinstance(value, dict) else value or ""


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a base64 data: URL; None for a URL to fetch."""
    if not url.startswith("data:"):
        return None
    media, _, data = url[5:].partition(";base64,")
    return media, data

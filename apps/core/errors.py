"""Domain errors: why a call cannot be served as asked.

Code below the gateway (key auth, rate limits, parsing, model resolution) raises
`ApiError` with the status the client should get and what to tell it; only the gateway's
wire modules render it, as OpenAI's, Anthropic's or another client's error body.
"""

from dataclasses import dataclass, field


@dataclass
class ApiError(Exception):
    status: int
    message: str
    code: str | None = None          # machine-readable reason: invalid_json, rate_limit_exceeded, ...
    param: str | None = None         # the request field at fault, when there is one
    headers: dict[str, str] = field(default_factory=dict)   # e.g. Retry-After

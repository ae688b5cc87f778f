from dataclasses import dataclass


@dataclass
class UpstreamError(Exception):
    """A provider call that failed. `retryable` errors are retried, then fall back."""

    status: int              # the status we answer the client with (502, 504, or the upstream's 4xx)
    message: str
    retryable: bool
    retry_after: float | None = None
    upstream_status: int | None = None
    kind: str = "upstream_error"   # upstream_error | upstream_timeout | upstream_unavailable

    def __str__(self) -> str:
        return f"{self.kind} ({self.upstream_status}): {self.message}"

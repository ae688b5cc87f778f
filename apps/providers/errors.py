from dataclasses import dataclass

from apps.core.errors import ApiError


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

    def as_api_error(self) -> ApiError:
        """What the client is told."""
        prefix = {"upstream_timeout": "The upstream provider timed out",
                  "upstream_rejected": "The upstream provider rejected the request"}.get(self.kind,
                                                                                      "The upstream provider failed")
        return ApiError(self.status, f"{prefix}: {self.message}", code=self.kind)

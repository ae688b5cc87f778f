"""The one entry check for every gateway request: who is calling, and may they now."""

from . import ratelimit
from .keyauth import Principal, aresolve_key, extract_key


async def admit(headers) -> Principal:
    """Resolves the caller's key and counts the request against its rate limits.
    Raises ApiError (401, 403 or 429) otherwise."""
    principal = await aresolve_key(extract_key(headers))
    await ratelimit.enforce(principal)
    return principal

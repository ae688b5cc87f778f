"""The shape of an API key: `aka_` + 43 url-safe characters (32 random bytes)."""

import hashlib
import secrets

KEY_PREFIX = "aka_"
DISPLAY_CHARS = 12


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def secret_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def display_prefix(raw: str) -> str:
    return raw[:DISPLAY_CHARS]

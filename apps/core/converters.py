"""The URL path converter for object ids (`<id:...>`, registered by CoreConfig)."""


class Identifier:
    """An id in a URL path: letters, digits, `_` and `-` (request ids, UUIDs, invoice ids,
    signup tokens). Anything else matches no route, so it is a 404 before a view runs: a NUL
    reached PostgreSQL, which cannot hold one in text, and answered 500."""

    regex = "[A-Za-z0-9_-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)

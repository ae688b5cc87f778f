"""ASGI HTTP scopes as a server on loopback passes them, for tests that call an ASGI app
without one. Imports nothing: the subprocess tests that list loaded modules use it too."""


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": b"", "root_path": "",
            "headers": headers, "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "scheme": "http",
            "http_version": "1.1", "asgi": {"version": "3.0"}}

"""Small validators shared by the wire formats: each failure is a 400 naming the field."""

import orjson

from apps.core.errors import ApiError

# Far deeper than any real request (tool schemas included), and well under orjson's
# 255-level limit for the bodies the adapters build around these values.
MAX_DEPTH = 64
# The ledger's model_requested column; no catalog model id comes close.
MAX_MODEL_CHARS = 100


def check_depth(data, param: str | None = None) -> None:
    """A 400 when decoded JSON nests more than MAX_DEPTH containers deep."""
    # Level by level over containers only: cheap next to the parse itself.
    level, depth = [data] if type(data) is dict or type(data) is list else [], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            where = f"'{param}'" if param else "The request body"
            raise ApiError(400, f"{where} is nested more than {MAX_DEPTH} levels deep.", code="invalid_json",
                           param=param)
        deeper = []
        for node in level:
            if type(node) is dict:
                node = node.values()
            for value in node:
                if type(value) is dict or type(value) is list:
                    deeper.append(value)
        level = deeper


def json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request ({exc}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    check_depth(data)
    return data


def field(data: dict, name: str, kind, *, required: bool = False, default=None, param: str | None = None):
    value = data.get(name)
    param = param or name
    if value is None:
        if required:
            raise ApiError(400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param)
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ApiError(400, f"Invalid type for '{param}': expected {names}.", code="invalid_type", param=param)
    return value


def model_name(data: dict) -> str:
    model = field(data, "model", str, required=True)
    if len(model) > MAX_MODEL_CHARS:
        raise ApiError(400, f"'model' must be at most {MAX_MODEL_CHARS} characters long.", code="invalid_value",
                       param="model")
    if "\x00" in model:
        raise ApiError(400, "'model' must not contain NUL characters.", code="invalid_value", param="model")
    return model


def number_in(data: dict, name: str, low: float, high: float) -> float | None:
    value = field(data, name, float)
    if value is not None and not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}.", code="invalid_value", param=name)
    return value


def int_at_least(data: dict, name: str, minimum: int = 1) -> int | None:
    value = field(data, name, int)
    if value is not None and value < minimum:
        raise ApiError(400, f"'{name}' must be at least {minimum}.", code="invalid_value", param=name)
    return value


def stop_list(value, name: str, limit: int | None) -> list[str] | None:
    """`limit`: OpenAI's API takes up to 4; Anthropic's names none (the body's size bounds them)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and (limit is None or len(value) <= limit):
        return value
    most = f"up to {limit} strings" if limit else "strings"
    raise ApiError(400, f"'{name}' must be a string or a list of {most}.", code="invalid_value", param=name)

"""Small validators shared by the wire formats: each failure is a 400 naming the field."""

import orjson

from apps.core.errors import ApiError


def json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request ({exc}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def field(data: dict, name: str, kind, *, required: bool = False, default=None):
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name)
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ApiError(400, f"Invalid type for '{name}': expected {names}.", code="invalid_type", param=name)
    return value


def number_in(data: dict, name: str, low: float, high: float) -> float | None:
    value = field(data, name, float)
    if value is not None and not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}.", code="invalid_value", param=name)
    return value


def positive_int(data: dict, name: str) -> int | None:
    value = field(data, name, int)
    if value is not None and value < 1:
        raise ApiError(400, f"'{name}' must be at least 1.", code="invalid_value", param=name)
    return value


def stop_list(value, name: str = "stop") -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 4:
        return value
    raise ApiError(400, f"'{name}' must be a string or a list of up to 4 strings.", code="invalid_value", param=name)

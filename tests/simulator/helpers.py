"""Independent re-statements of the simulator's documented rules, so the tests check the
simulator against the spec rather than against its own code."""

import json
import re

import anthropic
import openai

TOKEN = re.compile(r"\w+|[^\w\s]")


def tok(text: str) -> int:
    return len(TOKEN.findall(text or ""))


def pieces(text: str) -> list[str]:
    """Token-boundary split: white space + one token per piece."""
    out, prev = [], 0
    for m in TOKEN.finditer(text):
        out.append(text[prev : m.end()])
        prev = m.end()
    if prev < len(text) and out:
        out[-1] += text[prev:]
    return out


def prompt_tokens(*texts: str, tools=None) -> int:
    """Every argument is one message's text: 3 + tokens each, plus the tools' JSON."""
    total = sum(3 + tok(t) for t in texts)
    if tools is not None:
        total += tok(json.dumps(tools))
    return total


def quote_prefix(model: str, text: str) -> str:
    return f'[{model}] You asked: "{text}".'


def oai(base_url: str, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", **kw)


def claude(base_url: str, **kw) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test", **kw)


WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detailed": {"type": "boolean"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
}
TIME_TOOL_ANTHROPIC = {
    "name": "get_time",
    "description": "Current time in a timezone",
    "input_schema": TIME_TOOL_OPENAI["function"]["parameters"],
}

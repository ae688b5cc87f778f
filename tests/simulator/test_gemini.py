"""Gemini generateContent wire of the simulator, over httpx."""

import json

import httpx

from tests.simulator.helpers import pieces, prompt_tokens, quote_prefix, tok

MODEL = "gemini-2.5-flash"
SYSTEM = "Be brief."
QUESTION = "How tall is Mount Everest?"
BODY = {
    "systemInstruction": {"parts": [{"text": SYSTEM}]},
    "contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
}
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
            }
        ]
    }
]


def generate(sim, body, model=MODEL, **kw):
    return httpx.post(f"{sim}/v1beta/models/{model}:generateContent", json=body, **kw)


def stream_sse(sim, body, model=MODEL):
    with httpx.stream(
        "POST", f"{sim}/v1beta/models/{model}:streamGenerateContent?alt=sse", json=body, headers={"x-goog-api-key": "k"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [json.loads(e[6:]) for e in events[:-1]]


def test_generate_content(sim):
    r = generate(sim, BODY, headers={"x-goog-api-key": "k"})
    assert r.status_code == 200
    data = r.json()
    (cand,) = data["candidates"]
    assert cand["index"] == 0 and cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    text = cand["content"]["parts"][0]["text"]
    assert text.startswith(quote_prefix(MODEL, QUESTION) + " ")
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == prompt_tokens(SYSTEM, QUESTION) == 15
    assert usage["candidatesTokenCount"] == tok(text)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert data["modelVersion"] == MODEL
    # Key as a query parameter works too, and the answer is deterministic.
    again = httpx.post(f"{sim}/v1beta/models/{MODEL}:generateContent?key=k", json=BODY).json()
    assert again["candidates"][0]["content"]["parts"][0]["text"] == text
    count = httpx.post(f"{sim}/v1beta/models/{MODEL}:countTokens", json=BODY).json()
    assert count == {"totalTokens": usage["promptTokenCount"]}


def test_stream_generate_content_sse(sim):
    full = generate(sim, BODY).json()
    text = full["candidates"][0]["content"]["parts"][0]["text"]
    chunks = stream_sse(sim, BODY)
    parts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert parts == pieces(text)
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert chunks[-1]["usageMetadata"] == full["usageMetadata"]
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert len({c["responseId"] for c in chunks}) == 1


def test_stream_without_alt_is_a_json_array(sim):
    r = httpx.post(f"{sim}/v1beta/models/{MODEL}:streamGenerateContent", json=BODY)
    chunks = r.json()
    assert isinstance(chunks, list)
    text = generate(sim, BODY).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == text


def test_max_output_tokens_and_stop(sim):
    body = {**BODY, "generationConfig": {"maxOutputTokens": 5, "temperature": 0.2}}
    data = generate(sim, body).json()
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "[gemini-2."
    assert data["usageMetadata"]["candidatesTokenCount"] == 5
    chunks = stream_sse(sim, body)
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5
    body = {**BODY, "generationConfig": {"stopSequences": ["asked"]}}
    data = generate(sim, body).json()
    assert data["candidates"][0]["finishReason"] == "STOP"
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "[gemini-2.5-flash] You "


def test_json_mime_type(sim):
    body = {**BODY, "generationConfig": {"responseMimeType": "application/json"}}
    text = generate(sim, body).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text)["answer"].startswith(quote_prefix(MODEL, QUESTION))


def test_function_call_and_response(sim):
    body = {"contents": [{"role": "user", "parts": [{"text": "Cairo weather?"}]}], "tools": TOOLS}
    data = generate(sim, body).json()
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP"
    assert cand["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Cairo"}}}]
    expected_out = tok("get_weather") + tok('{"city":"Cairo"}')
    assert data["usageMetadata"]["candidatesTokenCount"] == expected_out
    assert data["usageMetadata"]["promptTokenCount"] == prompt_tokens("Cairo weather?", tools=TOOLS)

    chunks = stream_sse(sim, body)
    assert len(chunks) == 1
    assert chunks[0]["candidates"][0]["content"]["parts"] == cand["content"]["parts"]
    assert chunks[0]["usageMetadata"]["candidatesTokenCount"] == expected_out

    forced = {
        "contents": [{"role": "user", "parts": [{"text": "Cairo"}]}],
        "tools": TOOLS,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    assert "functionCall" in generate(sim, forced).json()["candidates"][0]["content"]["parts"][0]

    follow_up = {
        "tools": TOOLS,
        "contents": [
            body["contents"][0],
            {"role": "model", "parts": cand["content"]["parts"]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 31}}}]},
        ],
    }
    data = generate(sim, follow_up).json()
    text = data["candidates"][0]["content"]["parts"][0]["text"]
    assert text.startswith('[gemini-2.5-flash] The tool returned: "{"temp":31}". ')
    assert data["usageMetadata"]["promptTokenCount"] == prompt_tokens(
        "Cairo weather?", "get_weather" + '{"city":"Cairo"}', '{"temp":31}', tools=TOOLS
    )


def test_errors(sim):
    r = generate(sim, BODY, model="gemini-9")
    assert r.status_code == 404
    assert r.json()["error"]["status"] == "NOT_FOUND" and r.json()["error"]["code"] == 404
    r = generate(sim, {"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = generate(sim, BODY, headers={"x-sim-fault": "429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    r = generate(sim, BODY, headers={"x-sim-fault": "503"})
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"

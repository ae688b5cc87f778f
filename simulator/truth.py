"""What a benchmark needs to measure quality: answers with a known verdict, and the verdict.

Recorded answers (replay.py) come first, then task skills (skills.py). The side endpoints
below are for benchmarks only; the gateway never calls them:

  POST   /_sim/verdict  {"model", "prompt"} -> {"known": false}, or {"known": true,
                        "good": bool, "source": "replay"|"skill", "dataset"|"kind", "id"?}
  GET    /_sim/replay   what replay mode loaded (directory, prompts per dataset)
  POST   /_sim/tasks    {"tasks": {prompt: kind, ...}}: the task kind of prompts (merged)
  DELETE /_sim/tasks    forget every registered prompt
  GET    /_sim/skills   the skill table and the assumptions behind it
  POST   /_sim/skills   {model: {kind: probability}}: overrides (merged)
"""

from __future__ import annotations

import orjson

from . import answers
from .answers import Completion, Conversation
from .asgi import read_json_object, send_bytes
from .replay import ReplayBook
from .skills import DETECTABLE, KINDS, LENGTHS, SHARED, Skills

PATHS = ("/_sim/verdict", "/_sim/replay", "/_sim/tasks", "/_sim/skills")


class GroundTruth:
    def __init__(self, book: ReplayBook) -> None:
        self.book = book
        self.skills = Skills()

    def completion(self, conv: Conversation) -> Completion | None:
        """The known-verdict answer to `conv`, if it has one (never for tool turns)."""
        if conv.tool_result is not None or conv.tools:
            return None
        recording = self.book.find(conv.model, conv.last_user)
        if recording is not None:
            return answers.complete_with(conv, recording.answer(conv.model))
        outcome = self.skills.outcome(conv.model, conv.last_user)
        if outcome is not None:
            return answers.complete_with(conv, outcome.text, finish=outcome.finish)
        return None

    def verdict(self, model: str, prompt: str) -> dict:
        recording = self.book.find(model, prompt)
        if recording is not None:
            return {"known": True, "good": recording.correct[model], "source": "replay",
                    "dataset": recording.dataset, "id": recording.id}
        kind = self.skills.kind_of(prompt)
        good = None if kind is None else self.skills.good(model, kind, prompt)
        if good is None:
            return {"known": False}
        return {"known": True, "good": good, "source": "skill", "kind": kind}

    async def handle(self, method: str, path: str, receive, send) -> None:
        if method == "GET" and path == "/_sim/replay":
            return await send_bytes(send, 200, orjson.dumps(self.book.summary()))
        if method == "GET" and path == "/_sim/skills":
            return await send_bytes(send, 200, orjson.dumps(
                {"skills": self.skills.table, "kinds": KINDS, "shared_difficulty": SHARED,
                 "detectable_bad_share": DETECTABLE, "answer_tokens": LENGTHS}))
        if method == "DELETE" and path == "/_sim/tasks":
            self.skills.tasks.clear()
            return await send_bytes(send, 200, b'{"tasks":0}')
        if method != "POST" or path == "/_sim/replay":
            return await send_bytes(send, 405, b'{"error":"method not allowed"}')
        data = await read_json_object(receive, send)
        if data is None:
            return
        if path == "/_sim/verdict":
            model, prompt = data.get("model"), data.get("prompt")
            if not isinstance(model, str) or not isinstance(prompt, str):
                return await send_bytes(send, 400, b'{"error":"need model and prompt (strings)"}')
            return await send_bytes(send, 200, orjson.dumps(self.verdict(model, prompt)))
        if path == "/_sim/tasks":
            tasks = data.get("tasks")
            if not isinstance(tasks, dict) or not all(
                    isinstance(p, str) and kind in KINDS for p, kind in tasks.items()):
                return await send_bytes(send, 400, orjson.dumps(
                    {"error": f"need tasks: {{prompt: kind}} with kind one of {', '.join(KINDS)}"}))
            self.skills.tasks.update((prompt.strip(), kind) for prompt, kind in tasks.items())
            return await send_bytes(send, 200, orjson.dumps({"tasks": len(self.skills.tasks)}))
        if not all(isinstance(m, str) and isinstance(s, dict) and all(
                k in KINDS and isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p <= 1
                for k, p in s.items()) for m, s in data.items()):
            return await send_bytes(send, 400, orjson.dumps(
                {"error": f"need {{model: {{kind: probability 0..1}}}} with kind one of {', '.join(KINDS)}"}))
        for model, skills in data.items():
            self.skills.table.setdefault(model, {}).update(skills)
        await send_bytes(send, 200, orjson.dumps({"skills": self.skills.table}))

"""AkaRouter's upstream LLM simulator: a standalone raw-ASGI server speaking the OpenAI Chat
Completions, Anthropic Messages and Google Gemini generateContent wire protocols, with
deterministic answers, exact token usage, catalog latency profiles and faults on demand.

    python -m simulator --host 127.0.0.1 --port 8401 [--fast]

No Django here: it runs as its own process (see app.py for the routes, faults.py for the
fault triggers, answers.py for the answer and token counting rules).
"""

from .app import Simulator, create_app

__all__ = ["Simulator", "create_app"]

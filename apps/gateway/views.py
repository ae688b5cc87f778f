"""The gateway's endpoints: each names its wire format and hands the request to the
pipeline, which runs the call's stages and answers in that format."""

from . import pipeline
from .wires import ANTHROPIC, OPENAI


async def chat_completions(request):
    return await pipeline.serve_chat(request, OPENAI)


async def messages(request):
    return await pipeline.serve_chat(request, ANTHROPIC)


async def count_tokens(request):
    return await pipeline.serve_count_tokens(request)


async def embeddings(request):
    return await pipeline.serve_embeddings(request)


async def models(request):
    return await pipeline.serve_models(request)


async def model(request, model: str):
    return await pipeline.serve_models(request, model)


async def feedback(request):
    return await pipeline.serve_feedback(request)

"""A provider's 200 answer that is not what the adapter reads is the provider's fault: a
retryable 502 (apps.providers.adapters.base.read_answer), never an exception that would
answer the client 500."""

import orjson
import pytest

from apps.providers.adapters import adapter_for
from apps.providers.adapters.base import read_answer
from apps.providers.errors import UpstreamError


@pytest.mark.parametrize(("answer", "read"), [
    (b"<html>busy</html>", orjson.loads),                                # not JSON
    ([], adapter_for("anthropic").count_of),                             # a list where an object belongs
    ({"totalTokens": "many"}, lambda a: int(adapter_for("gemini").count_of(a))),   # a field of another type
    ("x", lambda a: a.get("usage")),                                     # a string
    ({"choices": []}, lambda a: a["choices"][0]),                        # a field missing
])
def test_an_answer_the_reader_cannot_use_is_a_retryable_502(answer, read):
    with pytest.raises(UpstreamError) as failure:
        read_answer(read, answer)
    assert (failure.value.status, failure.value.retryable) == (502, True)
    assert failure.value.message.startswith("unreadable upstream answer")


def test_a_usable_answer_is_read():
    assert read_answer(orjson.loads, b'{"input_tokens": 12}') == {"input_tokens": 12}

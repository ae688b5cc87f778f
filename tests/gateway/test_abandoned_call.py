"""A client that hangs up before a whole (not streamed) answer reaches it: the call is
recorded once, as abandoned (499) and not billed, as a stream's is. The finished answer is
cached, so the SDK's retry of the same request is an exact hit: one answer, billed once."""

import httpx
import openai
import pytest

from tests.cache.test_cache_gateway import entries

SLOW = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "what are the fees? [[pace:ttft=1000 tps=1000]]"}]}


def test_a_client_that_times_out_is_not_billed_and_its_retry_is_billed_once(live, simulator):
    with pytest.raises(httpx.ReadTimeout):   # was billed: 200 on the ledger, the answer never read
        httpx.post(f"{live.url}/v1/chat/completions", json=SLOW, timeout=0.4,
                   headers={"authorization": f"Bearer {live.raw_key}"})
    [row] = live.records()
    assert (row.status_code, row.error_type, row.billable) == (499, "client_closed", False)
    assert len(entries(live)) == 1   # the finished answer was stored all the same

    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0)
    retried = client.chat.completions.with_raw_response.create(**SLOW)
    assert retried.headers["x-aka-cache"] == "exact"
    first, second = live.records(expected=2)
    assert first == row and (second.status_code, second.billable) == (200, True)
    assert [r.billable for r in live.records(expected=3, timeout=0.5)] == [False, True]

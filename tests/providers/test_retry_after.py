"""An upstream's Retry-After, as seconds or as an HTTP date; anything unreadable or not
finite is ignored (the retry falls back to its own backoff), never slept on."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from apps.providers.adapters.base import _retry_after


def answer(value: str | None) -> SimpleNamespace:
    return SimpleNamespace(headers=CIMultiDict({} if value is None else {"Retry-After": value}))


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), ("0", 0.0),
    (None, None), ("", None), ("soon", None), ("NaN", None), ("inf", None), ("-inf", None),
    ("Wed, 21 Oct 2015 07:28:00", None),   # a date without its zone names no instant
])
def test_retry_after_in_seconds(value, seconds):
    assert _retry_after(answer(value)) == seconds


def test_retry_after_as_an_http_date():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after(answer(later)) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _retry_after(answer(earlier)) == 0.0

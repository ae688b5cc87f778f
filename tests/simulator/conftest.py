"""Fixtures for the upstream simulator tests: a second simulator, with the catalog
latencies, on demand (the fast one and `sim` come from tests/conftest.py)."""

import pytest

from tests.live import start_simulator


@pytest.fixture(scope="session")
def slow_simulator():
    base_url, stop = start_simulator(fast=False)
    yield base_url
    stop()

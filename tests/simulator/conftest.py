"""Fixtures for the upstream simulator tests: one simulator process (fast mode) for the
session, reset before every test; a second one with the catalog latencies on demand."""

import httpx
import pytest

from tests.live import start_simulator


@pytest.fixture(scope="session")
def simulator():
    base_url, stop = start_simulator(fast=True)
    yield base_url
    stop()


@pytest.fixture(scope="session")
def slow_simulator():
    base_url, stop = start_simulator(fast=False)
    yield base_url
    stop()


@pytest.fixture
def sim(simulator):
    """The session simulator with zeroed stats, faults and marker counters."""
    assert httpx.post(f"{simulator}/_sim/reset").status_code == 200
    return simulator

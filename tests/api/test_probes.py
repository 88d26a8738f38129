"""/healthz's broker check keeps one connection instead of opening one per call."""

from __future__ import annotations

import asyncio

import pytest

from api.probes import BrokerProbe
from tests.helpers import free_port


async def test_probe_reuses_one_connection(amqp_url: str) -> None:
    """Twenty checks, ten of them at once, open one connection to the real broker."""
    probe = BrokerProbe(amqp_url, retry_s=3600)
    try:
        await asyncio.gather(*(probe.check() for _ in range(10)))
        for _ in range(10):
            await probe.check()
        assert probe.attempts == 1
    finally:
        await probe.aclose()


async def test_probe_of_a_dead_broker_retries_only_after_its_interval() -> None:
    """A broker that is down is tried once per interval; every check says so, no password."""
    probe = BrokerProbe(f"amqp://guest:pw-secret@127.0.0.1:{free_port()}/", retry_s=3600)
    for _ in range(3):
        with pytest.raises(ConnectionError) as down:
            await probe.check()
        assert "pw-secret" not in str(down.value) and "127.0.0.1" in str(down.value)
    assert probe.attempts == 1
    again = BrokerProbe(f"amqp://guest:pw@127.0.0.1:{free_port()}/", retry_s=0)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await again.check()
    assert again.attempts == 2

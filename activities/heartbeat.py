"""Heartbeats around long awaits (S3 transfers), so a dead worker is noticed quickly."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio import activity

T = TypeVar("T")

_DEFAULT_EVERY_S = 10.0


def _interval() -> float:
    timeout = activity.info().heartbeat_timeout
    # Three beats per timeout: one late beat must not make the server give up on us.
    return timeout.total_seconds() / 3 if timeout else _DEFAULT_EVERY_S


async def heartbeating(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, heartbeating meanwhile; cancelling the activity cancels `work` too."""
    task = asyncio.ensure_future(work)
    every = _interval()
    try:
        while not task.done():
            activity.heartbeat()
            await asyncio.wait({task}, timeout=every)
        return task.result()
    finally:
        task.cancel()

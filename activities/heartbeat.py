"""Heartbeats around S3 transfers that report progress, so a stalled transfer is noticed.

A heartbeat on a timer says only that the worker's event loop is alive: a transfer stuck
on a connection S3 no longer answers would heartbeat until the start-to-close timeout (30
minutes). So a beat is sent only when the transfer moved since the last one (a new request,
body bytes sent or read), with what it did as the heartbeat's details; a transfer that stops
moving stops heartbeating, and the heartbeat timeout ends the attempt even if the request's
own deadline did not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any, TypeVar

from temporalio import activity

from travis_logs.transfer import Progress, ProgressMark

T = TypeVar("T")

_DEFAULT_EVERY_S = 10.0


def _interval() -> float:
    timeout = activity.info().heartbeat_timeout
    # Three looks per timeout: one late beat must not make the server give up on us.
    return timeout.total_seconds() / 3 if timeout else _DEFAULT_EVERY_S


async def heartbeating(work: Coroutine[Any, Any, T], progress: Progress) -> T:
    """Await `work`, heartbeating while `progress` moves; cancelling the activity cancels it.

    A local activity has nothing to beat to: its workflow task times out when the worker
    dies, and each S3 request has its own deadline.
    """
    if activity.info().is_local:
        return await work
    task = asyncio.ensure_future(work)
    every = _interval()
    last: ProgressMark | None = None
    try:
        while not task.done():
            mark = progress.mark()
            if mark != last:
                activity.heartbeat(asdict(mark))
                last = mark
            await asyncio.wait({task}, timeout=every)
        return task.result()
    finally:
        task.cancel()

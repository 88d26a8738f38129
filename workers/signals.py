"""Stopping a process on SIGTERM (a supervisor, Docker, Kubernetes) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], object]) -> Iterator[None]:
    """Call `callback` on SIGTERM or SIGINT while the block runs; the defaults return after."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run_until_stopped(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """`run(stop)`, where `stop` is set by the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    with on_stop_signal(stop.set):
        return await run(stop)

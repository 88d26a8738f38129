"""A token bucket for the operator commands and reconciliation: at most N calls a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """`await limiter.wait()` before each call; bursts of up to `burst` go at once.

    A rate of 0 or less means no limit. The clock is injectable so tests need no real time.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self._burst)
        self._at = clock()
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Take a token; how long the caller must wait before using it."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    async def wait(self) -> None:
        async with self._lock:  # waiters queue in order instead of all waking at once
            pause = self.delay()
            if pause > 0:
                await asyncio.sleep(pause)

"""Fault injection around real activities: a worker interceptor acts after an activity ends.

Nothing is mocked: the activities run for real against PostgreSQL and S3, and the
interceptor changes the world between two of them (corrupts the archived object, stores a
late part), the way a failing disk or a slow producer would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from travis_logs.archive_store import ArchiveStore

Action = Callable[[Any], Awaitable[None]]


class AfterActivity(Interceptor):
    """Run `action(activity input)` after `activity_type` succeeds, the first `times` times."""

    def __init__(self, activity_type: str, action: Action, times: int = 1) -> None:
        self.activity_type = activity_type
        self.action = action
        self.remaining = times
        self.fired = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _After(next, self)


class _After(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, plan: AfterActivity) -> None:
        super().__init__(next)
        self._plan = plan

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await self.next.execute_activity(input)
        plan = self._plan
        if activity.info().activity_type == plan.activity_type and plan.remaining > 0:
            plan.remaining -= 1
            plan.fired += 1
            await plan.action(input.args[0])
        return result


def corrupt_archive(store: ArchiveStore) -> Action:
    """Overwrite the archived object with bytes of the same size that differ (bit rot)."""

    async def corrupt(inp: Any) -> None:
        s3, bucket, key = store.client, store.bucket, ArchiveStore.key(inp.job_id)
        head = await s3.head_object(Bucket=bucket, Key=key)
        body = await (await s3.get_object(Bucket=bucket, Key=key))["Body"].read()
        damaged = bytes([body[0] ^ 0x20]) + body[1:] if body else b"?"
        await s3.put_object(Bucket=bucket, Key=key, Body=damaged, Metadata=head["Metadata"])

    return corrupt

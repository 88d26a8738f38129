"""The rate limiter's arithmetic (a fake clock) and the JSON log format (no services)."""

from __future__ import annotations

import json
import logging

from travis_logs.logformat import JsonFormatter
from travis_logs.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_calls() -> None:
    """At 10 a second, the calls after the burst wait 0.1 s more each; idle time refills."""
    clock = FakeClock()
    limiter = RateLimiter(10, burst=2, clock=clock)
    assert [limiter.delay() for _ in range(4)] == [0.0, 0.0, 0.1, 0.2]
    clock.now += 10
    assert limiter.delay() == 0.0


def test_no_limit() -> None:
    """A rate of 0 never waits."""
    limiter = RateLimiter(0, clock=FakeClock())
    assert {limiter.delay() for _ in range(100)} == {0.0}


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_job_and_workflow_ids() -> None:
    """Temporal's logger context gives workflow_id; job_id follows from `log-<job_id>`."""
    line = JsonFormatter().format(_record(temporal_workflow={"workflow_id": "log-42"}))
    doc = json.loads(line)
    assert doc["message"] == "hello world"
    assert (doc["job_id"], doc["workflow_id"]) == (42, "log-42")


def test_json_lines_without_context() -> None:
    """Outside any workflow a line has no ids; an explicit job_id extra is kept."""
    assert "job_id" not in json.loads(JsonFormatter().format(_record()))
    assert json.loads(JsonFormatter().format(_record(job_id=7)))["job_id"] == 7

"""The operator commands in a second terminal beside `travis-logs dev`, with nothing exported.

`dev` makes up the S3 endpoint and credentials, Pusher keys and token of its stack; the
commands find them in its data directory. Run from the directory `dev` was started in (the
data directory is `.data` there), with none of the stack's settings in the environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.workers.test_dev import READY, _wait_for
from travis_logs.settings import Settings

# A hang guard: the stack, a simulated job's whole life and seven command processes.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def stack_env(database_url: str, amqp_url: str) -> dict[str, str]:
    """What the person who runs `dev` exported: where PostgreSQL and RabbitMQ are, free ports."""
    return {
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": amqp_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DEV_TEMPORAL_UI_PORT": str(free_port()),
        "DEV_S3_PORT": str(free_port()),
        "DEV_PUSHER_PORT": str(free_port()),
        "PORT": str(free_port()),
        "LOGS_QUIET_PERIOD_S": "1",
        "LOGS_GRACE_PERIOD_S": "0",
    }


def _bare_environment() -> dict[str, str]:
    """The environment of a fresh terminal: none of the project's settings, no AWS keys."""
    settings = {name.upper() for name in Settings.model_fields}
    return {
        k: v
        for k, v in os.environ.items()
        if k not in settings and not k.startswith(("AWS_", "TEMPORAL_"))
    }


@pytest.fixture
def dev(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "dev"],
        env={**_bare_environment(), **stack_env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _second_terminal(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=_bare_environment(),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, stream
        assert "Found credentials" not in stream, stream
    return result


def _status(cwd: Path, job_id: int) -> dict[str, object]:
    result = _second_terminal(cwd, "status", str(job_id), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def test_operator_commands_work_beside_dev_with_nothing_exported(
    dev: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """status, rearchive, force-aggregate, reconcile and redact; then one line once it stopped."""
    output, _ = _wait_for(dev, re.escape(READY), 120)
    output, match = _wait_for(dev, rb"\[simulate\] job (\d+): viewer", 60, output)
    job_id = int(match.group(1))

    deadline = time.monotonic() + 90
    while (doc := _status(tmp_path, job_id))["summary"] is None or not str(
        doc["summary"]
    ).startswith("done:"):
        assert time.monotonic() < deadline, doc
        time.sleep(1)
    assert "set()" not in json.dumps(doc)
    state = doc["state"]
    assert isinstance(state, dict)
    assert all(not isinstance(v, str) or v != "set()" for v in state.values())

    shown = _second_terminal(tmp_path, "status", str(job_id))
    assert shown.returncode == 0 and f"job {job_id}: done:" in shown.stdout, shown.stdout

    for command in ("rearchive", "force-aggregate"):
        result = _second_terminal(tmp_path, command, str(job_id), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        [outcome] = json.loads(result.stdout)["results"]
        assert outcome["job_id"] == job_id and outcome["ok"], outcome

    reconciled = _second_terminal(tmp_path, "reconcile", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert "outcomes" in json.loads(reconciled.stdout)

    redacted = _second_terminal(
        tmp_path, "redact", str(job_id), "--reason", "a leaked key", "--range", "0:1"
    )
    assert redacted.returncode == 0, redacted.stdout + redacted.stderr
    assert json.loads(redacted.stdout)["job_id"] == job_id

    dev.send_signal(signal.SIGINT)
    assert dev.wait(timeout=30) == 0
    # The stack is gone: one line naming the first setting whose service does not answer.
    gone = _second_terminal(tmp_path, "status", str(job_id))
    assert gone.returncode == 2, gone.stdout + gone.stderr
    [line] = [x for x in gone.stderr.splitlines() if x.startswith("travis-logs:")]
    assert "TEMPORAL_ADDRESS" in line, gone.stderr

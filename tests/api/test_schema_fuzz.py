"""Property test: requests generated from the OpenAPI schema never get a 500, sent with
travis-api's token, with a wrong one, and with no credentials at all."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api.conftest import TOKEN

# Few examples per operation and mode: the point is breadth across every route, not depth.
# Without the right token most operations stop at the credential check: fewer suffice.
EXAMPLES = {"token": 6, "other": 3}
CREDENTIALS = {
    "token": {"Authorization": f"token {TOKEN}"},
    "wrong token": {"Authorization": "token wrong"},
    "worker signature": {"Authorization": "token sig:" + "0" * 40},
    "none": {},
}


def fuzz(api_url: str, headers: dict[str, str], examples: int) -> int:
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
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case) -> None:
                case.call_and_validate(
                    base_url=api_url,
                    headers=headers,
                    checks=[not_a_server_error, response_schema_conformance],
                    timeout=30,
                )

            try:
                no_server_error()
            except Unsatisfiable:
                # An operation without inputs has no malformed variant to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return len(operations)


@pytest.mark.parametrize("credentials", CREDENTIALS)
async def test_generated_requests_never_get_a_500(api_url: str, credentials: str) -> None:
    """Valid and malformed requests for every documented operation answer below 500."""
    # Requests are blocking; the API and its worker keep running in this event loop.
    examples = EXAMPLES.get(credentials, EXAMPLES["other"])
    operations = await asyncio.to_thread(fuzz, api_url, CREDENTIALS[credentials], examples)
    assert operations >= 10

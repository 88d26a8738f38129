"""The Temporal client of a process, built from settings in its entry point."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from travis_logs.settings import Settings

# One cache of pydantic type adapters for the process: the SDK builds a payload converter
# for every workflow run, and each would otherwise build its adapters again.
_PYDANTIC_JSON = PydanticJSONPlainPayloadConverter()


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default payload converters with JSON through pydantic.

    The same JSON as the SDK's own converter (which other clients may use), but decoding a
    dataclass (a signal, an activity's input or result, the workflow's state) takes tens
    of microseconds instead of milliseconds: the default resolves every field's type
    afresh each time, pydantic once per type.
    """

    def __init__(self) -> None:
        super().__init__(
            *(
                _PYDANTIC_JSON if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# Every client (and so every worker) of this project converts payloads with it.
DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def metrics_runtime(port: int, host: str) -> Runtime:
    """A runtime whose SDK metrics (and workflow.metric_meter()) Prometheus scrapes on `port`."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{host}:{port}", durations_as_seconds=True)
        )
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        runtime=runtime,
        data_converter=DATA_CONVERTER,
    )

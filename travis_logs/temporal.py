"""The Temporal client of a process, built from settings in its entry point.

Where and how to connect comes from the SDK's environment configuration
(`temporalio.envconfig`), as every Temporal tool reads it: a TOML profile
(`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`) overridden by `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`, `TEMPORAL_TLS_CLIENT_CERT_PATH`,
`TEMPORAL_TLS_CLIENT_KEY_PATH`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`
and the rest. An address or namespace given to Settings explicitly (its environment
variable, `.env`, or a copy made in code) wins over the profile's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from travis_logs.errors import ConfigError
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


def connect_config(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> ClientConnectConfig:
    """Client.connect's arguments: the envconfig profile, completed by Settings."""
    try:
        profile = ClientConfigProfile.load(
            override_env_vars=dict(os.environ if environ is None else environ)
        )
        config = profile.to_client_connect_config()
    except (RuntimeError, OSError, ValueError) as err:
        raise ConfigError(f"TEMPORAL_CONFIG_FILE/TEMPORAL_TLS_*: {str(err)[:300]}") from None
    explicit = settings.model_fields_set
    if "temporal_address" in explicit or "target_host" not in config:
        config["target_host"] = settings.temporal_address
    if "temporal_namespace" in explicit or "namespace" not in config:
        config["namespace"] = settings.temporal_namespace
    return config


def target(settings: Settings) -> tuple[str, int]:
    """The host and port the client connects to (for a reachability check)."""
    host, _, port = connect_config(settings)["target_host"].rpartition(":")
    return host.strip("[]"), int(port)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured server and namespace; ConfigError naming what failed."""
    config = connect_config(settings)
    options: dict[str, Any] = dict(config)
    try:
        return await Client.connect(**options, runtime=runtime, data_converter=DATA_CONVERTER)
    except RuntimeError as err:
        # The SDK says "Failed client connect: ..." with the transport's reason.
        raise ConfigError(
            f"TEMPORAL_ADDRESS: cannot connect to {config['target_host']}"
            f" (namespace {config['namespace']}): {str(err)[:300]}"
        ) from None

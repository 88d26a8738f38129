"""The one settings class (DESIGN §4); built in entry points and passed down."""

from __future__ import annotations

from pydantic import AmqpDsn, Field, PostgresDsn, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of every process, read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: PostgresDsn = PostgresDsn("postgresql://postgres@127.0.0.1:5432/travis_logs")
    rabbitmq_url: AmqpDsn = AmqpDsn("amqp://guest:guest@127.0.0.1:5672/")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "travis-logs"

    s3_endpoint_url: str | None = None
    s3_bucket: str = "travis-logs"
    aws_region: str = "us-east-1"

    pusher_app_id: str | None = None
    pusher_key: str | None = None
    pusher_secret: SecretStr | None = None
    pusher_host: str | None = None
    pusher_port: int | None = Field(default=None, ge=1, le=65535)
    pusher_ssl: bool | None = None
    pusher_cluster: str | None = None
    pusher_private_channels: bool = False
    pusher_existence_check: bool = False

    auth_token: SecretStr | None = None
    jwt_rsa_public_key: str | None = None
    port: int = Field(default=5555, ge=1, le=65535)

    logs_quiet_period_s: float = Field(default=10, ge=0)
    logs_force_after_s: float = Field(default=10800, gt=0)
    logs_purge_delay_s: float = Field(default=0, ge=0)

    # AMQP names are settings so that tests and sharded setups can use their own.
    amqp_exchange: str = "reporting"
    amqp_queue: str = "reporting.jobs.logs"
    amqp_routing_key: str = "reporting.jobs.logs"
    amqp_prefetch: int = Field(default=2000, ge=1)
    ingest_batch_size: int = Field(default=500, ge=1)
    ingest_batch_ms: int = Field(default=50, ge=1)
    # travis-worker cuts parts at 1,653 bytes; anything far larger is not a log part.
    max_part_bytes: int = Field(default=1 << 20, ge=1)

    # Ports of the embedded one-machine stack (`travis-logs dev`).
    dev_temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    dev_s3_port: int = Field(default=9000, ge=1, le=65535)
    dev_pusher_port: int = Field(default=6001, ge=1, le=65535)
    dev_data_dir: str = ".data"
    dev_simulate: bool = True

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        host, _, port = self.temporal_address.rpartition(":")
        return host, int(port)

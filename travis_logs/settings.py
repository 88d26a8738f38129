"""The one settings class (DESIGN §4); built in entry points and passed down."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AmqpDsn,
    Field,
    PostgresDsn,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from travis_logs.log_limit import (
    DEFAULT_HEAD_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TAIL_BYTES,
    Limits,
)

# AUTH_TOKEN and VIEWER_SECRET: anything shorter could be found by guessing, offline for
# VIEWER_SECRET (every public viewer page hands out a grant signed with it).
MIN_SECRET_CHARS = 32
# LOGS_MAX_BYTES at most: a quarter of PostgreSQL's 1 GB per value.
MAX_LOG_BYTES_CAP = 256 << 20


def _same_secret(one: SecretStr, other: SecretStr) -> bool:
    mine = one.get_secret_value().strip()
    return bool(mine) and mine == other.get_secret_value().strip()


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
    # Worker Versioning: log runs are PINNED to the build that started them. Give every
    # release its own build id; the first build of a deployment becomes its current version
    # by itself, later ones with `temporal worker deployment set-current-version`.
    temporal_deployment_name: str = "travis-logs"
    temporal_build_id: str = Field(default="dev", min_length=1)

    s3_endpoint_url: str | None = None
    s3_bucket: str = "travis-logs"
    aws_region: str = "us-east-1"
    # One S3 request (head, put, get, reading a body) is abandoned, with its connection, when
    # it has not finished after S3_REQUEST_TIMEOUT_S plus its body at S3_MIN_BYTES_PER_S, so
    # a connection S3 stops answering fails the attempt (and it retries on a fresh one)
    # instead of hanging it. It must stay below LOGS_HEARTBEAT_TIMEOUT_S (a request nobody
    # answers then fails with its own error, which the Temporal UI shows, first).
    s3_request_timeout_s: float = Field(default=10, gt=0)
    s3_min_bytes_per_s: int = Field(default=1 << 20, ge=1)
    # A log larger than this goes to S3 as a multipart upload of parts this size (one PUT
    # otherwise); the upload holds one part in memory at a time. S3's minimum is 5 MiB.
    s3_part_bytes: int = Field(default=8 << 20, ge=5 << 20, le=5 << 30)

    pusher_app_id: str | None = None
    pusher_key: str | None = None
    pusher_secret: SecretStr | None = None
    pusher_host: str | None = None
    pusher_port: int | None = Field(default=None, ge=1, le=65535)
    pusher_ssl: bool | None = None
    pusher_cluster: str | None = None
    # Where browsers reach the Pusher server, when not by PUSHER_HOST/PORT/SSL.
    pusher_client_host: str | None = None
    pusher_client_port: int | None = Field(default=None, ge=1, le=65535)
    pusher_client_ssl: bool | None = None
    pusher_private_channels: bool = False
    pusher_existence_check: bool = False
    # Publisher: parallel senders (one HTTP connection each), the events it may hold while
    # Pusher is slow or down (beyond that, parts are dropped for live view only), and how
    # long one request may take.
    pusher_concurrency: int = Field(default=8, ge=1, le=64)
    pusher_queue_size: int = Field(default=10_000, ge=10)
    pusher_timeout_s: float = Field(default=2.0, gt=0)
    # How long a sender waits, from the oldest queued part, for a batch of 10 events to
    # fill: trickling parts of many channels share a call instead of paying one each.
    pusher_linger_ms: int = Field(default=10, ge=0, le=1000)
    # How long ingest trusts a channel's stored occupancy before reading it again.
    pusher_occupancy_ttl_s: float = Field(default=1.0, ge=0)
    # Where the local Pusher-protocol server POSTs channel_occupied/vacated webhooks
    # (the API's POST /pusher/existence); unset: it sends none.
    pusher_webhook_url: str | None = None

    # travis-api's token; blank is the same as unset (token routes then answer 500).
    auth_token: SecretStr | None = None
    jwt_rsa_public_key: str | None = None
    port: int = Field(default=5555, ge=1, le=65535)
    # The API refuses larger request bodies with 413.
    api_max_body_bytes: int = Field(default=8 << 20, ge=1)

    logs_quiet_period_s: float = Field(default=10, ge=0)
    # A log without its final part is aggregated once its newest part is this old: the
    # sweeper (SWEEPER_INTERVAL_S) looks for such logs, no timer waits in every run.
    logs_force_after_s: float = Field(default=10800, gt=0)
    logs_purge_delay_s: float = Field(default=0, ge=0)
    # After purge a run may stay open this long, so a late part is merged without a new run.
    # 0: it closes at once (a late part starts a new run, which reads the row first), which
    # saves every log a timer and a workflow task.
    logs_grace_period_s: float = Field(default=0, ge=0)
    # An incomplete log's run (part numbers missing) stays open this long instead, so the
    # missing part, when it comes, clears the `LogIncomplete` flag of the same run.
    logs_incomplete_grace_s: float = Field(default=10800, ge=0)
    # A verify mismatch archives again after this backoff (doubling each time), up to
    # LOGS_MAX_ARCHIVE_ATTEMPTS archives; then the log stays unpurged as verify_failed.
    logs_rearchive_backoff_s: float = Field(default=1, gt=0)
    logs_max_archive_attempts: int = Field(default=5, ge=1)
    # The size limit (README "Big logs"): a log past LOGS_MAX_BYTES keeps its first
    # LOGS_HEAD_BYTES and its last LOGS_TAIL_BYTES (by part) and a marker line between. The
    # cap keeps a log, marker and masking included, well under PostgreSQL's 1 GB per value.
    logs_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, le=MAX_LOG_BYTES_CAP)
    logs_head_bytes: int = Field(default=DEFAULT_HEAD_BYTES, ge=0)
    logs_tail_bytes: int = Field(default=DEFAULT_TAIL_BYTES, ge=0)
    # S3 transfers heartbeat; a worker that dies mid-transfer is noticed after this long.
    logs_heartbeat_timeout_s: float = Field(default=30, gt=0)
    # Continue-as-new after this many signals in one run (Temporal refuses the 10,001st).
    logs_max_signals_per_run: int = Field(default=2000, ge=1, le=9000)
    # The Temporal worker (`travis-logs worker`): open log workflows kept cached. An evicted
    # one replays its history (short: 2-3 signals) on its next task; the cap bounds memory
    # (about 82 KiB a cached log, bench/memory.py), so 10,000 open logs fit in 500 MB.
    worker_max_cached_workflows: int = Field(default=3000, ge=0)
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    worker_db_pool_size: int = Field(default=10, ge=1)
    # On SIGTERM/SIGINT running activities get this long to finish before they are cancelled.
    worker_shutdown_grace_s: float = Field(default=20, ge=0)
    # A workflow cached by a worker that died moves to another worker after this long.
    worker_sticky_timeout_s: float = Field(default=10, gt=0)
    # Workflow task polls open at once: WORKER_WORKFLOW_TASK_POLLERS in all, the share
    # WORKER_NONSTICKY_POLL_RATIO of them on the shared queue (new runs, evicted ones), the
    # rest on the worker's own sticky queue; with WORKER_POLLER_AUTOSCALING the SDK scales
    # them between 1 and that number from the server's feedback.
    # Defaults: 2 polls on the shared queue instead of the SDK's 1 (README "Latency budget").
    worker_workflow_task_pollers: int = Field(default=8, ge=2)
    worker_nonsticky_poll_ratio: float = Field(default=0.25, gt=0, le=1)
    worker_poller_autoscaling: bool = False
    # Capacity (README "Sizing"): how sandboxed workflows run (LogWorkflow itself is declared
    # unsandboxed; the sweeper is not). "sandboxed" re-imports the workflow
    # module into a fresh sandbox per run (worker memory per open log, see bench/memory.py);
    # "passthrough" shares the already imported workflow modules with every run (they are
    # deterministic by contract: an import-linter rule keeps I/O out of them); "unsandboxed"
    # runs them without the sandbox's per-run module state, and without its checks.
    worker_workflow_runner: Literal["sandboxed", "passthrough", "unsandboxed"] = "passthrough"

    # AMQP names are settings so that tests and sharded setups can use their own.
    amqp_exchange: str = "reporting"
    amqp_queue: str = "reporting.jobs.logs"
    amqp_routing_key: str = "reporting.jobs.logs"
    amqp_prefetch: int = Field(default=2000, ge=1)
    ingest_batch_size: int = Field(default=500, ge=1)
    # A batch waits up to this long for more parts from its first: each batch is a
    # transaction of 4-6 round trips, and live pushes do not wait for it (README "Sizing").
    ingest_batch_ms: int = Field(default=200, ge=1)
    # travis-worker cuts parts at 1,653 bytes; anything far larger is not a log part.
    max_part_bytes: int = Field(default=1 << 20, ge=1)
    # Signals to log workflows: RPCs in flight, the timeout of one, and the attempts after
    # which a signal Temporal refuses for a lasting reason is left in the outbox.
    ingest_signal_concurrency: int = Field(default=64, ge=1)
    ingest_signal_timeout_s: float = Field(default=10, gt=0)
    ingest_signal_attempts: int = Field(default=5, ge=1)
    # Signals of committed batches still on their way to Temporal, at most: the AMQP path
    # stores and acks the next batches meanwhile (the outbox holds them), and waits only
    # past this many (Temporal slow or down).
    ingest_signals_in_flight: int = Field(default=5000, ge=1)
    # Outbox rows older than this are taken to be orphans of a dead process and resent;
    # each ingest also sweeps at this interval.
    ingest_outbox_stale_s: float = Field(default=30, gt=0)
    # Attempts at storing a part that fails alone for an unexpected reason before it is
    # dead-lettered (database outages are waited out, not counted).
    ingest_store_attempts: int = Field(default=5, ge=1)
    # After a small read (no backlog), the ingest leaves the AMQP socket unread this long,
    # so that parts trickling in come several to a read (ingest/paced_reads.py): a quarter
    # less CPU per part at light load, for up to this much more live latency; a backlog is
    # read at full speed. 0: every read at once (README "Sizing").
    ingest_read_tick_ms: int = Field(default=50, ge=0, le=1000)
    # Deliveries handed to the ingest in aiormq's frame reader instead of a task each
    # (ingest/subscription.py); off: aiormq's public consuming path, for comparison.
    ingest_direct_delivery: bool = True
    # Port of the ingest's prometheus /metrics; unset: not served.
    ingest_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Where the /metrics endpoints of ingest and worker listen: loopback unless an address
    # is given (0.0.0.0 in a container, for a Prometheus elsewhere).
    metrics_host: str = "127.0.0.1"

    # Operations (reconcile, the sweeper Schedule, operator commands, metrics, log format).
    # Reconciliation reads candidate logs in pages of this many rows and starts at most this
    # many workflows a second (0: no limit).
    reconcile_page_size: int = Field(default=500, ge=1, le=10_000)
    reconcile_rate_per_s: float = Field(default=50, ge=0)
    # `travis-logs worker` keeps the sweeper Schedule (id below) running at this interval;
    # one run looks at no more than SWEEPER_MAX_LOGS_PER_RUN candidate logs.
    sweeper_enabled: bool = True
    sweeper_schedule_id: str = "travis-logs-sweeper"
    sweeper_interval_s: float = Field(default=300, ge=1)
    sweeper_max_logs_per_run: int = Field(default=5000, ge=1)
    # rearchive / force-aggregate over a visibility query: updates in flight and per second.
    operator_concurrency: int = Field(default=8, ge=1, le=256)
    operator_rate_per_s: float = Field(default=20, ge=0)
    # The worker's prometheus-client /metrics, and the Temporal SDK's own Prometheus endpoint
    # (workflow, activity and lifecycle metrics); unset: not served.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    temporal_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # `json`: one JSON object a line (with job_id and workflow_id where they apply).
    log_format: Literal["text", "json"] = "text"

    # How the API trusts callers and keeps what it must not show.
    # travis-worker's JWTs must carry `exp`; `aud` and `iss` are checked only when set here.
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_s: float = Field(default=30, ge=0)
    # Signs viewer grants and cookies, and nothing else: the viewer page answers 500 while it
    # is unset. Rotating it revokes every grant and cookie at once. Grants outlive the 3 h
    # force timeout of a job.
    viewer_secret: SecretStr | None = None
    viewer_grant_ttl_s: int = Field(default=4 * 3600, ge=1)
    viewer_session_ttl_s: int = Field(default=8 * 3600, ge=1)
    # The viewer cookie is Secure; false only where the viewer is served over plain http.
    viewer_cookie_secure: bool = True
    # A finished log larger than this opens by range: the page fetches the index and the
    # blocks on screen (its end first) instead of carrying the whole text.
    viewer_inline_bytes: int = Field(default=2 * 2**20, ge=0)
    # /healthz keeps one broker connection and tries again at most this often when it is down.
    health_broker_retry_s: float = Field(default=10, ge=0)
    # Dead-lettered messages expire after this long, so the dead-letter queue cannot grow
    # without bound while nobody reads it.
    ingest_dead_letter_ttl_s: int = Field(default=7 * 86400, ge=1)

    # Ports of the embedded one-machine stack (`travis-logs dev`).
    dev_temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    dev_s3_port: int = Field(default=9000, ge=1, le=65535)
    dev_pusher_port: int = Field(default=6001, ge=1, le=65535)
    dev_data_dir: str = ".data"
    # Partitions of each task queue of the embedded Temporal server (the server's default is
    # 4): one process has one matching host, so more only split the worker's few polls.
    dev_temporal_partitions: int = Field(default=1, ge=1, le=64)
    dev_simulate: bool = True

    @field_validator("pusher_app_id")
    @classmethod
    def _app_id_is_digits(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            # The pusher package's own message ("Invalid app id") names neither cause nor fix.
            raise ValueError(
                "must be digits only, as Pusher's app ids are (see the Pusher dashboard)"
            )
        return value

    @field_validator("auth_token", "viewer_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        length = len(value.get_secret_value().strip()) if value is not None else 0
        if 0 < length < MIN_SECRET_CHARS:
            raise ValueError(
                f"must be at least {MIN_SECRET_CHARS} characters, e.g. the output of "
                "`openssl rand -base64 32`"
            )
        return value

    @field_validator("viewer_secret")
    @classmethod
    def _viewer_secret_is_its_own(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        token = info.data.get("auth_token")
        if value is not None and token is not None and _same_secret(value, token):
            # Every visitor holds a grant signed with it: it must not open travis-api's routes.
            raise ValueError("must differ from AUTH_TOKEN")
        return value

    @model_validator(mode="after")
    def _requests_end_before_heartbeats(self) -> Settings:
        # An S3 request nobody answers must fail with its own error (the connection error an
        # operator should read) before the activity's heartbeat timeout hides it.
        if self.s3_request_timeout_s >= self.logs_heartbeat_timeout_s:
            raise ValueError(
                f"S3_REQUEST_TIMEOUT_S ({self.s3_request_timeout_s:g}) must be below "
                f"LOGS_HEARTBEAT_TIMEOUT_S ({self.logs_heartbeat_timeout_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _head_and_tail_fit(self) -> Settings:
        # Past the limit the log is head + tail: more than the limit would not bound it.
        if self.logs_head_bytes + self.logs_tail_bytes > self.logs_max_bytes:
            raise ValueError(
                f"LOGS_HEAD_BYTES ({self.logs_head_bytes}) + LOGS_TAIL_BYTES "
                f"({self.logs_tail_bytes}) must not exceed LOGS_MAX_BYTES ({self.logs_max_bytes})"
            )
        return self

    @property
    def log_limits(self) -> Limits:
        return Limits(self.logs_max_bytes, self.logs_head_bytes, self.logs_tail_bytes)

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        host, _, port = self.temporal_address.rpartition(":")
        return host, int(port)

"""A service's failure as one line naming its setting, for errors that get past the checks.

Commands check their services at start (workers/preflight.py); a service can still go away
while a command runs. Only libraries the command already imported are looked at, so that
loading this module costs a command nothing.
"""

from __future__ import annotations

import sys

_CHARS = 300


def _cut(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) <= _CHARS else f"{text[:_CHARS]}... ({len(text)} characters)"


def _s3(err: BaseException) -> str | None:
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return None
    if isinstance(err, botocore.NoCredentialsError):
        return (
            "AWS_ACCESS_KEY_ID: no S3 credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (beside `travis-logs dev`, run the command from the "
            "directory that holds its DEV_DATA_DIR)"
        )
    connection = (
        botocore.EndpointConnectionError,
        botocore.ConnectTimeoutError,
        botocore.ReadTimeoutError,
    )
    if isinstance(err, connection):
        return f"S3_ENDPOINT_URL: S3 does not answer ({_cut(err)})"
    if isinstance(err, botocore.ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
            return f"AWS_ACCESS_KEY_ID: S3 refused the credentials ({_cut(err)})"
    return None


def _temporal(err: BaseException) -> str | None:
    service = sys.modules.get("temporalio.service")
    if service is None or not isinstance(err, service.RPCError):
        return None
    if err.status in {service.RPCStatusCode.UNAVAILABLE, service.RPCStatusCode.DEADLINE_EXCEEDED}:
        return f"TEMPORAL_ADDRESS: Temporal does not answer ({_cut(err)})"
    if err.status in {
        service.RPCStatusCode.UNAUTHENTICATED,
        service.RPCStatusCode.PERMISSION_DENIED,
    }:
        return f"TEMPORAL_API_KEY/TEMPORAL_TLS_*: Temporal refused this client ({_cut(err)})"
    if err.status == service.RPCStatusCode.NOT_FOUND and "namespace" in err.message.lower():
        return f"TEMPORAL_NAMESPACE: {_cut(err)}"
    return None


def _postgres(err: BaseException) -> str | None:
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is None:
        return None
    lost = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)
    if isinstance(err, lost):
        return f"DATABASE_URL: PostgreSQL does not answer ({_cut(err)})"
    return None


def _rabbitmq(err: BaseException) -> str | None:
    aiormq = sys.modules.get("aiormq.exceptions")
    if aiormq is not None and isinstance(err, aiormq.AMQPConnectionError):
        return f"RABBITMQ_URL: RabbitMQ does not answer ({_cut(err)})"
    return None


def describe(err: BaseException) -> str | None:
    """One line naming the setting of the failed service; None for any other error."""
    for judge in (_s3, _temporal, _postgres, _rabbitmq):
        if (line := judge(err)) is not None:
            return line
    return None

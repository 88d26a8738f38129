"""What `travis-logs dev` gives its processes, kept where the operator commands find it.

The embedded stack's S3 endpoint and credentials, Pusher keys, API token and addresses are
made up by `dev` and handed to its children only; an operator command in a second terminal
(`travis-logs status JOB`) would not know them. So `dev` writes them to `DEV_DATA_DIR/dev.env`
(mode 0600, beside dev-credentials.json), and the operator commands read that file below
`.env` and the environment: whatever is exported still wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

FILE_NAME = "dev.env"
# The settings of the stack's processes an operator command needs (and boto's credentials,
# which boto reads from the environment, not from Settings).
KEYS = (
    "DATABASE_URL",
    "RABBITMQ_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_TASK_QUEUE",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AUTH_TOKEN",
    "PORT",
    "PUSHER_APP_ID",
    "PUSHER_KEY",
    "PUSHER_SECRET",
    "PUSHER_HOST",
    "PUSHER_PORT",
    "PUSHER_SSL",
)
_BOTO_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(data_dir: Path, env: Mapping[str, str]) -> Path:
    """Write the stack's settings (those of KEYS that `env` has); readable by the owner only."""
    path = data_dir / FILE_NAME
    lines = [
        "# Written by `travis-logs dev` for the operator commands; exported variables win.",
        *(f"{key}={_quoted(env[key])}" for key in KEYS if key in env),
    ]
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    temporary.replace(path)  # a command never reads half a file
    return path


def stack_file(data_dir: str) -> Path | None:
    path = Path(data_dir) / FILE_NAME
    return path if path.is_file() else None


def export_boto_credentials(path: Path) -> None:
    """Hand the stack's S3 credentials to boto, unless the environment has its own."""
    values = dotenv_values(path)
    if any(key in os.environ for key in _BOTO_KEYS):
        return
    for key in _BOTO_KEYS:
        value = values.get(key)
        if value is not None:
            os.environ[key] = value

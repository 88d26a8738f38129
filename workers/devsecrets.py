"""Credentials of the embedded stack: made once per data directory, never fixed in code.

A fixed token would open every developer's API to anyone who can reach the port, so the
token and the local Pusher server's key and secret are random, kept in the data directory
(mode 0600) so that they stay the same across restarts, and printed at start.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from travis_logs.settings import Settings

FILE_NAME = "dev-credentials.json"


@dataclass(frozen=True)
class DevCredentials:
    auth_token: str
    pusher_app_id: str  # the pusher package accepts only digits
    pusher_key: str
    pusher_secret: str


def load_or_create(data_dir: Path) -> DevCredentials:
    path = data_dir / FILE_NAME
    if path.exists():
        return DevCredentials(**json.loads(path.read_text(encoding="utf-8")))
    made = DevCredentials(
        auth_token=secrets.token_urlsafe(24),
        pusher_app_id=str(secrets.randbelow(900_000) + 100_000),
        pusher_key=secrets.token_hex(10),
        pusher_secret=secrets.token_hex(20),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(made), handle)
    return made


def auth_token(settings: Settings, made: DevCredentials) -> str:
    """AUTH_TOKEN from the environment or `.env` when set; else the data directory's own."""
    return settings.auth_token.get_secret_value() if settings.auth_token else made.auth_token

"""Credentials of the embedded stack: made once per data directory, never fixed in code.

A fixed token would open every developer's API to anyone who can reach the port, so the
token, the viewer's signing secret and the local Pusher server's key and secret are random,
kept in the data directory (mode 0600) so that they stay the same across restarts; the token
is printed at start. A file from before the viewer secret existed gets one added.
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
    viewer_secret: str


def _new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, above MIN_SECRET_CHARS


def load_or_create(data_dir: Path) -> DevCredentials:
    path = data_dir / FILE_NAME
    if path.exists():
        kept = json.loads(path.read_text(encoding="utf-8"))
        if "viewer_secret" in kept:
            return DevCredentials(**kept)
        made = DevCredentials(**kept, viewer_secret=_new_secret())
    else:
        made = DevCredentials(
            auth_token=_new_secret(),
            pusher_app_id=str(secrets.randbelow(900_000) + 100_000),
            pusher_key=secrets.token_hex(10),
            pusher_secret=secrets.token_hex(20),
            viewer_secret=_new_secret(),
        )
    _write(path, made)
    return made


def _write(path: Path, made: DevCredentials) -> None:
    """Whole or not at all: written beside the file, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(made), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def auth_token(settings: Settings, made: DevCredentials) -> str:
    """AUTH_TOKEN from the environment or `.env` when set; else the data directory's own."""
    return settings.auth_token.get_secret_value() if settings.auth_token else made.auth_token


def viewer_secret(settings: Settings, made: DevCredentials) -> str:
    """VIEWER_SECRET from the environment or `.env` when set; else the data directory's own."""
    given = settings.viewer_secret
    return given.get_secret_value() if given else made.viewer_secret

"""The embedded stack's credentials: random, kept, long enough, and never one for another."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from travis_logs.settings import MIN_SECRET_CHARS, Settings
from workers.dev import child_env
from workers.devsecrets import FILE_NAME, load_or_create


def test_made_credentials_pass_the_settings_checks_and_are_kept(tmp_path: Path) -> None:
    made = load_or_create(tmp_path)
    assert len(made.auth_token) >= MIN_SECRET_CHARS
    assert len(made.viewer_secret) >= MIN_SECRET_CHARS
    assert made.viewer_secret != made.auth_token
    Settings(_env_file=None, auth_token=made.auth_token, viewer_secret=made.viewer_secret)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(tmp_path) == made
    assert load_or_create(tmp_path / "other") != made


def test_a_file_without_viewer_secret_gets_one_and_keeps_the_rest(tmp_path: Path) -> None:
    """A data directory from before VIEWER_SECRET was required keeps its token and key."""
    older = {
        "auth_token": "o" * MIN_SECRET_CHARS,
        "pusher_app_id": "123456",
        "pusher_key": "k",
        "pusher_secret": "s",
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(older))
    made = load_or_create(tmp_path)
    assert {k: getattr(made, k) for k in older} == older
    assert len(made.viewer_secret) >= MIN_SECRET_CHARS
    assert json.loads((tmp_path / FILE_NAME).read_text())["viewer_secret"] == made.viewer_secret
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600
    assert load_or_create(tmp_path) == made


def test_dev_processes_get_the_kept_viewer_secret_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = load_or_create(tmp_path)
    for name in ("AUTH_TOKEN", "VIEWER_SECRET"):
        monkeypatch.delenv(name, raising=False)
    env = child_env(Settings(_env_file=None), made)
    assert (env["AUTH_TOKEN"], env["VIEWER_SECRET"]) == (made.auth_token, made.viewer_secret)
    given = "g" * MIN_SECRET_CHARS
    monkeypatch.setenv("VIEWER_SECRET", given)
    assert child_env(Settings(_env_file=None), made)["VIEWER_SECRET"] == given

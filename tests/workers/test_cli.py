"""`travis-logs` refuses a bad configuration with one line per setting and no password."""

from __future__ import annotations

import pytest

from workers.cli import main


def test_bad_settings_are_named_without_their_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed DSNs with passwords and a bad secret are reported; no password is printed."""
    monkeypatch.setenv("DATABASE_URL", "mysql://logs:hunter2@db:5432/travis_logs")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:p@ss@mq:notaport/")
    monkeypatch.setenv("PUSHER_PORT", "many")
    monkeypatch.setenv("JWT_LEEWAY_S", "-1")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err and "RABBITMQ_URL" in err and "PUSHER_PORT" in err
    assert "'many'" in err  # values that are no credential are still shown
    for secret in ("hunter2", "p@ss", ":ss@"):
        assert secret not in err

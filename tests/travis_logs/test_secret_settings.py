"""AUTH_TOKEN and VIEWER_SECRET: long enough to withstand guessing, and never the same."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from travis_logs.settings import MIN_SECRET_CHARS, Settings
from workers.cli import main

SHORT = "s" * (MIN_SECRET_CHARS - 1)
TOKEN = "t" * MIN_SECRET_CHARS
VIEWER = "v" * MIN_SECRET_CHARS


def _settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["auth_token", "viewer_secret"])
def test_a_short_secret_is_refused_with_one_sentence(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(**{name: SHORT})
    (error,) = refused.value.errors()
    assert error["loc"] == (name,)
    assert f"at least {MIN_SECRET_CHARS} characters" in error["msg"]


def test_surrounding_spaces_do_not_count() -> None:
    """The API strips the token before comparing, so padding adds no strength."""
    with pytest.raises(ValidationError):
        _settings(auth_token=f"  {SHORT}  ")


def test_secrets_of_the_minimum_length_and_blank_ones_are_accepted() -> None:
    """Blank is unset: token routes answer 500 and the viewer issues no grant."""
    long_enough = _settings(auth_token=TOKEN, viewer_secret=VIEWER)
    assert long_enough.auth_token == SecretStr(TOKEN)
    blank = _settings(auth_token="", viewer_secret=" ")
    assert blank.auth_token is not None and blank.viewer_secret is not None


def test_viewer_secret_must_differ_from_auth_token() -> None:
    """Every visitor holds a grant signed with VIEWER_SECRET; it must not be the token."""
    with pytest.raises(ValidationError) as refused:
        _settings(auth_token=TOKEN, viewer_secret=f" {TOKEN} ")
    (error,) = refused.value.errors()
    assert error["loc"] == ("viewer_secret",) and "AUTH_TOKEN" in error["msg"]


@pytest.mark.parametrize("command", ["api", "ingest", "worker", "migrate"])
def test_every_process_refuses_a_short_token_before_starting(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with one line naming AUTH_TOKEN, never its value; nothing is reached first
    (the unreachable database would otherwise be the complaint)."""
    monkeypatch.setenv("AUTH_TOKEN", SHORT)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main([command]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "AUTH_TOKEN" in err and f"at least {MIN_SECRET_CHARS} characters" in err
    assert SHORT not in err

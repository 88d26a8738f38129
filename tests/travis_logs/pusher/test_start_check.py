"""The Pusher check at start: refused credentials stop the process, a silent Pusher does not."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from tests.helpers import free_port
from tests.pusher_support import pusher_settings, serve, server_config
from travis_logs.errors import ConfigError
from travis_logs.localpusher.app import create_app
from travis_logs.pusher.check import check_pusher
from travis_logs.settings import Settings


async def test_refused_credentials_name_the_setting(defaults: Settings) -> None:
    """A wrong secret is one line naming PUSHER_SECRET; the right one passes."""
    async with serve(create_app(server_config())) as port:
        await check_pusher(pusher_settings(defaults, port))
        wrong = pusher_settings(defaults, port, pusher_secret=SecretStr("not-the-secret"))
        with pytest.raises(ConfigError, match="PUSHER_KEY/PUSHER_SECRET") as caught:
            await check_pusher(wrong)
        assert "not-the-secret" not in str(caught.value)


async def test_a_pusher_that_does_not_answer_is_a_warning(
    defaults: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Live view is best effort: the process starts, and says why pushes will fail."""
    with caplog.at_level(logging.WARNING):
        await check_pusher(pusher_settings(defaults, free_port()))
    assert any("PUSHER_HOST" in r.getMessage() for r in caplog.records), caplog.text

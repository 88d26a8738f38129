"""Where the viewer's pusher-js connects: the server's address, or the browsers' own."""

from __future__ import annotations

from typing import Any

from api.routes.viewer import pusher_options
from travis_logs.settings import Settings

SERVER_SIDE: dict[str, Any] = {"pusher_key": "key", "pusher_host": "soketi", "pusher_port": 6001}


def test_browsers_use_the_server_address_by_default() -> None:
    options = pusher_options(Settings(_env_file=None, pusher_ssl=False, **SERVER_SIDE), 7)
    assert (options["wsHost"], options["wsPort"], options["forceTLS"]) == ("soketi", 6001, False)
    assert options["channel"] == "job-7"


def test_client_settings_give_browsers_their_own_address() -> None:
    """In compose the API reaches `soketi`; a browser reaches the published port on localhost."""
    settings = Settings(
        _env_file=None,
        pusher_ssl=False,
        pusher_client_host="logs.example.org",
        pusher_client_port=443,
        pusher_client_ssl=True,
        **SERVER_SIDE,
    )
    options = pusher_options(settings, 2**63 - 1)
    assert (options["wsHost"], options["wsPort"], options["forceTLS"]) == (
        "logs.example.org",
        443,
        True,
    )
    assert options["channel"] == f"job-{2**63 - 1}"


def test_pusher_channels_without_a_host_use_tls() -> None:
    options = pusher_options(Settings(_env_file=None, pusher_key="key", pusher_cluster="eu"), 1)
    assert options["wsHost"] is None and options["forceTLS"] is True

"""A signed channel listing at start, so that Pusher credentials it refuses stop the process.

Wrong credentials would otherwise show only as every push failing while logs are stored and
archived as usual: nobody would see their live logs, and nothing would say why. A Pusher that
does not answer is no reason to refuse to start (live view is best effort; parts are stored
and archived without it), so that is a warning.
"""

from __future__ import annotations

import asyncio
import logging

import requests
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus, PusherForbidden

from travis_logs.errors import ConfigError
from travis_logs.pusher.transport import pusher_client
from travis_logs.settings import Settings

log = logging.getLogger(__name__)

# A prefix no channel has: the answer is an empty list, however busy the app.
_NO_CHANNEL = "travis-logs-start-check-"
_CHARS = 200


def _where(settings: Settings) -> str:
    if settings.pusher_host:
        return f"{settings.pusher_host}:{settings.pusher_port or ''}".rstrip(":")
    return f"Pusher Channels ({settings.pusher_cluster or 'mt1'})"


async def check_pusher(settings: Settings) -> None:
    """ConfigError naming the setting when Pusher refuses the app's credentials."""
    if not (settings.pusher_app_id and settings.pusher_key and settings.pusher_secret):
        return  # the publisher says which one is missing
    client = pusher_client(settings, backend=None)  # the package's requests backend
    where = _where(settings)
    try:
        await asyncio.to_thread(client.channels_info, _NO_CHANNEL)
    except (PusherBadAuth, PusherForbidden) as err:
        raise ConfigError(
            f"PUSHER_KEY/PUSHER_SECRET: {where} refused the credentials of app "
            f"{settings.pusher_app_id} ({str(err)[:_CHARS]})"
        ) from None
    except (PusherBadRequest, PusherBadStatus) as err:
        raise ConfigError(
            f"PUSHER_APP_ID: {where} refused app {settings.pusher_app_id} ({str(err)[:_CHARS]})"
        ) from None
    except (requests.RequestException, OSError) as err:
        log.warning(
            "PUSHER_HOST: %s does not answer (%s); logs are stored and archived, "
            "live view waits for it",
            where,
            str(err)[:_CHARS],
        )

"""`travis-logs pusher-server`: a local Pusher-protocol server, a development component.

It lets `travis-logs dev` and the tests stream logs to pusher-js without Pusher Channels:
the `pusher` package's HTTP events API, pusher-js's WebSocket protocol 7 and the
existence webhooks, for the one app named by PUSHER_APP_ID / PUSHER_KEY / PUSHER_SECRET.
Production uses Pusher Channels or soketi.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from travis_logs.errors import ConfigError
from travis_logs.localpusher.app import ServerConfig, create_app
from travis_logs.localpusher.signing import AppCredentials
from travis_logs.settings import Settings
from workers.signals import on_stop_signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, help="port (default DEV_PUSHER_PORT, 6001)")
    parser.add_argument(
        "--webhook-url", help="where to POST existence webhooks (default PUSHER_WEBHOOK_URL)"
    )
    parser.add_argument(
        "--client-queue",
        type=int,
        default=1000,
        help="frames a browser may lag behind before it is disconnected (default 1000)",
    )


def server_config(settings: Settings, args: argparse.Namespace) -> ServerConfig:
    secret = settings.pusher_secret.get_secret_value() if settings.pusher_secret else None
    if not (settings.pusher_app_id and settings.pusher_key and secret):
        raise ConfigError("PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET must all be set")
    return ServerConfig(
        app=AppCredentials(settings.pusher_app_id, settings.pusher_key, secret),
        webhook_url=args.webhook_url or settings.pusher_webhook_url,
        client_queue=args.client_queue,
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    config = uvicorn.Config(
        create_app(server_config(settings, args)),
        host=args.host,
        port=args.port or settings.dev_pusher_port,
        log_level="warning",
        # Browsers that vanish without a close frame are found by protocol pings.
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    asyncio.run(_Server(config).serve())
    return 0


class _Server(uvicorn.Server):
    """uvicorn, stopping gracefully on SIGTERM/SIGINT and then exiting 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version re-raises the signal after shutdown (exit status -15); a
        # supervisor that sent SIGTERM should see a clean exit instead.
        with on_stop_signal(lambda: self.handle_exit(signal.SIGTERM, None)):
            yield

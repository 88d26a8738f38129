"""`travis-logs api`: the HTTP API and the log viewer, served by uvicorn on PORT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from types import FrameType

import uvicorn

from api.app import create_app
from travis_logs.checks import check_postgres
from travis_logs.migrate import require_current
from travis_logs.pusher.check import check_pusher
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import check_namespace, check_temporal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on (default 0.0.0.0, as in a container)",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler it
    # found; this one turns that into a normal exit (and still stops a process not serving yet).
    signal.signal(signal.SIGTERM, _exit_normally)
    return asyncio.run(serve(settings, args.host))


def _exit_normally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


async def serve(settings: Settings, host: str) -> int:
    """Serve until SIGTERM or SIGINT (uvicorn finishes open requests, then the lifespan closes)."""
    await check_postgres(str(settings.database_url))  # a clear message instead of a traceback
    await require_current(str(settings.database_url))
    # PUT /logs and redactions start runs that set the search attributes.
    await check_temporal(settings)
    await check_namespace(await connect(settings))
    await check_pusher(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=settings.port,
        log_config=None,  # the CLI configured logging already
        lifespan="on",
        proxy_headers=True,
    )
    server = uvicorn.Server(config)
    await server.serve()
    return 0 if server.started else 1

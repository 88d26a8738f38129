"""`travis-logs migrate`: create the database if needed and apply pending migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging

from travis_logs.checks import check_postgres
from travis_logs.migrate import migrate
from travis_logs.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


async def run(settings: Settings) -> list[str]:
    dsn = str(settings.database_url)
    await check_postgres(dsn)
    return await migrate(dsn)


def main(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(run(settings))
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    return 0

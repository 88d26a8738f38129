"""The ingest's collaborators wired together, for the entry points that inject them."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio.client import Client

from ingest.intake import PartIntake, PartsPublisher
from ingest.outbox import SignalSender
from ingest.redacted import RedactedJobs
from travis_logs.settings import Settings


@dataclass(frozen=True, slots=True)
class Intake:
    """`PartIntake` and the collaborators an entry point also runs in the background."""

    pool: asyncpg.Pool
    signals: SignalSender  # its outbox sweep
    redacted: RedactedJobs  # its LISTEN for new redactions
    parts: PartIntake


def assemble(
    pool: asyncpg.Pool, temporal: Client, settings: Settings, publisher: PartsPublisher
) -> Intake:
    """A `PartIntake` over these clients, with its own signal sender and redaction set."""
    signals = SignalSender(pool, temporal, settings)
    redacted = RedactedJobs()
    parts = PartIntake(
        pool, signals, publisher, redacted, store_attempts=settings.ingest_store_attempts
    )
    return Intake(pool, signals, redacted, parts)

"""The Temporal client of a process, built from settings in its entry point."""

from __future__ import annotations

from temporalio.client import Client

from travis_logs.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)

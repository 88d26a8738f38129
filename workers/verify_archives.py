"""`travis-logs verify-archives <manifest>`: is every simulated job archived, byte for byte?"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import ClientError, EndpointConnectionError
from rich.console import Console

from travis_logs.archive_store import ArchiveStore, Digest
from travis_logs.errors import ConfigError
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.simulator.manifest import Manifest
from travis_logs.simulator.verify import Inspect, VerifyReport, verify_until

SHOWN_IDS = 20  # job ids listed per category; the counts are always complete


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest", type=Path, help="manifest written by `travis-logs simulate --manifest`"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="S",
        help="wait up to S seconds for archives to appear and match",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="archives fetched at once (default 16)"
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    manifest = Manifest.read(args.manifest)
    report = asyncio.run(run(settings, manifest, args.wait, args.concurrency))
    print_report(Console(), report)
    return 0 if report.ok else 1


async def run(
    settings: Settings, manifest: Manifest, wait_s: float = 0, concurrency: int = 16
) -> VerifyReport:
    """Check the manifest against the bucket `settings` names."""
    async with s3_client(settings) as s3:
        inspect = archive_inspector(ArchiveStore.for_settings(s3, settings), settings)
        return await verify_until(manifest, inspect, wait_s, concurrency=concurrency)


def archive_inspector(store: ArchiveStore, settings: Settings) -> Inspect:
    """Read each archive back whole (size and SHA-256); a bad bucket or endpoint is a ConfigError."""

    async def inspect(job_id: int) -> Digest | None:
        try:
            return await store.digest(job_id)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise ConfigError(f"S3_BUCKET: there is no bucket {settings.s3_bucket!r}") from err
            raise
        except EndpointConnectionError as err:
            raise ConfigError(f"S3_ENDPOINT_URL: {err}") from err

    return inspect


def print_report(console: Console, report: VerifyReport) -> None:
    style = "green" if report.ok else "red"
    console.print(
        f"[{style}]matched {len(report.matched)}, missing {len(report.missing)}, different {len(report.different)}[/]"
    )
    if report.missing:
        console.print(f"missing: {_ids(report.missing)}")
    if report.different:
        console.print(f"different: {_ids([d.job_id for d in report.different])}")
    for diff in report.different[:SHOWN_IDS]:
        console.print(
            f"  job {diff.job_id}: {diff.actual_bytes} bytes, sha256 {diff.actual_sha256[:16]}...; "
            f"expected {diff.expected_bytes} bytes, sha256 {diff.expected_sha256[:16]}..."
        )


def _ids(ids: Sequence[int]) -> str:
    shown = " ".join(map(str, ids[:SHOWN_IDS]))
    return shown + (f" ... and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")

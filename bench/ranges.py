"""Reading the tail of a purged log: a ranged GET against fetching the object whole.

Puts a simulated job log (10 MB by default) into moto's S3 behind a relaying proxy that
counts the bytes S3 sends back, then reads its last 64 KiB as GET /logs/:id/text does for
`Range: bytes=-65536` (HEAD for the size, one ranged GET) and, as the baseline in the same
run, the whole object. Prints bytes fetched and time for each, and their ratios.

    .venv/bin/python bench/ranges.py --mib 10 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.faultkit.s3proxy import FaultProxy
from bench.lifecycle import _s3
from tests.helpers import free_port
from travis_logs.archive_store import ArchiveStore
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions, job_output

BUCKET = "ranges-bench"
JOB = 1
TAIL = 64 * 1024


def simulated_log(size: int) -> bytes:
    writes = job_output(random.Random(1), ContentOptions(log_bytes=size))
    return b"".join(w.data for w in writes)


async def measure(proxy: FaultProxy, read: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    """Bytes S3 sent and seconds taken for one read; the read returns the bytes it got."""
    before, start = proxy.answered, time.perf_counter()
    await read()
    return proxy.answered - before, time.perf_counter() - start


async def run(mib: int, rounds: int) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # moto takes any; boto wants some
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    body = simulated_log(mib * 2**20)
    async with _s3(BUCKET) as endpoint:
        host, port = endpoint.removeprefix("http://").split(":")
        proxy = FaultProxy(free_port(), (host, int(port)))
        await proxy.start()
        settings = Settings(_env_file=None).model_copy(
            update={"s3_endpoint_url": f"http://127.0.0.1:{proxy.port}", "s3_bucket": BUCKET}
        )
        try:
            async with s3_client(settings) as s3:
                store = ArchiveStore.for_settings(s3, settings)
                await store.put(JOB, body, version=1, parts=1, if_match=None)

                async def tail() -> int:
                    head = await store.head(JOB)
                    assert head is not None
                    got = await store.fetch_range(JOB, head.size - TAIL, head.size - 1)
                    assert got == body[-TAIL:]
                    return len(got)

                async def whole() -> int:
                    got = await store.fetch(JOB)
                    assert got == body
                    return len(got)

                ranged = [await measure(proxy, tail) for _ in range(rounds)]
                full = [await measure(proxy, whole) for _ in range(rounds)]
        finally:
            await proxy.close()
    report(len(body), ranged, full)


def report(size: int, ranged: list[tuple[int, float]], full: list[tuple[int, float]]) -> None:
    r_bytes, f_bytes = ranged[0][0], full[0][0]
    r_s = statistics.median(s for _, s in ranged)
    f_s = statistics.median(s for _, s in full)
    print(f"log: {size / 2**20:.1f} MiB, tail slice: {TAIL // 1024} KiB, {len(ranged)} rounds")
    print(f"{'read':<22}{'bytes from S3':>16}{'median s':>12}")
    print(f"{'tail (HEAD + range)':<22}{r_bytes:>16,}{r_s:>12.4f}")
    print(f"{'whole object':<22}{f_bytes:>16,}{f_s:>12.4f}")
    print(f"ratio whole/tail: bytes {f_bytes / r_bytes:.0f}x, time {f_s / r_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=10, help="size of the log (MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.mib, args.rounds))


if __name__ == "__main__":
    main()

"""Benchmark of the API under hostile requests: /uptime's latency while ten are in flight.

Starts its own Temporal dev server, moto S3 and a throwaway database (bench/lifecycle.py's
`services`) and runs `travis-logs api` as a process of its own. It times GET /uptime alone
(the baseline), then again while ten threads keep sending one kind of hostile request each
(`--kind`):

- `sig`: POST /log-parts/multi signed `token sig:<SHA-1 of nothing>`, an API_MAX_BODY_BYTES
  batch of items without a token (the unkeyed signature anyone can make);
- `form`: POST /jobs/:id/session and /pusher/auth with API_MAX_BODY_BYTES forms;
- `token`: the same batch with a wrong `token`.

It prints p50/p99/max of each run and their ratio to the baseline, and the answers the
hostile requests got. The target: /uptime answers within 100 ms under every kind.

Usage: python bench/abuse.py [--probes 200] [--kind sig --kind form ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.managers import DictProxy
from pathlib import Path
from threading import Event as EventType

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycle import _free_port, services
from travis_logs.binaries import executable
from travis_logs.settings import Settings

SENDERS = 10
TARGET_MS = 100.0
BODY_BYTES = 8 << 20
TOKEN = "bench-abuse-token-" + "x" * 32
Sender = Callable[[httpx.Client], int]


def _public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def _api_env(settings: Settings, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=str(settings.database_url),
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
        S3_BUCKET=settings.s3_bucket,
        AUTH_TOKEN=TOKEN,
        JWT_RSA_PUBLIC_KEY=_public_pem(),
        PORT=str(port),
        PUSHER_APP_ID="1",
        PUSHER_KEY="bench",
        PUSHER_SECRET="bench-secret",
        PUSHER_HOST="127.0.0.1",
        PUSHER_PORT=str(_free_port()),  # nothing listens: no part is ever stored here
        PUSHER_SSL="false",
        LOG_LEVEL="WARNING",
    )
    return env


@contextmanager
def _api(settings: Settings) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [executable("travis-logs"), "api"],
        env=_api_env(settings, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/uptime", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _batch(items_bytes: int) -> bytes:
    """travis-worker's batch shape, without any token, filling at most `items_bytes`."""
    item = {"@type": "log_part", "encoding": "base64", "job_id": 1, "content": "eA=="}
    one = len(json.dumps({**item, "number": 999_999})) + 2
    return json.dumps([{**item, "number": n} for n in range(items_bytes // one)]).encode()


def _senders(kind: str) -> list[Sender]:
    batch = _batch(BODY_BYTES - 1024)
    form = b"token=" + b"t" * (BODY_BYTES - 1024)
    if kind == "sig":
        sig = {"Authorization": "token sig:" + hashlib.sha1(b"").hexdigest()}
        return [lambda c: c.post("/log-parts/multi", content=batch, headers=sig).status_code]
    if kind == "token":
        wrong = {"Authorization": "token wrong"}
        return [lambda c: c.post("/log-parts/multi", content=batch, headers=wrong).status_code]
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    grant = {**urlencoded, "X-Log-Grant": "forged"}
    return [
        lambda c: c.post("/jobs/1/session", content=form, headers=urlencoded).status_code,
        lambda c: c.post("/pusher/auth", content=form, headers=grant).status_code,
    ]


def _probe(url: str, count: int) -> list[float]:
    """Milliseconds of `count` GET /uptime, one after another."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.get("/uptime")
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return times


def _send(url: str, kind: str, stop: EventType, answers: DictProxy[int, int]) -> None:
    """SENDERS threads sending `kind` until `stop`; in a process of its own, so that its
    CPU and GIL are not the probe's."""
    senders, lock = _senders(kind), threading.Lock()

    def loop(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while not stop.is_set():
                try:
                    status = senders[n % len(senders)](client)
                except httpx.TransportError:
                    status = 0  # the server closed the connection (e.g. after a 413)
                with lock:
                    answers[status] = answers.get(status, 0) + 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _under_load(url: str, kind: str, count: int) -> tuple[list[float], dict[int, int]]:
    """/uptime probes while SENDERS hostile requests are in flight."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        stop, answers = manager.Event(), manager.dict()
        process = context.Process(target=_send, args=(url, kind, stop, answers))
        process.start()
        while not answers:  # the first hostile answers are in: all senders are busy
            time.sleep(0.2)
        try:
            return _probe(url, count), dict(answers)
        finally:
            stop.set()
            process.join()


def _summary(times: list[float]) -> tuple[float, float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


async def main(probes: int, kinds: list[str]) -> None:
    async with services(concurrency=1) as bench:
        with _api(bench.settings) as url:
            await asyncio.to_thread(_probe, url, 20)  # warm-up
            base = _summary(await asyncio.to_thread(_probe, url, probes))
            print(
                f"/uptime alone:        p50 {base[0]:7.1f} ms  p99 {base[1]:7.1f} ms  max {base[2]:7.1f} ms"
            )
            for kind in kinds:
                times, answers = await asyncio.to_thread(_under_load, url, kind, probes)
                p50, p99, top = _summary(times)
                print(
                    f"/uptime under {kind:6}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {top:7.1f} ms"
                    f"  (x{p50 / base[0]:.1f} / x{p99 / base[1]:.1f} / x{top / base[2]:.1f})"
                    f"  hostile answers {answers}"
                )
                verdict = "met" if top <= TARGET_MS else "NOT met"
                print(f"  target: /uptime within {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--kind", action="append", choices=["sig", "form", "token"])
    options = parser.parse_args()
    asyncio.run(main(options.probes, options.kind or ["sig", "form", "token"]))

"""What any asyncio AMQP consumer pays per message trickling against draining a full queue.

The ingest's target is a CPU per part under trickle (C jobs at 2 parts/s each) within 1.5
times its CPU per part draining a full queue. This bench asks whether the floor under that
ratio is the ingest's own: a bare aio-pika consumer in a subprocess (the ingest's prefetch,
one multiple ack per 50-ms batch as the ingest does, nothing else) drains `--messages`
from a full queue (paused with SIGSTOP while they are published), then takes the same count
trickling at `--trickle` x 2 messages/s. Its CPU per message each way (from /proc) and the
ratio are printed; `--rounds` alternates the two, and the medians are printed with them.

    .venv/bin/python bench/consumer.py --messages 20000 --trickle 250 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

# Run as a script: the repository first, or `ingest` would be bench/ingest.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.paced_reads import PacedTransportFactory, paced
from travis_logs.settings import Settings

CLK_TCK = os.sysconf("SC_CLK_TCK")
TEXT_BYTES = 800
BATCH_S = 0.05


def body(job: int, number: int) -> bytes:
    text = f"{number} " + "x" * (TEXT_BYTES - 12) + "\n"
    return json.dumps({"id": job, "log": text, "number": number, "final": False}).encode()


async def serve(url: str, queue_name: str, prefetch: int, tick_ms: float) -> None:
    """The bare consumer: parse nothing, ack what came in every 50 ms; print the count."""
    paced_class = paced(aio_pika.Connection, PacedTransportFactory(tick_ms / 1000))
    connection = await aio_pika.connect(url, connection_class=paced_class)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(queue_name)
    held: list[AbstractIncomingMessage] = []
    acked = 0

    async def on_message(message: AbstractIncomingMessage) -> None:
        held.append(message)

    await queue.consume(on_message)
    while True:
        await asyncio.sleep(BATCH_S)
        if held:
            last = max(held, key=lambda m: m.delivery_tag or 0)
            await last.ack(multiple=True)
            acked += len(held)
            held.clear()
            print(acked, flush=True)


class Consumer:
    """The bare consumer's process: its CPU and how many messages it has acked."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.acked = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            async with self._changed:
                self.acked = int(line)
                self._changed.notify_all()

    def cpu_s(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def until_acked(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.acked >= count)

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        await self.process.wait()
        self._reader.cancel()


async def drain(
    consumer: Consumer, exchange: aio_pika.abc.AbstractExchange, key: str, n: int
) -> float:
    """CPU us per message taking `n` messages from a full queue."""
    consumer.process.send_signal(signal.SIGSTOP)
    start_count = consumer.acked
    for i in range(n):
        await exchange.publish(aio_pika.Message(body(i % 500, i)), routing_key=key)
    cpu = consumer.cpu_s()
    consumer.process.send_signal(signal.SIGCONT)
    await consumer.until_acked(start_count + n)
    return (consumer.cpu_s() - cpu) / n * 1e6


async def trickle(
    consumer: Consumer, exchange: aio_pika.abc.AbstractExchange, key: str, n: int, jobs: int
) -> float:
    """CPU us per message taking `n` messages as `jobs` jobs send 2 a second each."""
    rate = 2.0 * jobs
    start_count, cpu, started = consumer.acked, consumer.cpu_s(), time.perf_counter()
    for i in range(n):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await exchange.publish(aio_pika.Message(body(i % jobs, i)), routing_key=key)
    await consumer.until_acked(start_count + n)
    return (consumer.cpu_s() - cpu) / n * 1e6


async def main(args: argparse.Namespace) -> None:
    settings = Settings()
    url = str(settings.rabbitmq_url)
    name = f"bench.consumer-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    queue = await channel.declare_queue(name, arguments={"x-expires": 600_000})
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", name, "--prefetch", str(settings.amqp_prefetch),
        "--tick-ms", str(args.tick_ms), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    consumer = Consumer(process)
    drains, trickles = [], []
    try:
        await asyncio.sleep(1)  # connected and consuming
        for r in range(args.rounds):
            drains.append(await drain(consumer, channel.default_exchange, name, args.messages))
            trickles.append(
                await trickle(consumer, channel.default_exchange, name, args.messages, args.trickle)
            )
            print(
                f"round {r + 1}: drain {drains[-1]:6.1f} us/msg, trickle ({args.trickle} jobs at"
                f" 2/s) {trickles[-1]:6.1f} us/msg, ratio {trickles[-1] / drains[-1]:.2f}"
            )
    finally:
        await consumer.stop()
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()
    d, t = statistics.median(drains), statistics.median(trickles)
    print(
        f"bare consumer, medians of {args.rounds}: drain {d:.1f} us/msg, trickle {t:.1f} us/msg,"
        f" ratio {t / d:.2f} (the ingest's target is 1.50; load average"
        f" {os.getloadavg()[0]:.2f})"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000, help="per drain and trickle")
    parser.add_argument("--trickle", type=int, default=250, help="jobs at 2 messages/s (250)")
    parser.add_argument("--rounds", type=int, default=2, help="drain + trickle rounds (2)")
    parser.add_argument(
        "--tick-ms", type=float, default=0, help="pace small reads (ingest/paced_reads.py); 0: off"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--prefetch", type=int, default=2000, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        url = str(Settings().rabbitmq_url)
        asyncio.run(serve(url, arguments.serve, arguments.prefetch, arguments.tick_ms))
    else:
        asyncio.run(main(arguments))

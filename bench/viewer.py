"""The viewer page of a large finished log: opened by range against carrying the whole text.

Starts its own Temporal dev server, moto S3 and a throwaway database (bench/lifecycle.py's
`services`), stores simulated job logs of 1, 10 and 50 MB (by default) as 1 MiB parts and
aggregates, archives and purges them as the lifecycle does (the index archived beside each).
Two API processes serve them: one opening every finished log by range (`VIEWER_INLINE_BYTES`
0; as shipped, 2 MiB, a 1 MB log would be carried whole), and the baseline, which carries
every log whole in the page (`VIEWER_INLINE_BYTES` past any log), as the page did before. Headless Chromium opens each page and the bench prints:

- time to last line: from navigation start (the page's `performance.timeOrigin`) until the
  log's last line is drawn and on screen (the baseline opens at the top, so there: until its
  last line is in the DOM, then scrolled into view);
- the page's JavaScript heap after a garbage collection (CDP `Performance.getMetrics`,
  `JSHeapUsedSize`), its DOM nodes (`Nodes`), and the private memory of the renderer
  process that shows it (/proc's smaps_rollup: the DOM and layout live outside the JS heap).

Targets (issue 23): a 50 MB log shows its last line within 1 s of navigation, the page holds
under 100 MB. Timings vary with the machine's load: compare the two columns of one run.

    .venv/bin/python bench/viewer.py [--mib 1 --mib 10 --mib 50] [--rounds 3] [--whole-rounds 1]

A page that shows no last line within 120 s is reported as such (its heap is not read: its
main thread is still busy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.abuse import _api_env
from bench.lifecycle import _free_port, services
from tests.api.chromium import Page, executable, open_page
from tests.helpers import archived_and_purged, store_parts
from travis_logs.archive_store import ArchiveStore
from travis_logs.binaries import executable as installed
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions, job_output

PART_CHARS = 2**20
RANGED_INLINE = 0
WHOLE_INLINE = 2**40
TIMEOUT_S = 120

# Resolves, on the page, with performance.now() once the log's last line is on screen.
LAST_LINE = """new Promise(done => {
  const check = () => {
    const log = document.getElementById('log');
    const lines = log && log.dataset.lines;
    const last = lines && document.getElementById('L' + lines);
    if (last && !last.classList.contains('pending')) {
      const box = last.getBoundingClientRect();
      if (box.bottom <= 0 || box.top >= innerHeight) last.scrollIntoView();
      return done(performance.now());
    }
    requestAnimationFrame(check);
  };
  check();
})"""


TRACE = False
# Where the time went: each request's start and end (ms after navigation start).
TIMINGS = """JSON.stringify(performance.getEntriesByType('navigation')
  .concat(performance.getEntriesByType('resource'))
  .map(e => [e.name.slice(-40), Math.round(e.startTime), Math.round(e.responseEnd)]))"""


@dataclass
class Seen:
    ms: float
    heap: float
    nodes: int
    private: float  # MiB


def _private_mib(pid: str) -> float:
    """A process's private memory (what it alone holds, shared libraries left out)."""
    rollup = Path("/proc", pid, "smaps_rollup").read_text(encoding="ascii")
    kib = sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Private_"))
    return kib / 1024


def renderer_mib(browser_pid: int | None) -> float:
    """The private memory of the browser's largest renderer process: the page's, in a
    browser that has shown nothing else."""
    found = [0.0]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            session = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
            command = (proc / "cmdline").read_bytes()
            if session == browser_pid and b"--type=renderer" in command:
                found.append(_private_mib(proc.name))
    return max(found)


def simulated_text(mib: int) -> str:
    writes = job_output(random.Random(mib), ContentOptions(log_bytes=mib * 2**20))
    return b"".join(w.data for w in writes).decode(errors="ignore").replace("\x00", "")


async def store_purged(pool: asyncpg.Pool, store: ArchiveStore, job_id: int, text: str) -> None:
    """The log as 1 MiB parts, aggregated, archived, verified and purged."""
    chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    await store_parts(pool, job_id, dict(enumerate(chunks, 1)), final=len(chunks))
    await archived_and_purged(pool, store, job_id)


@contextlib.contextmanager
def api(settings: Settings, inline_bytes: int) -> Iterator[str]:
    """`travis-logs api` in a process of its own, public viewer pages."""
    port = _free_port()
    env = _api_env(settings, port) | {
        "VIEWER_SECRET": "bench-viewer-secret-" + "y" * 32,
        "VIEWER_INLINE_BYTES": str(inline_bytes),
        "PUSHER_PRIVATE_CHANNELS": "false",
    }
    process = subprocess.Popen(
        [installed("travis-logs"), "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/uptime", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the API did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def open_log(page: Page, url: str) -> Seen | None:
    """Navigate from a blank page to `url`; what the page shows and holds at its last line."""
    await page.send("Page.navigate", url="about:blank")
    await page.send("Page.navigate", url=url)
    try:
        await committed(page, url)
        ms = await page.eval(LAST_LINE, timeout=TIMEOUT_S)
    except (TimeoutError, RuntimeError):
        return None
    if TRACE:
        print(await page.eval(TIMINGS))
    # A page of a million nodes takes a while to collect, more so on a loaded machine.
    await page.send("HeapProfiler.collectGarbage", wait_s=TIMEOUT_S)
    metrics = (await page.send("Performance.getMetrics", wait_s=TIMEOUT_S))["metrics"]
    named = {m["name"]: m["value"] for m in metrics}
    heap, nodes = named["JSHeapUsedSize"] / 2**20, int(named["Nodes"])
    return Seen(float(ms), heap, nodes, renderer_mib(page.browser_pid))


async def committed(page: Page, url: str) -> None:
    """Wait until the page's document is the one at `url` (not the blank one before)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):
            if await page.eval("location.href", timeout=TIMEOUT_S) == url:
                return
        await asyncio.sleep(0.01)
    raise TimeoutError(url)


async def fresh_load(url: str) -> Seen | None:
    """One load in a browser of its own: no cache, and one renderer process to measure."""
    async with browser() as page:
        return await open_log(page, url)


async def measure(url: str, rounds: int) -> Seen | None:
    seen = [await fresh_load(url) for _ in range(rounds)]
    if any(s is None for s in seen):
        return None
    done = [s for s in seen if s is not None]
    return Seen(
        statistics.median(s.ms for s in done),
        statistics.median(s.heap for s in done),
        int(statistics.median(s.nodes for s in done)),
        statistics.median(s.private for s in done),
    )


def row(mib: int, mode: str, seen: Seen | None) -> str:
    if seen is None:
        return f"{mib:>5} MB  {mode:<9}{'no last line within ' + str(TIMEOUT_S) + ' s':>40}"
    numbers = f"{seen.ms:>14.0f}{seen.heap:>14.1f}{seen.private:>16.1f}{seen.nodes:>12,}"
    return f"{mib:>5} MB  {mode:<9}{numbers}"


def ratios(ranged: Seen | None, whole: Seen | None) -> str:
    if ranged is None or whole is None:
        return ""
    return (
        f"          whole/ranged: time {whole.ms / max(ranged.ms, 1):.1f}x,"
        f" heap {whole.heap / max(ranged.heap, 0.1):.1f}x,"
        f" renderer {whole.private / max(ranged.private, 0.1):.1f}x,"
        f" nodes {whole.nodes / ranged.nodes:.0f}x"
    )


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Page]:
    binary = executable()
    if binary is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    async with open_page(binary) as page:
        await page.send("Performance.enable")
        yield page


async def run(sizes: list[int], rounds: int, whole_rounds: int) -> None:
    async with services(1) as bench, s3_client(bench.settings) as s3:
        store = ArchiveStore.for_settings(s3, bench.settings)
        jobs = {}
        for mib in sizes:
            jobs[mib] = 700_000 + mib
            await store_purged(bench.pool, store, jobs[mib], simulated_text(mib))
        print(
            f"{'log':>8}  {'page':<9}{'last line ms':>14}{'JS heap MB':>14}"
            f"{'renderer MB':>16}{'DOM nodes':>12}"
        )
        with (
            api(bench.settings, RANGED_INLINE) as ranged_url,
            api(bench.settings, WHOLE_INLINE) as whole_url,
        ):
            # One load of each API first: its first request opens its pools.
            smallest = jobs[min(sizes)]
            await fresh_load(f"{ranged_url}/jobs/{smallest}")
            if whole_rounds:
                await fresh_load(f"{whole_url}/jobs/{smallest}")
            for mib in sizes:
                ranged = await measure(f"{ranged_url}/jobs/{jobs[mib]}", rounds)
                print(row(mib, "by range", ranged))
                if not whole_rounds:
                    continue
                whole = await measure(f"{whole_url}/jobs/{jobs[mib]}", whole_rounds)
                print(row(mib, "whole", whole))
                if line := ratios(ranged, whole):
                    print(line)
                sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, action="append", help="log sizes (MB); 1, 10, 50")
    parser.add_argument("--rounds", type=int, default=3, help="loads of each page by range")
    parser.add_argument(
        "--whole-rounds",
        type=int,
        default=1,
        help="loads of each whole page (slow: tens of s; 0: none)",
    )
    parser.add_argument("--trace", action="store_true", help="print each request's timing")
    args = parser.parse_args()
    global TRACE
    TRACE = args.trace
    asyncio.run(run(args.mib or [1, 10, 50], args.rounds, args.whole_rounds))


if __name__ == "__main__":
    main()

"""The viewer page of a large log in headless Chromium: it opens at the last line, reads
earlier blocks by range as the reader scrolls up, folds and jumps to #L<n>, and keeps only
the rows on screen in the DOM; a log still streaming goes on with its live parts."""

from __future__ import annotations

import random
import re
from datetime import UTC

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.api.chromium import Page
from tests.api.test_viewer_browser import SCREENSHOTS, _stored
from tests.helpers import archived_and_purged, store_parts
from tests.ingest.ingest_support import broker, part, publish, running_ingest
from travis_logs.archive_store import ArchiveStore
from travis_logs.log_index import build_index
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions, job_output

pytestmark = pytest.mark.browser

LOG_BYTES = 50 * 2**20
# Generous: what the page does is counted (rows, blocks), not how fast a loaded CI draws it.
SLOW_S = 90
PART_CHARS = 2**20

ROWS = "document.querySelectorAll('#log .line').length"
BLOCKS = "window.travisLogsViewer.blocksLoaded"
# The text of the row of line n, as drawn (no number, fold name or duration).
TEXT_OF = """(n => [...document.getElementById('L' + n).childNodes]
  .filter(e => e.tagName === 'SPAN' && !e.classList.contains('fold-name')
    && !e.classList.contains('duration') && !e.classList.contains('at'))
  .map(e => e.textContent).join(''))"""
# Whether the row of line n is drawn (its text read) and wholly in view (above a sideways
# scroll bar).
ON_SCREEN = """(n => { const el = document.getElementById('L' + n);
  if (!el || el.classList.contains('pending')) return false;
  const r = el.getBoundingClientRect();
  return r.top >= 0 && r.bottom <= document.documentElement.clientHeight; })"""


def simulated_text(size: int) -> str:
    """A simulated job log as the ingest keeps it (the bytes that are not UTF-8 dropped)."""
    writes = job_output(random.Random(7), ContentOptions(log_bytes=size))
    return b"".join(w.data for w in writes).decode(errors="ignore").replace("\x00", "")


@pytest_asyncio.fixture
async def big_log(pool: asyncpg.Pool, store: ArchiveStore, job_id: int) -> list[str]:
    """A 50 MB simulated log, streamed as 1 MiB parts, aggregated, archived and purged (its
    index archived beside it): its lines."""
    text = simulated_text(LOG_BYTES)
    chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    parts = dict(enumerate(chunks, start=1))
    await store_parts(pool, job_id, parts, final=len(parts))
    await archived_and_purged(pool, store, job_id)
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


async def test_a_50_mb_log_opens_at_its_last_line_and_reads_the_rest_by_range(
    page: Page, api_url: str, big_log: list[str], job_id: int
) -> None:
    last = len(big_log)
    await page.goto(f"{api_url}/jobs/{job_id}")
    await page.wait_for(f"{ON_SCREEN}({last})", timeout=SLOW_S)
    assert await page.eval(f"{TEXT_OF}({last})") == _shown(big_log[-1])
    assert await page.eval("document.getElementById('status').textContent") == "finished"
    assert await page.eval("document.getElementById('log').dataset.lines") == str(last)
    # The DOM holds the screen and its margin, not 387,000 lines; one or two blocks read.
    assert await page.eval(ROWS) < 300
    assert await page.eval(BLOCKS) <= 2
    await page.screenshot(SCREENSHOTS / "viewer-ranged-end.png")

    # Scrolling up by two blocks' height reads the lines there.
    height = "document.querySelector('#log .line').getBoundingClientRect().height"
    await page.eval(f"window.scrollBy(0, -2500 * {height})")
    shown = await page.wait_for(
        "(() => { const rows = [...document.querySelectorAll('#log .line:not(.pending)')]"
        ".filter(r => r.getBoundingClientRect().top > 0);"
        " return rows.length && Number(rows[0].id.slice(1)); })()",
        timeout=SLOW_S,
    )
    assert shown < last - 2000
    assert await page.eval(f"{TEXT_OF}({shown})") == _shown(big_log[shown - 1])
    assert await page.eval(ROWS) < 300

    # A link to a line reads only the block around it, and marks the line.
    before = await page.eval(BLOCKS)
    await page.eval("location.hash = '#L123456'")
    await page.wait_for(f"{ON_SCREEN}(123456)", timeout=SLOW_S)
    assert await page.eval(f"{TEXT_OF}(123456)") == _shown(big_log[123455])
    assert await page.eval("document.getElementById('L123456').classList.contains('target')")
    assert await page.eval(BLOCKS) - before <= 2

    # The first fold starts closed; its title shows its name; a click opens it.
    await page.eval("location.hash = '#L1'")
    await page.wait_for(
        f"{ON_SCREEN}(1) && document.querySelector('#L1 .fold-name') !== null", timeout=SLOW_S
    )
    assert await page.eval("document.querySelector('#L1 .fold-name').dataset.fold") == "worker_info"
    assert await page.eval("document.getElementById('L2')") is None
    await page.eval("document.querySelector('#L1 .fold-name').click()")
    await page.wait_for(f"{ON_SCREEN}(2)", timeout=SLOW_S)
    assert await page.eval(f"{TEXT_OF}(2)") == _shown(big_log[1])
    await page.screenshot(SCREENSHOTS / "viewer-ranged-fold.png")
    assert page.console == []


def _shown(line: str) -> str:
    """What a row shows of a line: markers, escapes and overwritten progress gone."""
    text = re.sub(r"travis_(fold|time):(start|end):[^\s\x1b]*\r?", "", line)
    segments = text.split("\r")
    keep = len(segments) - 1
    while keep > 0 and not re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", segments[keep]):
        keep -= 1
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(segments[keep:]))


async def test_the_index_gives_each_line_its_arrival_and_each_fold_its_duration(
    page: Page, api_url: str, pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A purged log over VIEWER_INLINE_BYTES: the fold title shows its timers' total, and
    a line's number tells when its part arrived (from the archived index)."""
    head = "travis_fold:start:install\r\x1b[0Ktravis_time:start:ab12\r\x1b[0K$ make\n"
    body = "x" * 120 + "\n"
    end = (
        "travis_time:end:ab12:start=1,finish=2500000001,duration=2500000000\r\x1b[0K"
        "travis_fold:end:install\r\x1b[0Kdone\n"
    )
    filler = body * (2 * 2**20 // len(body) + 10)  # over the 2 MiB inline limit
    await store_parts(pool, job_id, {1: head, 2: filler}, age_s=60)
    await store_parts(pool, job_id, {3: end}, final=3)
    first = await pool.fetchval(
        "SELECT p.created_at FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id = $1 AND p.number = 1",
        job_id,
    )
    await archived_and_purged(pool, store, job_id)
    last = build_index((head + filler + end).encode()).lines

    await page.goto(f"{api_url}/jobs/{job_id}")
    await page.wait_for(f"{ON_SCREEN}({last})", timeout=SLOW_S)
    assert await page.eval(f"{TEXT_OF}({last})") == "done"
    # Lines 2..last-1 are in the closed fold: the log shows two rows.
    assert await page.eval(ROWS) == 2
    fold = "document.querySelector('#L1 .fold-name').textContent"
    assert await page.eval(fold) == "install 2.50 s"
    title = await page.eval("document.querySelector('#L1 a.num').title")
    stamp = first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert title == f"arrived {stamp}"
    await page.eval("document.getElementById('times').click()")
    await page.wait_for("document.querySelector('#L1 .at') !== null")
    label = await page.eval(f"document.querySelector('#L{last} .at').textContent")
    assert re.fullmatch(r"\+60\.\d\d s", label), label
    assert page.console == []


async def test_a_large_log_archived_without_an_index_is_shown_whole(
    page: Page, api_url: str, pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """No index to read by (a log archived before indexes were written): the page reads
    the whole text and draws it as it draws a small log."""
    lines = [f"{n:06d} " + "y" * 200 for n in range(1, 11_001)]  # over the 2 MiB limit
    await store_parts(pool, job_id, {1: "\n".join(lines) + "\n"}, final=1)
    await archived_and_purged(pool, store, job_id, index_in_s3=True)
    await store.delete_index(job_id)

    await page.goto(f"{api_url}/jobs/{job_id}")
    await page.wait_for("document.getElementById('log').dataset.lines === '11000'", timeout=60)
    assert await page.eval(f"{TEXT_OF}(11000)") == lines[-1]
    assert await page.eval("document.getElementById('status').textContent") == "finished"
    assert page.console == []


# The text of line n, or null while it is not drawn.
TEXT_IF = f"(n => document.getElementById('L' + n) && {TEXT_OF}(n))"


async def test_a_streaming_log_opens_at_its_end_by_range_and_goes_on_live(
    page: Page,
    api_url: str,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
) -> None:
    """A log still streaming, over VIEWER_INLINE_BYTES (2 MiB): the page reads its end by
    range (few rows in the DOM), then draws each later part once, at the end: a part stored
    while the page was not subscribed comes with the fill after the subscription, and one
    that comes both over Pusher and with a fill is drawn once."""
    text = simulated_text(3 * 2**20)
    text = (text if text.endswith("\n") else text + "\n") + "the line goes on"
    chunks = [text[i : i + PART_CHARS // 4] for i in range(0, len(text), PART_CHARS // 4)]
    parts = dict(enumerate(chunks, start=1))
    await store_parts(pool, job_id, parts)  # no final part: the log is streaming
    lines = text.split("\n")
    last, after = len(lines), len(parts)

    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        await page.goto(f"{api_url}/jobs/{job_id}")
        await page.wait_for("document.getElementById('status').textContent === 'live'")
        await page.wait_for(f"{ON_SCREEN}({last - 1}) && {ON_SCREEN}({last})", timeout=SLOW_S)
        assert await page.eval("window.travisLogsViewer.ranged") is True
        assert await page.eval(f"{TEXT_OF}({last - 1})") == _shown(lines[-2])
        # The unfinished last line is drawn once, where its next part will continue it.
        assert await page.eval(f"{TEXT_OF}({last})") == "the line goes on"
        assert await page.eval(ROWS) < 300
        assert await page.eval(BLOCKS) <= 2

        # Published while the page is not subscribed (as between its index read and its
        # subscription): the fill after the (re)subscription brings it.
        await page.eval("window.travisLogsPusher.disconnect()")
        await publish(topology, api_settings, [part(job_id, after + 1, ", and on\nback\n")])
        await _stored(pool, job_id, after + 1)
        await page.eval("window.travisLogsPusher.connect()")
        await page.wait_for(f"{TEXT_IF}({last + 1}) === 'back'")
        assert await page.eval(f"{TEXT_OF}({last})") == "the line goes on, and on"

        # Published now: over Pusher, at the end; a fill that finds it too adds nothing.
        await publish(topology, api_settings, [part(job_id, after + 2, "live at the end\n")])
        await page.wait_for(f"{TEXT_IF}({last + 2}) === 'live at the end'")
        await _stored(pool, job_id, after + 2)
        await page.eval("window.travisLogsViewer.fillGaps()")
        assert await page.eval("document.getElementById('log').dataset.lines") == str(last + 2)
        assert await page.eval(f"document.getElementById('L{last + 3}')") is None
        ids = "[...document.querySelectorAll('#log .line')].map(l => l.id)"
        drawn = await page.eval(ids)
        assert len(drawn) == len(set(drawn))
        assert await page.eval(f"{ON_SCREEN}({last + 2})")
        assert await page.eval(ROWS) < 300
        await page.screenshot(SCREENSHOTS / "viewer-ranged-live.png")
    assert page.console == []

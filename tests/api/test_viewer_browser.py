"""The viewer page in headless Chromium: live parts from RabbitMQ, folds, colours, archive."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.api.chromium import Page
from tests.helpers import assert_eventually
from tests.ingest.ingest_support import broker, part, publish, running_ingest
from travis_logs.settings import Settings

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output"

# A travis-worker job log: a folded install section, then a coloured result line.
PARTS = {
    1: "travis_fold:start:install\r\x1b[0K$ npm install\n",
    2: "added 3 packages\nup to date\n",
    3: "travis_fold:end:install\r\x1b[0K\x1b[32;1mThe command exited with 0.\x1b[0m\n",
    4: "after a reconnect\n",
}
LINES = ["$ npm install", "added 3 packages", "up to date", "The command exited with 0."]

LINE_TEXTS = """[...document.querySelectorAll('#log .line')].map(
  l => [...l.childNodes].filter(n => !n.classList.contains('num')
    && !n.classList.contains('fold-name')).map(n => n.textContent).join(''))"""
VISIBLE = "(id => document.getElementById(id).checkVisibility())"


async def check_rendering(page: Page, job_id: int) -> None:
    """Folded install section with its name, line anchors, and a green bold result line."""
    assert await page.eval("document.querySelector('details.fold').dataset.name") == "install"
    assert await page.eval("document.querySelector('details.fold').open") is False
    assert await page.eval(f"{VISIBLE}('L1')") is True  # the fold's title line
    assert await page.eval(f"{VISIBLE}('L2')") is False  # folded away
    assert await page.eval("document.querySelector('#L4 a.num').getAttribute('href')") == "#L4"
    colour = "getComputedStyle(document.querySelector('#L4 span.fg-green.b')).color"
    assert await page.eval(colour) == "rgb(57, 170, 86)"


async def test_viewer_follows_a_running_job_then_shows_the_archive(
    page: Page,
    api_url: str,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
) -> None:
    """Parts published to RabbitMQ appear live in order; after purge the archive shows the same."""
    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        await page.goto(f"{api_url}/jobs/{job_id}")
        await page.wait_for("document.getElementById('status').textContent === 'live'")
        # Part 3 before part 2: the page still shows them in number order.
        await publish(topology, api_settings, [part(job_id, n, PARTS[n]) for n in (1, 3, 2)])
        await page.wait_for("document.querySelectorAll('#log .line').length === 4")
        assert await page.eval(LINE_TEXTS) == LINES
        await check_rendering(page, job_id)
        await page.eval("document.querySelector('details.fold summary').click()")
        assert await page.eval(f"{VISIBLE}('L2')") is True
        await page.eval("document.querySelector('details.fold summary').click()")
        await page.screenshot(SCREENSHOTS / "viewer-live.png")

        # A part published while the connection is down is fetched from /log-parts later.
        await page.eval("window.travisLogsPusher.disconnect()")
        await publish(topology, api_settings, [part(job_id, 4, PARTS[4])])
        await _stored(pool, job_id, 4)
        assert await page.eval("document.querySelectorAll('#log .line').length") == 4
        await page.eval("window.travisLogsPusher.connect()")
        await page.wait_for("document.querySelectorAll('#log .line').length === 5")
        live_text = await page.eval(LINE_TEXTS)
        assert live_text == [*LINES, "after a reconnect"]

        await publish(topology, api_settings, [part(job_id, 5, "", final=True)])
        await _purged(pool, job_id)

    await page.goto(f"{api_url}/jobs/{job_id}")
    await page.wait_for("document.getElementById('status').textContent === 'finished'")
    assert await page.eval(LINE_TEXTS) == live_text
    await check_rendering(page, job_id)
    await page.screenshot(SCREENSHOTS / "viewer-archived.png")
    assert page.console == []


async def test_anchor_opens_its_fold(
    page: Page, api_url: str, client_put_log: None, job_id: int
) -> None:
    """Opening #L<n> for a line inside a fold opens the fold and marks the line as target."""
    await page.goto(f"{api_url}/jobs/{job_id}#L3")
    await page.wait_for("document.querySelector('details.fold').open === true")
    assert await page.eval("document.querySelector('#L3:target') !== null") is True
    assert await page.eval(f"{VISIBLE}('L3')") is True


@pytest_asyncio.fixture
async def client_put_log(client, job_id: int) -> None:
    """The job's log, set whole through PUT /logs (an aggregated log)."""
    content = "".join(PARTS[n] for n in (1, 2, 3))
    assert (await client.put(f"/logs/{job_id}", content=content.encode())).status_code == 200


async def _stored(pool: asyncpg.Pool, job_id: int, number: int) -> None:
    async def stored() -> None:
        found = await pool.fetchval(
            "SELECT count(*) FROM log_parts p JOIN logs l ON l.id = p.log_id"
            " WHERE l.job_id = $1 AND p.number = $2",
            job_id,
            number,
        )
        assert found == 1

    await assert_eventually(stored, timeout=20)


async def _purged(pool: asyncpg.Pool, job_id: int) -> None:
    async def purged() -> None:
        row = await pool.fetchrow("SELECT purged_at FROM logs WHERE job_id = $1", job_id)
        assert row is not None and row["purged_at"] is not None

    await assert_eventually(purged, timeout=30)


STREAMED = 3000
LINE_IDS = "[...document.querySelectorAll('#log .line')].map(l => l.id)"
RENDER_MS = "window.travisLogsViewer.renderMs"


def streamed_parts() -> dict[int, str]:
    """Whole lines, lines cut across two parts, and one part over Pusher's 10 KB limit."""
    parts = {}
    for n in range(1, STREAMED + 1):
        if n == STREAMED // 2:
            parts[n] = "big " + "x" * 12_000 + "\n"  # dropped by the publisher, never pushed
        elif n % 10 == 3:
            parts[n] = f"line {n} continues "  # the next part ends this line
        else:
            parts[n] = f"line {n}\n"
    return parts


async def test_viewer_keeps_up_with_3000_live_parts(
    page: Page,
    api_url: str,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
    record_property: Callable[[str, object], None],
) -> None:
    """3,000 live parts render in order, the dropped one fetched; a reload numbers them alike."""
    parts = streamed_parts()
    expected = "".join(parts.values()).split("\n")[:-1]
    lines = f"document.getElementById('log').dataset.lines === '{len(expected)}'"
    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        await page.goto(f"{api_url}/jobs/{job_id}")
        await page.wait_for("document.getElementById('status').textContent === 'live'")
        await publish(topology, api_settings, [part(job_id, n, text) for n, text in parts.items()])
        await page.wait_for(lines, timeout=120)
        assert await page.eval(LINE_TEXTS) == expected
        live_ids, live_ms = await page.eval(LINE_IDS), await page.eval(RENDER_MS)

        await page.goto(f"{api_url}/jobs/{job_id}")  # every part now comes with the page
        await page.wait_for(lines, timeout=60)
        assert await page.eval(LINE_TEXTS) == expected
        assert (
            await page.eval(LINE_IDS) == live_ids == [f"L{i}" for i in range(1, len(live_ids) + 1)]
        )
        loaded_ms = await page.eval(RENDER_MS)
        await publish(topology, api_settings, [part(job_id, STREAMED + 1, "", final=True)])
        await _purged(pool, job_id)
    record_property("viewer_render_ms", {"live": live_ms, "loaded": loaded_ms})
    _record_timing(live_ms, loaded_ms)
    assert page.console == []


def _record_timing(live_ms: float, loaded_ms: float) -> None:
    """The rendering time, kept in test-output/ (timings are reported, not asserted)."""
    line = (
        f"viewer: {STREAMED} parts rendered live in {live_ms:.0f} ms of main-thread time,"
        f" loaded at once in {loaded_ms:.0f} ms (live/loaded {live_ms / max(loaded_ms, 1):.2f})\n"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "viewer-live-3000.txt").write_text(line, encoding="utf-8")


GAPPED = {0: "one\n", 1: "two\n", 3: "four\n"}
# The log's top-level rows in order: line ids, and "gap <first>-<last>" for a missing range.
ROWS = """[...document.querySelectorAll('#log .line, #log .gap')].map(
  n => n.classList.contains('gap') ? 'gap ' + n.dataset.missing : n.id)"""


async def test_viewer_marks_a_missing_part_live_and_after_reload(
    page: Page,
    api_url: str,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
) -> None:
    """Part 2 never comes: the page marks it between the lines of parts 1 and 3, live and
    from the archive; the header tells how long archiving took after the last line."""
    expected = ["L1", "L2", "gap 2-2", "L3"]
    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        await page.goto(f"{api_url}/jobs/{job_id}")
        await page.wait_for("document.getElementById('status').textContent === 'live'")
        await publish(topology, api_settings, [part(job_id, n, t) for n, t in GAPPED.items()])
        await page.wait_for("document.querySelectorAll('#log .gap').length === 1")
        assert await page.eval(ROWS) == expected
        note = "document.querySelector('#log .gap').textContent"
        assert await page.eval(note) == "part 2 of this log is missing"

        await publish(topology, api_settings, [part(job_id, 4, "", final=True)])
        await _purged(pool, job_id)

    await page.goto(f"{api_url}/jobs/{job_id}")
    await page.wait_for("document.getElementById('status').textContent === 'finished'")
    assert await page.eval(ROWS) == expected
    assert await page.eval(LINE_TEXTS) == ["one", "two", "four"]
    header = await page.eval("document.getElementById('timeline').textContent")
    assert re.fullmatch(r"archived \d+ s after the last line, incomplete: part 2 missing", header)
    assert await page.eval(f"{VISIBLE}('timeline')") is True
    await page.screenshot(SCREENSHOTS / "viewer-gap.png")
    assert page.console == []

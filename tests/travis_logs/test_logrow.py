"""Where a log's text is, read from the three facts of its row (no services)."""

from __future__ import annotations

import pytest

from travis_logs.logrow import RowText


@pytest.mark.parametrize(
    ("row", "purged", "live", "has_content"),
    [
        # parts only: a read shows the stored parts
        (RowText(has_text=False), False, True, False),
        # aggregated (or set through PUT /logs): the content column holds it
        (RowText(has_text=True, aggregated=True), False, False, True),
        # purged: the archive holds it
        (RowText(has_text=False, aggregated=True, purge_stamped=True), True, False, True),
        # cleared by PUT /logs after an aggregation: no text anywhere
        (RowText(has_text=False, aggregated=True), False, False, False),
        # content written again after a purge (a late part's merge): not purged any more
        (RowText(has_text=True, aggregated=True, purge_stamped=True), False, False, True),
    ],
)
def test_each_row_says_where_its_text_is(
    row: RowText, purged: bool, live: bool, has_content: bool
) -> None:
    assert (row.purged, row.live, row.has_content) == (purged, live, has_content)


def test_read_from_the_selected_columns() -> None:
    """`RowText.of` reads the columns TEXT_COLUMNS selects, by their aliases."""
    record = {"has_text": None, "aggregated": True, "purge_stamped": True}
    assert RowText.of(record) == RowText(False, True, True)
    assert RowText.of(record).purged

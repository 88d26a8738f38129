"""Where a log's text is, as its `logs` row says: the one reading every process uses (no I/O).

A log's text is in the stored parts while it is live (neither aggregated nor purged), in the
`content` column once aggregated (or set through PUT /logs), and in the S3 archive once
purged (content NULL, `purged_at` set). A row with neither content nor a purge has no text:
cleared by PUT /logs, or a row whose parts were never aggregated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The columns `RowText.of` reads: select them in every query whose row it is given.
TEXT_COLUMNS = (
    "content IS NOT NULL AS has_text, aggregated_at IS NOT NULL AS aggregated,"
    " purged_at IS NOT NULL AS purge_stamped"
)


@dataclass(frozen=True, slots=True)
class RowText:
    """The three facts of a `logs` row that say where its text is."""

    has_text: bool  # the content column holds the log
    aggregated: bool = False  # aggregated_at is set
    purge_stamped: bool = False  # purged_at is set

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> RowText:
        """From a row that selected `TEXT_COLUMNS`."""
        return cls(bool(row["has_text"]), bool(row["aggregated"]), bool(row["purge_stamped"]))

    @property
    def purged(self) -> bool:
        """The archive holds the text: purged, and no content written since."""
        return self.purge_stamped and not self.has_text

    @property
    def live(self) -> bool:
        """Parts only: a read shows the stored parts as they are."""
        return not self.aggregated and not self.purge_stamped

    @property
    def has_content(self) -> bool:
        """The log has a text, in the content column or in the archive."""
        return self.has_text or self.purged

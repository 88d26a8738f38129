"""Masking (pure): same length, split and overlapping secrets, byte ranges, UTF-8 boundaries."""

from __future__ import annotations

import hashlib

import pytest

from activities.models import RedactLogResult
from travis_logs.redaction import RangeError, mask, mask_text, sha256_of
from workflows import state as st
from workflows.models import LogWorkflowState, RequestKind


def slices(body: bytes, sizes: list[int]) -> list[bytes]:
    """The bytes of each part, the parts laid end to end in `body`."""
    out, at = [], 0
    for size in sizes:
        out.append(body[at : at + size])
        at += size
    return out


def test_a_secret_split_across_two_parts_is_masked_in_both() -> None:
    parts = [b"token=hunt", b"er2 ok\n", b"again hunter2\n"]
    log = b"".join(parts)
    masked = mask(log, ["hunter2"])
    assert masked.occurrences == 2
    pieces = slices(masked.body, [len(p) for p in parts])
    assert pieces == [b"token=****", b"*** ok\n", b"again *******\n"]
    assert all(len(a) == len(b) for a, b in zip(pieces, parts, strict=True))


def test_overlapping_occurrences_are_all_masked() -> None:
    masked = mask(b"x ababab y", ["abab"])
    assert masked.body == b"x ****** y"
    assert masked.occurrences == 2


def test_masking_keeps_the_length_and_is_idempotent() -> None:
    log = "pw: sécret ✓ and sécret\n".encode()
    once = mask(log, ["sécret"], [(0, 2)])
    assert len(once.body) == len(log)
    once.body.decode()  # still UTF-8
    again = mask(once.body, ["sécret"], [(0, 2)])
    assert again.body == once.body
    assert (again.occurrences, again.ranges_changed) == (0, 0)
    assert not again.changed(once.body)


def test_ranges_must_fall_on_character_boundaries() -> None:
    log = "ok ✓ done".encode()  # ✓ is bytes 3..6
    with pytest.raises(RangeError, match="inside a UTF-8 character"):
        mask(log, ranges=[(4, 6)])
    with pytest.raises(RangeError, match="inside a UTF-8 character"):
        mask(log, ranges=[(0, 5)])
    assert mask(log, ranges=[(3, 6)]).body == b"ok *** done"


def test_ranges_outside_the_log_or_empty_are_refused() -> None:
    with pytest.raises(RangeError, match="beyond the log's 4 bytes"):
        mask(b"abcd", ranges=[(2, 9)])
    with pytest.raises(RangeError, match="below end"):
        mask(b"abcd", ranges=[(2, 2)])


def test_a_refused_range_masks_nothing_else() -> None:
    with pytest.raises(RangeError):
        mask(b"secret", ["secret"], [(0, 99)])


def test_per_part_masking_leaves_text_without_secrets_alone() -> None:
    text = "nothing to see\n"
    assert mask_text(text, ["hunter2"]) is text
    assert mask_text("a hunter2 b", ["hunter2"]) == "a ******* b"
    assert mask_text("ünïcode hunter2", []) == "ünïcode hunter2"


def test_the_audit_keeps_the_sha256_of_a_string_not_the_string() -> None:
    assert sha256_of("hunter2") == hashlib.sha256(b"hunter2").hexdigest()


def _done(changed: bool, version: int = 3) -> RedactLogResult:
    return RedactLogResult(7, version, changed, 2, ["ab" * 32], "ops", "leak", 1000)


def test_a_redaction_that_changed_the_log_asks_for_a_rewrite() -> None:
    s = LogWorkflowState(purged=True, content_version=2, revision=4)
    st.on_redacted(s, 11, _done(changed=True))
    assert [t.kind for t in s.pending] == [RequestKind.REARCHIVE]
    assert (s.content_version, s.purged, s.revision) == (3, False, 5)
    assert [r.redaction_id for r in s.redactions] == [11]
    assert s.redactions[0].content_version == 3


def test_a_redaction_that_changed_nothing_asks_for_nothing_and_is_recorded_once() -> None:
    s = LogWorkflowState(content_version=3, revision=4)
    st.on_redacted(s, 12, _done(changed=False))
    st.on_redacted(s, 12, _done(changed=False))
    assert (s.content_version, s.revision, s.pending) == (3, 4, [])
    assert len(s.redactions) == 1 and s.redactions[0].content_version is None

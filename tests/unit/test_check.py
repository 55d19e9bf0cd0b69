"""`check`'s audit comparison, without a server: which offsets it asks Kafka about."""

from __future__ import annotations

from bookstore.cli.check import SPAN_GAP, _spans


def test_spans_cover_every_offset_the_audit_log_lacks_and_only_those_regions():
    assert _spans({0, 1, 2, 3}, 0, 4) == []
    assert _spans(set(), 5, 9) == [(5, 9)]
    assert _spans({0, 2}, 0, 4) == [(1, 4)]  # 1 and 3: close, read as one span
    far = 3 * SPAN_GAP
    assert _spans({0, *range(2, far)}, 0, far + 2) == [(1, 2), (far, far + 2)]
    assert _spans({7}, 0, 8) == [(0, 7)]  # the caller starts at the audit log's first line

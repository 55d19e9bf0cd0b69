"""The record wire form (docs/contracts.md): the audit line is what the bridge sends and the audit
task writes, so it must carry every record back exactly, whatever its bytes."""

from __future__ import annotations

import json

import pytest

from bookstore.records import Record, audit_line, from_lines, line_size

RECORDS = [
    Record("customers", 0, 7, b"k", 1_700_000_000_000, '{"name": "Conceição 📚"}'.encode()),
    Record("books", 2, 0, None, 1, b"\xff\xfe not utf-8"),
    Record("orders", 1, 3, b"\xff", 2, None),  # a tombstone with a binary key
    Record("books", 0, 1, b"q", 3, b'{"t": "line\\nbreak \\"quoted\\""}'),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r.topic}@{r.offset}")
def test_an_audit_line_carries_the_record_back_exactly(record):
    line = audit_line(record)
    assert line.endswith("\n") and line.count("\n") == 1 and line.isascii()
    assert from_lines(line) == [record]
    assert Record.from_wire(json.loads(line)) == record


def test_a_batch_of_lines_and_the_older_list_form_give_the_same_records():
    lines = "".join(audit_line(r) for r in RECORDS)
    assert from_lines(lines) == RECORDS
    assert from_lines([r.to_wire() for r in RECORDS]) == RECORDS


def test_non_utf8_bytes_travel_as_base64_and_text_as_text():
    wire = json.loads(audit_line(RECORDS[1]))
    assert wire["value"] is None and "value_b64" in wire
    assert json.loads(audit_line(RECORDS[0]))["value"] == '{"name": "Conceição 📚"}'


def test_line_size_is_the_bytes_a_line_takes_inside_a_json_string():
    for record in RECORDS:
        line = audit_line(record)
        assert line_size(line) == len(json.dumps(line)) - 2

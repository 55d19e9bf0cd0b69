"""Bad input: samples per class of the bad-input table (docs/contracts.md), with their outcome.

Every sample is unique to the tag it is built with, so that several runs on shared topics never
mistake one run's dead letters for another's. Classes whose outcome needs a store prepared in
advance (an e-mail already held, a Redis key of another type, a trigger) are built by the tests
that prepare it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from tests.support import BOOKS, CUSTOMERS, ORDERS


@dataclass(frozen=True)
class Bad:
    """One record that must end as a dead letter of `stage`."""

    topic: str
    value: bytes | None
    stage: str
    # the key travels with the record into its dead letter, unchanged
    key: bytes | None = field(default_factory=lambda: f"bad-{uuid.uuid4()}".encode())


def _json(value: object) -> bytes:
    return json.dumps(value).encode()  # non-ASCII as \uXXXX escapes, lone surrogates too


def customer(tag: str, **fields: object) -> dict:
    email = f"{uuid.uuid4().hex}@example.com"
    return {"id": str(uuid.uuid4()), "name": f"c {tag}", "email": email} | fields


def book(tag: str, **fields: object) -> dict:
    base = {"id": f"{tag}-{uuid.uuid4().hex[:8]}", "isbn": None, "title": f"t {tag}"}
    return base | {"authors": [], "publishedDate": "2004"} | fields


def order(tag: str, customer_id: str, book_id: str, **fields: object) -> dict:
    base = {"id": str(uuid.uuid4()), "customer_id": customer_id, "book_id": book_id}
    return base | {"quantity": 1, "timestamp": 1_700_000_000, "tag": tag} | fields


def classes(tag: str, customer_id: str, book_id: str) -> dict[str, list[Bad]]:
    """Bad-input class -> its samples. Orders reference `customer_id` and `book_id`."""

    def cust(stage: str, value: bytes) -> Bad:
        return Bad(CUSTOMERS, value, stage)

    def bk(stage: str, value: bytes) -> Bad:
        return Bad(BOOKS, value, stage)

    def od(stage: str, **fields: object) -> Bad:
        return Bad(ORDERS, _json(order(tag, customer_id, book_id) | fields), stage)

    a_book = json.dumps(book(tag))[:-1]  # an object left open, for literals JSON does not have
    return {
        "not-utf8": [cust("decode", b"\xff\xfe{" + tag.encode() + b"}")],
        "not-json": [cust("decode", f'{{"id": "{tag}", not json'.encode())],
        "nan-infinity-literals": [
            bk("decode", f'{a_book}, "rating": {literal}}}'.encode())
            for literal in ("NaN", "Infinity", "-Infinity")
        ],
        "tombstone": [Bad(CUSTOMERS, None, "decode", key=f"tombstone-{tag}".encode())],
        "not-an-object": [
            cust("validate", _json([tag])),
            cust("validate", _json(f"just a string {tag}")),
            bk("validate", f"{len(tag)}".encode()),  # a bare number
        ],
        "nul-or-unpaired-surrogate": [
            # the JSON text is valid UTF-8; the escapes decode to what no store holds faithfully
            cust("validate", json.dumps(customer(tag, name="a\u0000b")).encode()),
            bk("validate", json.dumps(book(tag, extra={"k\u0000": 1})).encode()),
            cust("validate", _json(customer(tag)).replace(b'"c ', b'"\\ud800 ')),
            od("validate", book_id="vol-\udc00"),
        ],
        "nesting-too-deep": [
            bk("validate", _json(book(tag, extra=_nested(33)))),
            bk("validate", (a_book + ', "deep": ' + "[" * 50_000 + "]" * 50_000 + "}").encode()),
        ],
        "record-too-large": [  # over RECORD_MAX_BYTES (the suites set it below 1 MB)
            cust("validate", _json(customer(tag, name="x" * 1_000_000))),
        ],
        "field-limits": [
            cust("validate", _json(customer(tag, email=f"{'e' * 243}@example.com"))),  # 255
            cust("validate", _json(customer(tag, name="n" * 1001))),
            bk("validate", _json(book(tag, title="t" * 1001))),
            bk("validate", _json(book(tag, authors=["a" * 1001]))),
            bk("validate", _json(book(tag, authors=[f"a{i}" for i in range(101)]))),
        ],
        "wrong-types-missing-fields-ranges": [
            cust("validate", _json(customer(tag, id="not-a-uuid"))),
            cust("validate", _json({"id": str(uuid.uuid4()), "name": tag})),  # no email
            bk("validate", _json(book(tag, title={"text": tag}))),
            bk("validate", _json(book(tag, authors="one author"))),
            od("validate", quantity=0),
            od("validate", quantity=1_000_001),
            od("validate", quantity="2"),
            od("validate", timestamp=-1),
            od("validate", timestamp=253_402_300_800),  # year 10000
            od("validate", timestamp="10000-01-01T00:00:00"),
            od("validate", timestamp="soon"),
            od("validate", timestamp=True),
        ],
    }


def verbatim(tag: str, customer_id: str, book_id: str) -> dict[str, list[dict]]:
    """Valid records that look dangerous: stored exactly as sent (extra `$`/dotted book keys are
    dropped before MongoDB, other extra fields kept)."""
    return {
        CUSTOMERS: [
            customer(tag, name='Robert\'); DROP TABLE customers;-- "quoted" \\ back'),
            customer(tag, name="📚 Ana Conceição — مريم עברית ‮reversed‬"),
        ],
        BOOKS: [
            book(
                tag,
                title='O\'Reilly "Guia" 📚 %s ; -- ${x}',
                authors=["Zoë", "محمد", "'; DELETE FROM books; --"],
                extra={"$where": "1", "a.b": 2, "ok": {"$inner": 1, "keep": [1, "2"]}},
            )
        ],
        ORDERS: [order(tag, customer_id, book_id, note="'; FLUSHALL; --")],
    }


def _nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth - 1):  # `book.extra` itself is level 2 of the record
        value = [value]
    return value

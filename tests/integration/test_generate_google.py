"""Google Books client against a local server with recorded-shape responses (no network)."""

from __future__ import annotations

import logging

import pytest

from bookstore.sources.google_books import GoogleBooks, parse_volume
from tests.integration.google_books_fake import Reply, google, page, volume  # noqa: F401 (fixture)


@pytest.fixture
def client_for(settings, google):  # noqa: F811
    def make(**overrides) -> GoogleBooks:
        fields = {
            "google_books_base_url": google.base_url,
            "google_books_backoff_seconds": 0.01,
            "google_books_timeout_seconds": 5.0,
            **overrides,
        }
        return GoogleBooks(settings.replace(**fields))

    return make


MIXED = page(
    [
        volume(
            "AAAAAAAAAAA1", identifiers=[("ISBN_10", "0306406152"), ("ISBN_13", "9780306406157")]
        ),
        volume(
            "AAAAAAAAAAA2", identifiers=[("ISBN_13", "9781234567897"), ("ISBN_10", "123456789X")]
        ),
        volume("AAAAAAAAAAA3", identifiers=[("OTHER", "OCLC:123"), ("ISBN_10", "0306406152")]),
        volume("AAAAAAAAAAA4", identifiers=[("OTHER", "UOM:39015")]),
        volume("AAAAAAAAAAA5", identifiers=None, authors=None, published="2004"),
        volume("AAAAAAAAAAA6", authors=["Ann", "Bob"], published="2004-05-12T00:00:00Z"),
        volume("AAAAAAAAAAA7", published=None),
        volume("", title="No id"),
        volume("AAAAAAAAAAA8", title=None),
        {"kind": "books#volume", "id": "AAAAAAAAAAA9"},  # no volumeInfo at all
    ]
)


def test_volumes_parse_as_the_spec_says(google, client_for):  # noqa: F811
    google.reply(Reply(body=MIXED))
    books = {b["id"]: b for b in client_for().fetch_new(40, exclude=set(), max_queries=1)}
    assert set(books) == {f"AAAAAAAAAAA{i}" for i in range(1, 8)}  # no id / no title skipped
    assert books["AAAAAAAAAAA1"]["isbn"] == "9780306406157"  # ISBN-13 preferred
    assert books["AAAAAAAAAAA2"]["isbn"] == "9781234567897"
    assert books["AAAAAAAAAAA3"]["isbn"] == "0306406152"  # ISBN-10 when no 13, OTHER ignored
    assert books["AAAAAAAAAAA4"]["isbn"] is None
    assert books["AAAAAAAAAAA5"] == {
        "id": "AAAAAAAAAAA5",
        "isbn": None,
        "title": "A Title",
        "authors": [],  # missing authors
        "publishedDate": "2004",  # year only, kept as given
    }
    assert books["AAAAAAAAAAA6"]["authors"] == ["Ann", "Bob"]
    assert books["AAAAAAAAAAA6"]["publishedDate"] == "2004-05-12T00:00:00Z"
    assert books["AAAAAAAAAAA7"]["publishedDate"] is None


def test_already_published_volumes_are_skipped(google, client_for):  # noqa: F811
    google.reply(Reply(body=MIXED))
    books = client_for().fetch_new(40, exclude={"AAAAAAAAAAA1", "AAAAAAAAAAA2"}, max_queries=2)
    ids = [b["id"] for b in books]
    assert "AAAAAAAAAAA1" not in ids and "AAAAAAAAAAA2" not in ids
    assert len(ids) == len(set(ids)) == 5  # the second page repeated the first: no duplicates


def test_no_items_gives_no_books(google, client_for):  # noqa: F811
    google.reply(Reply(body=page(None)))
    assert client_for().fetch_new(5, exclude=set()) == []


def test_429_is_retried_honouring_retry_after(google, client_for):  # noqa: F811
    google.reply(Reply(429, {"error": {"code": 429}}, {"Retry-After": "0"}), Reply(body=MIXED))
    books = client_for().fetch_new(3, exclude=set(), max_queries=1)
    assert len(books) == 3
    assert len(google.requests) == 2


def test_500_forever_gives_up_after_max_attempts(google, client_for, caplog):  # noqa: F811
    google.reply(Reply(500, {"error": {"code": 500}}))
    client = client_for(google_books_max_attempts=3, google_books_api_key="SECRET-KEY-123")
    with caplog.at_level(logging.DEBUG):
        assert client.fetch_new(5, exclude=set()) == []
        assert client.fetch_new(5, exclude=set()) == []  # cooling down: Google not even asked
    assert len(google.requests) == 3
    assert google.requests[0]["key"] == ["SECRET-KEY-123"]  # the key travels...
    assert "SECRET-KEY-123" not in caplog.text  # ...but is never logged
    assert "Google Books unavailable" in caplog.text


def test_key_param_only_when_configured(google, client_for):  # noqa: F811
    client_for(google_books_api_key="").fetch_new(1, exclude=set())
    assert "key" not in google.requests[0]


def test_a_hanging_server_times_out(google, client_for):  # noqa: F811
    google.reply(Reply(body=MIXED, delay=5))
    assert client_for(google_books_timeout_seconds=0.3).fetch_new(3, exclude=set()) == []


def test_unreachable_server_gives_no_books(settings):
    s = settings.replace(google_books_base_url="http://127.0.0.1:9/books/v1")
    assert GoogleBooks(s).fetch_new(3, exclude=set()) == []


def test_parse_volume_rejects_non_string_title():
    assert parse_volume({"id": "x", "volumeInfo": {"title": {"a": 1}}}) is None

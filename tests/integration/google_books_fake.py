"""A local stand-in for the Google Books API (127.0.0.1, ephemeral port) for the tests.

Responses have the recorded shape of `GET /books/v1/volumes`. Tests script the replies
(status, headers, body, delay); once the script is used up the last reply repeats, and with no
script every query gets a page of distinct, well-formed volumes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


def volume(
    vid: str,
    title: str | None = "A Title",
    authors: list[str] | None = None,
    identifiers: list[tuple[str, str]] | None = None,
    published: str | None = "2004-05-12",
) -> dict:
    info: dict = {"title": title, "publisher": "Someone", "language": "en"}
    if title is None:
        del info["title"]
    if authors is not None:
        info["authors"] = authors
    if identifiers is not None:
        info["industryIdentifiers"] = [{"type": t, "identifier": i} for t, i in identifiers]
    if published is not None:
        info["publishedDate"] = published
    return {"kind": "books#volume", "id": vid, "etag": "x", "volumeInfo": info}


def page(items: list[dict] | None) -> dict:
    body: dict = {"kind": "books#volumes", "totalItems": len(items or [])}
    if items is not None:
        body["items"] = items
    return body


def default_page(query: str, start: int, n: int = 40) -> dict:
    """Distinct 12-char ids per (query, startIndex), like real volume ids."""
    items = []
    for i in range(n):
        vid = hashlib.sha1(f"{query}/{start + i}".encode()).hexdigest()[:12]
        items.append(
            volume(
                vid,
                title=f"{query.title()} volume {start + i}",
                authors=[f"Author {i}"],
                identifiers=[("ISBN_10", "0306406152"), ("ISBN_13", "9780306406157")],
            )
        )
    return page(items)


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeGoogleBooks:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, list[str]]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with fake.lock:
                    fake.requests.append(query)
                    reply = fake.script.pop(0) if len(fake.script) > 1 else None
                    reply = reply or (fake.script[0] if fake.script else None)
                if reply is None:
                    q = query.get("q", ["x"])[0]
                    reply = Reply(body=default_page(q, int(query.get("startIndex", ["0"])[0])))
                if reply.delay:
                    time.sleep(reply.delay)
                data = json.dumps(reply.body if reply.body is not None else {}).encode()
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/books/v1"

    def reply(self, *replies: Reply) -> None:
        with self.lock:
            self.script = list(replies)

    def __enter__(self) -> FakeGoogleBooks:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def google() -> Iterator[FakeGoogleBooks]:
    with FakeGoogleBooks() as fake:
        yield fake

"""Google Books volumes search client: timeouts, bounded retries, and a quiet give-up.

The caller falls back to Faker whenever this client returns fewer books than asked for, so
"Google unreachable" (as on our offline machines) is a normal, cheap path: after a failure the
client stays off for a cool-down instead of paying connect timeouts on every tick.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable

import requests

from bookstore.config import Settings

log = logging.getLogger(__name__)

QUERY_WORDS = (
    "python", "history", "poetry", "science", "brasil", "cooking", "travel", "music",
    "mathematics", "philosophy", "economics", "romance", "mystery", "biology", "art",
    "database", "ocean", "architecture", "children", "astronomy", "garden", "chess",
)  # fmt: skip
PAGE_SIZE = 40  # the API's maximum maxResults
MAX_START_INDEX = 400
MAX_BACKOFF_SECONDS = 30.0


class GoogleBooksUnavailable(RuntimeError):
    """Google could not be reached or kept refusing; the message never contains the API key."""


def _isbn(identifiers: Iterable[dict]) -> str | None:
    by_type = {i.get("type"): i.get("identifier") for i in identifiers if isinstance(i, dict)}
    return by_type.get("ISBN_13") or by_type.get("ISBN_10") or None  # OTHER is ignored


def parse_volume(item: dict) -> dict | None:
    """One API volume -> a `books` message (docs/contracts.md), or None without an id or title."""
    info = item.get("volumeInfo") or {}
    volume_id, title = item.get("id"), info.get("title")
    if not isinstance(volume_id, str) or not volume_id or not isinstance(title, str) or not title:
        return None
    authors = info.get("authors") or []
    published = info.get("publishedDate")
    return {
        "id": volume_id,
        "isbn": _isbn(info.get("industryIdentifiers") or []),
        "title": title,
        "authors": [a for a in authors if isinstance(a, str)],
        "publishedDate": published if isinstance(published, str) else None,
    }


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class GoogleBooks:
    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = settings.google_books_base_url
        self.api_key = settings.google_books_api_key
        if self.api_key:  # urllib3 logs full URLs (key included) at DEBUG: keep it above that
            logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
        read = settings.google_books_timeout_seconds
        self.timeout = (min(3.05, read), read)
        self.max_attempts = max(1, settings.google_books_max_attempts)
        self.backoff = settings.google_books_backoff_seconds
        self.cooldown = settings.google_books_cooldown_seconds
        self.session = session or requests.Session()
        self._sleep = sleep
        self._down_until = 0.0
        self._word = random.randrange(len(QUERY_WORDS))  # workers do not all ask the same
        self._start: dict[str, int] = {}

    def search(self, query: str, start_index: int = 0) -> list[dict]:
        """Raw `items` of one search page ([] when the response has none)."""
        url = f"{self.base_url}/volumes"  # logged as is: the key only ever travels in params
        params: dict[str, str | int] = {
            "q": query,
            "startIndex": start_index,
            "maxResults": PAGE_SIZE,
            "printType": "books",
        }
        if self.api_key:
            params["key"] = self.api_key
        for attempt in range(1, self.max_attempts + 1):
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                # str(exc) would contain the full URL, key included: report the type only
                raise GoogleBooksUnavailable(f"GET {url}: {type(exc).__name__}") from None
            if resp.status_code == 429 or resp.status_code >= 500:
                if attempt == self.max_attempts:
                    raise GoogleBooksUnavailable(
                        f"GET {url}: HTTP {resp.status_code} after {attempt} attempts"
                    )
                delay = _retry_after(resp)
                if delay is None:
                    delay = self.backoff * 2 ** (attempt - 1)
                delay = min(delay, MAX_BACKOFF_SECONDS)
                log.info("GET %s: HTTP %s, retrying in %.1fs", url, resp.status_code, delay)
                self._sleep(delay)
                continue
            if resp.status_code != 200:
                raise GoogleBooksUnavailable(f"GET {url}: HTTP {resp.status_code}")
            try:
                items = resp.json().get("items")
            except (ValueError, AttributeError):
                raise GoogleBooksUnavailable(f"GET {url}: response is not a JSON object") from None
            return [i for i in items or [] if isinstance(i, dict)]
        raise AssertionError("unreachable")

    def _next_query(self) -> tuple[str, int]:
        """Rotate over the word list; each word pages further every time it comes round."""
        word = QUERY_WORDS[self._word % len(QUERY_WORDS)]
        self._word += 1
        start = self._start.get(word, 0)
        self._start[word] = start + PAGE_SIZE if start + PAGE_SIZE < MAX_START_INDEX else 0
        return word, start

    def fetch_new(self, n: int, exclude: set[str], max_queries: int = 3) -> list[dict]:
        """Up to n books whose ids are not in `exclude`; fewer (maybe none) if Google fails."""
        books: list[dict] = []
        if n <= 0 or time.monotonic() < self._down_until:
            return books
        seen = set(exclude)
        try:
            for _ in range(max_queries):
                word, start = self._next_query()
                items = self.search(word, start)
                if not items:
                    self._start[word] = 0
                for item in items:
                    book = parse_volume(item)
                    if book and book["id"] not in seen:
                        seen.add(book["id"])
                        books.append(book)
                        if len(books) >= n:
                            return books
        except GoogleBooksUnavailable as exc:
            self._down_until = time.monotonic() + self.cooldown
            log.warning("Google Books unavailable (%s); using Faker for %.0fs", exc, self.cooldown)
        return books

"""Faker-made customers and fallback books, shaped exactly like the messages (docs/contracts.md)."""

from __future__ import annotations

import random
import re
import unicodedata
import uuid

from faker import Faker

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
FAKER_BOOK_ID_PREFIX = "faker-"  # Google volume ids are 12 chars of [A-Za-z0-9_-]: no clash


def make_faker(locale: str) -> Faker:
    return Faker(locale)


def _ascii_slug(text: str) -> str:
    """'João da Silva' -> 'joaodasilva': e-mail local parts stay plain ASCII."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower()) or "x"


def fake_customer(fake: Faker) -> dict:
    """A customer whose e-mail embeds its own id, so it is unique across processes and restarts."""
    cid = uuid.uuid4()
    first, last = fake.first_name(), fake.last_name()
    local = f"{_ascii_slug(first)}.{_ascii_slug(last)}.{cid.hex[:12]}"
    return {
        "id": str(cid),
        "name": f"{first} {last}",
        "email": f"{local}@{random.choice(EMAIL_DOMAINS)}",
    }


def isbn13_check_digit(first12: str) -> str:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def fake_isbn13() -> str:
    body = "978" + "".join(random.choices("0123456789", k=9))
    return body + isbn13_check_digit(body)


def _published_date(fake: Faker) -> str:
    """Google's free-form shapes: year, year-month or full date."""
    day = fake.date_between(start_date="-80y", end_date="today")
    return day.isoformat()[: random.choice((4, 7, 10))]


def fake_book(fake: Faker) -> dict:
    title = fake.sentence(nb_words=random.randint(2, 6)).rstrip(".")
    return {
        "id": FAKER_BOOK_ID_PREFIX + uuid.uuid4().hex,
        "isbn": fake_isbn13(),
        "title": title,
        "authors": [fake.name() for _ in range(random.choice((1, 1, 1, 2, 3)))],
        "publishedDate": _published_date(fake),
    }

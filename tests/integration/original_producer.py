"""A producer written the way the original system writes them, kept as it is on purpose.

It is the compatibility contract (docs/contracts.md, "Messages"): a default kafka-python
`KafkaProducer` with a JSON `value_serializer`, no key, the topic's default partitioning, and
fire-and-forget sends (no future is ever read). Customers come from Faker with e-mails on any
domain, books from the Google Books API (the tests' local stand-in) mapped to the message
fields, orders with a float `time.time()` timestamp. Nothing here may be "improved": the
pipeline must accept what it sends.

    python -m tests.integration.original_producer ROUNDS SEED

prints one JSON line with what it sent: customers' ids and e-mails, books' and orders' ids (only
the tests read it; the original prints nothing).
The topics' names come from KAFKA_TOPIC_PREFIX (the original's are `customers`, `books`,
`orders`); the broker from KAFKA_BOOTSTRAP_SERVERS, Google from GOOGLE_BOOKS_BASE_URL.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid

import requests
from faker import Faker
from kafka import KafkaProducer


def google_books(base_url: str, query: str) -> list[dict]:
    """One page of volumes, mapped to the book message as the original mapped them."""
    reply = requests.get(f"{base_url}/volumes", params={"q": query}, timeout=10)
    books = []
    for item in reply.json().get("items", []):
        info = item["volumeInfo"]
        ids = {i["type"]: i["identifier"] for i in info.get("industryIdentifiers", [])}
        books.append(
            {
                "id": item["id"],
                "isbn": ids.get("ISBN_13") or ids.get("ISBN_10"),
                "title": info.get("title"),
                "authors": info.get("authors", []),
                "publishedDate": info.get("publishedDate"),
            }
        )
    return books


def main(rounds: int, seed: int) -> None:
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    fake = Faker("pt_BR")
    Faker.seed(seed)
    random.seed(seed)
    producer = KafkaProducer(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
    )
    books = google_books(os.environ["GOOGLE_BOOKS_BASE_URL"], "python")
    sent: dict[str, list] = {"customers": [], "books": [], "orders": []}
    for _ in range(rounds):
        cust = {"id": str(uuid.uuid4()), "name": fake.name(), "email": fake.email()}
        producer.send(prefix + "customers", cust)
        book = random.choice(books)
        producer.send(prefix + "books", book)
        order = {
            "id": str(uuid.uuid4()),
            "customer_id": cust["id"],
            "book_id": book["id"],
            "quantity": random.randint(1, 5),
            "timestamp": time.time(),
        }
        producer.send(prefix + "orders", order)
        sent["customers"].append([cust["id"], cust["email"]])
        sent["books"].append(book["id"])
        sent["orders"].append(order["id"])
        time.sleep(0.005)
    producer.flush()  # the original's loop runs on; this one ends, so let the I/O thread finish
    print(json.dumps(sent))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

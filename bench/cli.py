"""How fast the operator CLI answers: wall time of whole `python -m bookstore` processes.

    .venv/bin/python -m bench.cli [--repeat 7]

Times `--help`, and `history` of a customer with 20 orders (seeded through the stores' own writes
into a namespace of its own, `bench_cli`, Redis db 4), each run as a fresh process, as an
operator runs them. Prints the median and the fastest of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bookstore.config import load_settings
from bookstore.entities import BOOKS, CUSTOMERS, ORDERS, open_stores
from bookstore.namespace import Namespace
from bookstore.records import Record
from bookstore.schemas import parse

REPO = Path(__file__).resolve().parent.parent

NAMESPACE = Namespace("bench_cli", {"redis_db": 4})
STORES = ("postgres", "mongo", "redis")  # what `history` reads


def seed(orders: int = 20) -> tuple[dict[str, str], str]:
    """A customer with `orders` orders of 5 books, written through the stores' own writes into
    a namespace of its own; the environment to run the CLI with."""
    base = load_settings()
    mine = NAMESPACE.reset(base, STORES)
    cid = str(uuid.uuid4())
    books = [{"id": f"vol-{i}", "title": f"Livro {i}", "authors": [f"A{i}"]} for i in range(5)]
    entities = {
        CUSTOMERS: [{"id": cid, "name": "Ana", "email": f"{cid}@example.com"}],
        BOOKS: books,
        ORDERS: [
            {
                "id": str(uuid.uuid4()),
                "customer_id": cid,
                "book_id": books[i % 5]["id"],
                "quantity": 1,
                "timestamp": 1_700_000_000 + i,
            }
            for i in range(orders)
        ],
    }
    with open_stores(mine, list(entities)) as stores:
        for name, values in entities.items():
            records = [
                Record(name, 0, i, None, 0, json.dumps(v).encode()) for i, v in enumerate(values)
            ]
            model = base.entities.by_name[name].model_class()
            stores[name].write([(parse(model, r.value), r) for r in records])
    return NAMESPACE.env(base, STORES), cid


def wall(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bookstore", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bookstore {' '.join(args)} failed: {result.stderr.strip()}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env, cid = seed()
    for label, command in (("--help", ["--help"]), ("history (20 orders)", ["history", cid])):
        wall(env, *command)  # warm the file cache and .pyc files
        times = [wall(env, *command) for _ in range(args.repeat)]
        print(f"{label:<22} median {statistics.median(times):.2f} s, fastest {min(times):.2f} s")


if __name__ == "__main__":
    main()

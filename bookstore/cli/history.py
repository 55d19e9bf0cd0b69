"""`python -m bookstore history`: one customer's orders, joined across the three stores."""

from __future__ import annotations

import uuid

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_NOT_FOUND,
    CliError,
    JsonOption,
    build_table,
    console,
    print_json,
    reporting_errors,
)
from bookstore.config import load_settings
from bookstore.entities import BOOKS, CUSTOMERS, ORDERS, open_stores


def _customer_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a customer id (a UUID)") from None


@app.command()
def history(
    customer_id: str = typer.Argument(..., help="the customer's id (UUID)"),
    limit: int = typer.Option(20, "--limit", min=1, help="newest orders to show"),
    as_json: bool = JsonOption,
) -> None:
    """A customer (PostgreSQL), their orders newest first (Redis), each book (MongoDB)."""
    settings = load_settings(stores=True)
    cid = _customer_id(customer_id)
    with reporting_errors(), open_stores(settings, (CUSTOMERS, ORDERS, BOOKS)) as stores:
        customer = stores[CUSTOMERS].get(cid)
        placed = stores[ORDERS].history(cid, limit)
        if customer is None and not placed:
            raise CliError(f"unknown customer {cid}: not in PostgreSQL, no orders", EXIT_NOT_FOUND)
        titles = stores[BOOKS].get_many({o.book_id for o in placed}) if placed else {}

    rows = []
    for o in placed:
        book = titles.get(o.book_id)
        rows.append(
            {
                "id": o.id,
                "timestamp": o.timestamp,
                "quantity": o.quantity,
                "book_id": o.book_id,
                "book": None
                if book is None
                else {"title": book.get("title"), "authors": book.get("authors") or []},
            }
        )
    who = (
        None
        if customer is None
        else {"id": customer.id, "name": customer.name, "email": customer.email}
    )
    if as_json:
        print_json({"customer": who, "orders": rows})
        return
    out = console()
    if who is None:
        out.print(f"customer {cid}: [yellow]not (yet) in PostgreSQL[/yellow]")
    else:
        out.print(f"[bold]{who['name']}[/bold] <{who['email']}>  {who['id']}")
    table_rows = [
        [
            r["timestamp"].replace("T", " ").removesuffix("Z").split("+")[0],
            r["quantity"],
            r["book"]["title"] if r["book"] else f"(book {r['book_id']} not in MongoDB)",
            ", ".join(r["book"]["authors"]) if r["book"] else "",
        ]
        for r in rows
    ]
    title = f"{len(rows)} order(s), newest first (order ids: --json)"
    out.print(build_table(title, ["when (UTC)", "qty", "title", "authors"], table_rows))

"""`python -m bookstore generate`: publish customers, books and orders now (burst)."""

from __future__ import annotations

import typer

from bookstore import entities
from bookstore.cli.app import app
from bookstore.cli.common import (
    JsonOption,
    build_table,
    console,
    print_json,
    progress,
    reporting_errors,
)
from bookstore.config import load_settings


@app.command()
def generate(
    customers: int = typer.Option(10, "--customers", min=0, help="customers to publish"),
    books: int = typer.Option(10, "--books", min=0, help="books to publish"),
    orders: int = typer.Option(20, "--orders", min=0, help="orders to publish"),
    as_json: bool = JsonOption,
) -> None:
    """Publish that many customers, then books, then orders to Kafka now (same code as beat)."""
    from bookstore.generator import Generator

    settings = load_settings()
    with reporting_errors():  # a server away: one line naming it, exit 4
        gen = Generator(settings)
        gen.prepare()
        with progress(disable=as_json) as bar:
            ids = {
                entities.CUSTOMERS: bar.add_task(entities.CUSTOMERS, total=customers),
                entities.BOOKS: bar.add_task(entities.BOOKS, total=books),
                entities.ORDERS: bar.add_task(entities.ORDERS, total=orders),
            }

            def advance(topic: str, n: int) -> None:
                bar.advance(ids[topic], n)

            n_customers = gen.customers(customers, advance)
            google, faker = gen.books(books, advance)
            n_orders = gen.orders(orders, advance)

    waiting = n_orders < orders  # orders need published customers and books
    if as_json:
        print_json(
            {
                "customers": n_customers,
                "books": {"google": google, "faker": faker},
                "orders": n_orders,
                "orders_not_published": orders - n_orders,
            }
        )
        return
    rows = [
        [entities.CUSTOMERS, n_customers, ""],
        [entities.BOOKS, google + faker, f"{google} from Google, {faker} fallback"],
        [entities.ORDERS, n_orders, "no published customers or books yet" if waiting else ""],
    ]
    console().print(build_table("Published", ["topic", "messages", "detail"], rows))

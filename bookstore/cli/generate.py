"""`python -m bookstore generate`: publish customers, books and orders now (burst)."""

from __future__ import annotations

import redis
import typer
from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bookstore import topics
from bookstore.cli.app import app
from bookstore.config import load_settings
from bookstore.generate import Generator
from bookstore.kafka import KafkaUnavailable


@app.command()
def generate(
    customers: int = typer.Option(10, "--customers", min=0, help="customers to publish"),
    books: int = typer.Option(10, "--books", min=0, help="books to publish"),
    orders: int = typer.Option(20, "--orders", min=0, help="orders to publish"),
) -> None:
    """Publish that many customers, then books, then orders to Kafka now (same code as beat)."""
    console = Console(stderr=True)
    settings = load_settings()
    try:
        gen = Generator(settings)
        gen.prepare()
        with Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            ids = {
                topics.CUSTOMERS: bar.add_task(topics.CUSTOMERS, total=customers),
                topics.BOOKS: bar.add_task(topics.BOOKS, total=books),
                topics.ORDERS: bar.add_task(topics.ORDERS, total=orders),
            }

            def advance(topic: str, n: int) -> None:
                bar.advance(ids[topic], n)

            n_customers = gen.customers(customers, advance)
            google, faker = gen.books(books, advance)
            n_orders = gen.orders(orders, advance)
    except (KafkaUnavailable, KafkaError) as exc:
        typer.echo(f"error: Kafka: {exc}", err=True)
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        # the message names host:port; the URL itself may hold a password
        typer.echo(f"error: Redis: {exc}", err=True)
        raise typer.Exit(1) from None

    table = Table(title="Published")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    table.add_column("detail")
    table.add_row(topics.CUSTOMERS, str(n_customers), "")
    table.add_row(topics.BOOKS, str(google + faker), f"{google} from Google, {faker} fallback")
    detail = "" if n_orders == orders else "no published customers or books yet"
    table.add_row(topics.ORDERS, str(n_orders), detail)
    Console().print(table)

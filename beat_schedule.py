"""Periodic generation tasks run by `celery -A tasks beat` (exactly one beat may run: a second
beat would double every rate). Rates come from the GENERATE_* settings.

Each entry expires after one interval: ticks missed while no `generate` worker was consuming
are dropped instead of arriving as a burst later.
"""

from __future__ import annotations

from typing import Any

from bookstore.config import Settings

GENERATE_TASKS = "tasks.generate.generate_"  # + customers | books | orders (tasks/generate.py)


def schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's `beat_schedule`: one entry per generated entity, at its rate per tick."""
    every = settings.generate_interval_seconds
    per_tick = {
        "customers": settings.generate_customers_per_tick,
        "books": settings.generate_books_per_tick,
        "orders": settings.generate_orders_per_tick,
    }
    return {
        f"generate-{what}": {
            "task": GENERATE_TASKS + what,
            "schedule": every,
            "args": (n,),
            "options": {"expires": every},
        }
        for what, n in per_tick.items()
    }

"""Periodic generation tasks run by `celery -A tasks beat` (exactly one beat may run: a second
beat would double every rate). Rates come from GENERATE_* environment variables.

Each entry expires after one interval: ticks missed while no `generate` worker was consuming
are dropped instead of arriving as a burst later.
"""

from bookstore.config import load_settings

_s = load_settings()
_every = _s.generate_interval_seconds
_opts = {"expires": _every}

beat_schedule: dict = {
    "generate-customers": {
        "task": "tasks.generate.generate_customers",
        "schedule": _every,
        "args": (_s.generate_customers_per_tick,),
        "options": _opts,
    },
    "generate-books": {
        "task": "tasks.generate.generate_books",
        "schedule": _every,
        "args": (_s.generate_books_per_tick,),
        "options": _opts,
    },
    "generate-orders": {
        "task": "tasks.generate.generate_orders",
        "schedule": _every,
        "args": (_s.generate_orders_per_tick,),
        "options": _opts,
    },
}

"""The Celery app: `celery -A tasks worker -Q <queue>` / `celery -A tasks beat`."""

from celery import Celery
from celery.signals import worker_init

app = Celery(
    "bookstore",
    include=["tasks.persist", "tasks.audit", "tasks.generate"],
    task_cls="tasks.policy:PolicyTask",  # every task follows the one error policy
)
app.config_from_object("celeryconfig")


@worker_init.connect
def _declare_queues(sender, **_) -> None:
    """Before consuming: the parked queue must exist before any task can be rejected into it."""
    from tasks.queues import declare

    declare(sender.app)

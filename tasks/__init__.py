"""The Celery app: `celery -A tasks worker -Q <queue>` / `celery -A tasks beat`."""

from celery import Celery

app = Celery("bookstore", include=["tasks.persist", "tasks.audit", "tasks.generate"])
app.config_from_object("celeryconfig")

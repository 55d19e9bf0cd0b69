"""A one-task Celery app on the product's own configuration, for the RabbitMQ smoke test."""

from pathlib import Path

from kombu import Exchange, Queue

from tasks import app

app.conf.task_queues = (*app.conf.task_queues, Queue("smoke", Exchange("smoke"), "smoke"))


@app.task(name="tests.smoke_app.touch", queue="smoke")
def touch(path: str, text: str) -> None:
    Path(path).write_text(text)

"""A one-task Celery app on the product's own configuration, for the RabbitMQ smoke test."""

from pathlib import Path

from kombu import Exchange, Queue

from bookstore.broker import QUORUM
from tasks import app

# A quorum queue, as every queue of the product (and as Celery declares a queue it does not know)
SMOKE = Queue("smoke", Exchange("smoke"), "smoke", durable=True, queue_arguments=QUORUM)
app.conf.task_queues = (*app.conf.task_queues, SMOKE)


@app.task(name="tests.smoke_app.touch", queue="smoke")
def touch(path: str, text: str) -> None:
    Path(path).write_text(text)

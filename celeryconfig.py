"""Celery configuration: at-least-once execution, one durable queue per store, JSON only."""

from beat_schedule import beat_schedule  # noqa: F401  (Celery reads it from this module)
from bookstore.config import load_settings
from bookstore.entities import (
    AUDIT_QUEUE,
    AUDIT_TASK,
    GENERATE_QUEUE,
    STORE_QUEUE,
    STORE_TASK,
)
from tasks.queues import TASK_QUEUES

_settings = load_settings()

broker_url = _settings.celery_broker_url
# Publisher confirms: a publish returns only after RabbitMQ took responsibility for the message.
broker_transport_options = {"confirm_publish": True}
broker_connection_retry_on_startup = True

# A direct exchange per queue, each dead-lettering into `parked` (tasks/queues.py).
task_queues = TASK_QUEUES
task_default_queue = GENERATE_QUEUE
task_routes = {
    **{
        task: {"queue": STORE_QUEUE[topic], "routing_key": STORE_QUEUE[topic]}
        for topic, task in STORE_TASK.items()
    },
    AUDIT_TASK: {"queue": AUDIT_QUEUE, "routing_key": AUDIT_QUEUE},
    "tasks.generate.*": {"queue": GENERATE_QUEUE, "routing_key": GENERATE_QUEUE},
}

# At-least-once: ack after the task ran; a task whose worker process died is requeued. A task
# never fails silently: it retries (tasks/policy.py) and, when it must not run again, is rejected
# without requeue, which RabbitMQ turns into a message in the `parked` queue, never a drop.
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = False
task_acks_on_timeout = False
worker_prefetch_multiplier = 1
task_default_delivery_mode = "persistent"

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# Events for Flower: tasks per queue, live.
worker_send_task_events = True
task_send_sent_event = True

timezone = "UTC"
enable_utc = True

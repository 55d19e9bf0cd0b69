"""Celery configuration: at-least-once execution, one durable queue per store, JSON only."""

from kombu import Exchange, Queue

from beat_schedule import beat_schedule  # noqa: F401  (Celery reads it from this module)
from bookstore.config import load_settings
from bookstore.topics import (
    AUDIT_QUEUE,
    AUDIT_TASK,
    CELERY_QUEUES,
    GENERATE_QUEUE,
    STORE_QUEUE,
    STORE_TASK,
)

_settings = load_settings()

broker_url = _settings.celery_broker_url
# Publisher confirms: a publish returns only after RabbitMQ took responsibility for the message.
broker_transport_options = {"confirm_publish": True}
broker_connection_retry_on_startup = True

# A direct exchange per queue: a task is delivered to its own queue only, never to every worker.
task_queues = tuple(
    Queue(q, Exchange(q, type="direct"), routing_key=q, durable=True) for q in CELERY_QUEUES
)
task_default_queue = GENERATE_QUEUE
task_routes = {
    **{
        task: {"queue": STORE_QUEUE[topic], "routing_key": STORE_QUEUE[topic]}
        for topic, task in STORE_TASK.items()
    },
    AUDIT_TASK: {"queue": AUDIT_QUEUE, "routing_key": AUDIT_QUEUE},
    "tasks.generate.*": {"queue": GENERATE_QUEUE, "routing_key": GENERATE_QUEUE},
}

# At-least-once: ack after the task ran; a task whose worker process died is requeued.
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure_or_timeout = True
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

"""Celery configuration: at-least-once execution, one durable queue per store, JSON only.

The one module that reads the environment when imported: every Celery process (worker, beat,
Flower, the bridge's publisher) gets its settings here, and the tasks take them from the app
(`tasks.settings()`; a private name, so `celery inspect conf` never shows them). A bad value
stops the process with one line naming it.
"""

from beat_schedule import schedule
from bookstore.config import ConfigError, load_settings
from bookstore.entities import AUDIT_QUEUE, AUDIT_TASK, ENTITIES, GENERATE_QUEUE
from tasks.queues import TASK_QUEUES

try:
    _bookstore_settings = load_settings()
except ConfigError as exc:
    raise SystemExit(str(exc)) from None

broker_url = _bookstore_settings.celery_broker_url
# Publisher confirms: a publish returns only after RabbitMQ took responsibility for the message.
broker_transport_options = {"confirm_publish": True}
broker_connection_retry_on_startup = True

# A direct exchange per queue, each dead-lettering into `parked` (tasks/queues.py).
task_queues = TASK_QUEUES
task_default_queue = GENERATE_QUEUE
task_routes = {
    **{e.task: {"queue": e.queue, "routing_key": e.queue} for e in ENTITIES},
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

beat_schedule = schedule(_bookstore_settings)

timezone = "UTC"
enable_utc = True

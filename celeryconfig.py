"""Celery configuration: at-least-once execution, one quorum queue per store, JSON only.

The one module that reads the environment when imported: every Celery process (worker, beat,
Flower, the bridge's publisher) gets its settings here, and the tasks take them from the app
(`tasks.settings()`; a private name, so `celery inspect conf` never shows them). A bad value
stops the process with one line naming it.
"""

from beat_schedule import schedule
from bookstore.config import ConfigError, load_settings
from bookstore.entities import AUDIT_QUEUE, GENERATE_QUEUE
from tasks.queues import AUDIT_TASK, persist_task, queues_of

try:  # with every store's settings: the workers open stores
    _bookstore_settings = load_settings(stores=True)
except ConfigError as exc:
    raise SystemExit(str(exc)) from None
_entities = _bookstore_settings.entities

# One node, or every node of a cluster separated by `;`: kombu fails over to the next.
broker_url = _bookstore_settings.celery_broker_url
# Publisher confirms: a publish returns only after RabbitMQ took responsibility for the message.
broker_transport_options = {"confirm_publish": True}
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # an outage of any length: reconnect until it ends
# A node that died without closing its connections (cut off, powered down) is noticed within
# two heartbeats (Celery's 120 s default: four minutes of a worker consuming nothing).
broker_heartbeat = 10

# A quorum queue and a topic exchange per queue, each dead-lettering into `parked`
# (tasks/queues.py); a retried task's countdown waits in RabbitMQ (tasks/consumer.py).
task_queues = queues_of(_entities)
task_create_missing_queue_type = "quorum"  # a queue named by hand (-Q other) as well
worker_consumer = "tasks.consumer:Consumer"
task_default_queue = GENERATE_QUEUE
task_routes = {
    **{persist_task(e): {"queue": e.queue, "routing_key": e.queue} for e in _entities},
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

# A worker's remote-control queue is not exclusive: an exclusive one stays locked to the old
# connection while its node is cut off, and a worker that failed over to another node died of it
# (RESOURCE_LOCKED, "unrecoverable"). It still expires once no worker consumes it.
control_queue_exclusive = False
# A task running when the connection is lost finishes (it cannot be acknowledged, so it is
# redelivered: the stores are idempotent); said here because Celery 6 will cancel it instead.
worker_cancel_long_running_tasks_on_connection_loss = False

# Events for Flower: tasks per queue, live, from the moment a worker receives one. No
# `task-sent` event: it doubled what the bridge publishes and waits a confirm for per task
# (~15-20% of its CPU per task, README "Performance"); Flower lists every task without it. Nor
# `task-started` (tasks/events.py).
worker_send_task_events = True
task_send_sent_event = False

beat_schedule = schedule(_bookstore_settings)

timezone = "UTC"
enable_utc = True

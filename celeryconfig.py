"""Celery configuration: at-least-once execution, one quorum queue per store, JSON only.

The one module that reads the environment when imported: every Celery process (worker, beat,
Flower) gets its settings here, and the tasks take them from the app (`tasks.settings()`; a
private name, so `celery inspect conf` never shows them). A bad value stops the process with one
line naming it. The stores' settings are not read here: a worker reads those of the stores it
writes when it starts (tasks/__init__.py), so beat and Flower neither need nor load them.
"""

from beat_schedule import schedule
from bookstore.broker import (
    AUDIT_TASK,
    HEARTBEAT,
    PUBLISH_RETRY_POLICY,
    TRANSPORT_OPTIONS,
    broker_tls,
    persist_task,
    queues_of,
)
from bookstore.config import ConfigError, load_settings
from bookstore.entities import AUDIT_QUEUE, GENERATE_QUEUE

try:
    _bookstore_settings = load_settings()
except ConfigError as exc:
    raise SystemExit(str(exc)) from None
_entities = _bookstore_settings.entities

# One node, or every node of a cluster separated by `;`: kombu fails over to the next.
broker_url = _bookstore_settings.celery_broker_url
# amqps://: each node's certificate checked against CELERY_BROKER_CAFILE and the address dialled.
broker_use_ssl = broker_tls(_bookstore_settings) or False
# Publisher confirms: a publish returns only after RabbitMQ took responsibility for the message;
# heartbeats, and no wait for a node longer than two of them (bookstore/broker.py).
broker_transport_options = TRANSPORT_OPTIONS
broker_heartbeat = HEARTBEAT
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # an outage of any length: reconnect until it ends
task_publish_retry_policy = PUBLISH_RETRY_POLICY

# A quorum queue and a topic exchange per queue, each dead-lettering into `parked`
# (bookstore/broker.py); a retried task's countdown waits in RabbitMQ (tasks/consumer.py).
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

# Remote control (`celery inspect`, Flower's worker pages): each worker's mailbox and each
# caller's reply queue are quorum queues (tasks/control.py), so they outlive the loss, pause or
# cut-off of any node, wherever they were declared: durable, shared, deleted by RabbitMQ once
# unused for `control_queue_expires` (10 s).
control_queue_durable = True
control_queue_exclusive = False
# A channel error while the worker's consumer starts (a queue whose node just went away, a leader
# being elected) restarts the consumer, as a lost connection does, instead of ending the worker.
broker_channel_error_retry = True
# A task running when the connection is lost finishes (it cannot be acknowledged, so it is
# redelivered: the stores are idempotent); said here because Celery 6 will cancel it instead.
worker_cancel_long_running_tasks_on_connection_loss = False

# Events for Flower: tasks per queue, live, from the moment a worker receives one. No
# `task-sent` event: it doubled what the bridge publishes and waits a confirm for per task
# (~15-20% of its CPU per task, docs/performance.md); Flower lists every task without it. Nor
# `task-started` (tasks/events.py).
worker_send_task_events = True
task_send_sent_event = False

beat_schedule = schedule(_bookstore_settings)

timezone = "UTC"
enable_utc = True

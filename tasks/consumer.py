"""The worker's consumer: Celery's own, but native delayed delivery is set up through the
RabbitMQ node the consumer is connected to (`worker_consumer` in celeryconfig.py).

With quorum queues Celery waits out a retried task's countdown in RabbitMQ (28 `celery_delayed_*`
queues and exchanges, declared and bound to every task queue's exchange by a consumer step).
Celery 5.7's step declares them once per URL of `broker_url`, retrying an unreachable node for
~9 s each time, on every (re)connection: after a node of a cluster died, a worker that failed
over to another node consumed nothing for ~18 s. The topology is cluster-wide, so declaring it
through the live connection is enough; if that fails, the connection is what fails, and the
consumer restarts (and declares again) anyway. Each worker binds the queues it consumes (Celery
binds every queue of the app): a retry goes back to the queue it came from, and a worker's
RabbitMQ user may touch its own queues only (docs/security.md).
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

log = logging.getLogger(__name__)


class DelayedDeliveryOnThisNode(DelayedDelivery):
    def start(self, c: CeleryConsumer) -> None:
        self._validate_configuration(c.app)
        with c.connection.clone() as conn:
            try:
                declare_native_delayed_delivery_exchanges_and_queues(
                    conn, c.app.conf.broker_native_delayed_delivery_queue_type
                )
                for queue in c.app.amqp.queues.consume_from.values():
                    bind_queue_to_native_delayed_delivery_exchange(conn, queue)
            except Exception as exc:  # the consumer's own connection will fail and restart it
                log.warning("delayed delivery set-up through %s failed: %r", conn.as_uri(), exc)


_CELERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


class Consumer(CeleryConsumer):
    class Blueprint(CeleryConsumer.Blueprint):
        default_steps = [
            f"{__name__}:DelayedDeliveryOnThisNode" if step == _CELERY_STEP else step
            for step in CeleryConsumer.Blueprint.default_steps
        ]

"""Remote control (`celery inspect`, `celery control`, Flower's worker pages) on queues that
outlive any one RabbitMQ node (`Celery(control=...)` in tasks/__init__.py).

Each worker listens on its mailbox queue `<worker name>.celery.pidbox`, and each caller waits for
replies on `<id>.reply.celery.pidbox`. Celery declares both as classic queues, which live on the
node they were declared on: exclusive (locked to the declaring connection, so a worker that
failed over while its old node was cut off could not take its own mailbox back: RESOURCE_LOCKED),
or transient and shared (gone with its node, so a worker reconnecting elsewhere died binding it:
NOT_FOUND; and refused outright by RabbitMQ 4.3). Here both are quorum queues: replicated on
every node, declared the same way again from whichever node a process reconnects to, and deleted
by RabbitMQ once unused for `control_queue_expires` (their messages, commands and replies, expire
after `control_queue_ttl`). On one node they are quorum queues too, of one member.
"""

from __future__ import annotations

from celery.app.control import Control as CeleryControl
from kombu import Queue, pidbox

from bookstore.broker import QUORUM


class Mailbox(pidbox.Mailbox):
    def get_queue(self, hostname: str) -> Queue:
        return _quorum(super().get_queue(hostname))

    def get_reply_queue(self) -> Queue:
        return _quorum(super().get_reply_queue())


def _quorum(queue: Queue) -> Queue:
    queue.queue_arguments = {**(queue.queue_arguments or {}), **QUORUM}
    return queue


class Control(CeleryControl):
    Mailbox = Mailbox

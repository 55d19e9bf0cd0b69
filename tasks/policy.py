"""Every task's failures follow the one error policy (bookstore.errors), in one place.

- Transient (a server away): retry with the one backoff, for as long as it takes.
- Anything else that escapes a task (persistence tasks have already dead-lettered the records at
  fault, so this is about none of them): retry with the same backoff up to PARK_AFTER_RETRIES
  times, then park: the message is rejected without requeue and RabbitMQ dead-letters it, as it
  is, into the `parked` queue (`python -m bookstore parked list|requeue`). Flower shows the task
  as failed with the reason. No failure is ever acknowledged away.
- A generation task is a clock tick, not data: past its retries it is rejected and dropped
  (its queue, `generate`, parks nothing), said in the log and in Flower as a failure.
"""

from __future__ import annotations

import logging
import math
import time

from celery import Task
from celery.exceptions import Reject

import tasks
from bookstore.broker import declare_parked, parks
from bookstore.errors import Verdict, classify, describe, retry_delay

log = logging.getLogger(__name__)


class Parked(RuntimeError):
    """Why a task was parked (shown by Flower and in the worker's log)."""


class Dropped(RuntimeError):
    """Why a generation tick was given up (shown by Flower and in the worker's log)."""


class PolicyTask(Task):
    Request = "tasks.events:Request"  # which task events the workers send (for Flower)
    # The policy below decides when to stop; Celery's own limit (3 by default, and what
    # `retry(max_retries=None)` falls back to) would fail a task during a long outage.
    max_retries = None

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if self.request.called_directly:
                raise
            raise self._after(exc) from exc

    def _after(self, exc: Exception) -> Exception:
        """The Retry to raise, or the Reject that parks the task."""
        settings = tasks.settings()
        attempt = self.request.retries
        # Whole seconds, at least one: the countdown waits in RabbitMQ's delay queues, which
        # count in seconds (Celery refuses a countdown under 1 s there, by parking the task).
        delay = math.ceil(retry_delay(attempt, settings.retry_max_seconds))
        why = describe(exc)
        if classify(exc, settings.entities.loaded_stores()) is Verdict.TRANSIENT:
            log.warning("%s: %s; retrying in %ds", self.name, why, delay)
        elif attempt < settings.park_after_retries:
            log.error(
                "%s failed (%s); retry %d of %d in %ds",
                self.name,
                why,
                attempt + 1,
                settings.park_after_retries,
                delay,
                exc_info=exc,
            )
        elif not parks(self.app.amqp.router.route({}, self.name)["queue"].name):
            log.error("%s dropped after %d retries (a clock tick): %s", self.name, attempt, why)
            return Reject(Dropped(f"after {attempt} retries: {why}"), requeue=False)
        else:
            # At-least-once dead-lettering keeps the task until `parked` exists, but it would
            # only arrive minutes later.
            with self.app.connection_for_write() as conn:
                declare_parked(conn)
            log.error("%s parked after %d retries: %s", self.name, attempt, why)
            return Reject(Parked(f"after {attempt} retries: {why}"), requeue=False)
        try:
            return self.retry(exc=exc, countdown=delay, throw=False)
        except Exception as publish_error:  # the retry could not be sent (e.g. broker blocked)
            log.warning("%s: could not schedule its retry (%s); requeued", self.name, publish_error)
            time.sleep(delay)  # not a hot loop: the message comes straight back
            return Reject(publish_error, requeue=True)

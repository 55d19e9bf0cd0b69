"""The audit task (queue `audit`): append raw records to messages.log, fsynced before the ack.

A full disk or an I/O error is transient (retried until it works); see tasks/policy.py.
"""

from __future__ import annotations

from typing import Any

from bookstore.broker import AUDIT_TASK
from bookstore.entities import AUDIT_QUEUE
from tasks import app, per_process

_audit = per_process(lambda settings: settings.entities.store(AUDIT_QUEUE).open(settings))


@app.task(name=AUDIT_TASK)
def record_messages(lines: str | list[dict[str, Any]]) -> int:
    """The batch's lines go to the file as the bridge encoded them."""
    return _audit().append(lines)

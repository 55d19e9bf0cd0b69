"""The audit task (queue `audit`): append raw records to messages.log, fsynced before the ack."""

from __future__ import annotations

from typing import Any

from bookstore.config import load_settings
from bookstore.stores import StoreUnavailable
from bookstore.stores.audit import AuditLog
from bookstore.topics import AUDIT_TASK
from tasks import app

_audit = AuditLog(load_settings().audit_log_path)


@app.task(
    name=AUDIT_TASK,
    bind=True,
    autoretry_for=(StoreUnavailable,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=None,
)
def record_messages(self, records: list[dict[str, Any]]) -> int:
    _audit.append(records)
    return len(records)

"""Periodic generation tasks run by `celery -A tasks beat` (exactly one beat may run)."""

beat_schedule: dict = {}

"""Persistence tasks, one per store queue (`postgres`, `mongo`, `redis`)."""

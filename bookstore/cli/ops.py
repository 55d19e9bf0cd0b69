"""Operator commands: stats, history, check, dead-letters."""

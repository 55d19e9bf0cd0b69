"""Both tiers: the tests' configuration, set before anything reads it (tests.support's
`suite_environment`: their own topics, consumer group, vhost and stores)."""

from __future__ import annotations

from tests.support import suite_environment

suite_environment()

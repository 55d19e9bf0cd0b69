"""What the topics must be, without a server: copies, min.insync.replicas, what start-up sets."""

from __future__ import annotations

import pytest

from bookstore.config import ConfigError, load_settings
from bookstore.topic_config import MIN_INSYNC, config_changes, replication, topic_configs


def test_copies_default_to_three_or_the_brokers_there_are():
    settings = load_settings()
    assert replication(settings, 1) == (1, 1)
    assert replication(settings, 2) == (2, 1)
    assert replication(settings, 3) == (3, 2)  # a record Kafka acknowledged is on two brokers
    assert replication(settings, 5) == (3, 2)


def test_explicit_copies_are_kept_and_more_than_the_brokers_is_refused():
    settings = load_settings().replace(kafka_replication_factor=3, kafka_min_insync_replicas=3)
    assert replication(settings, 4) == (3, 3)
    with pytest.raises(ConfigError, match="KAFKA_REPLICATION_FACTOR=3.*1 broker"):
        replication(settings, 1)


def test_every_topic_gets_min_insync_replicas_when_asked():
    configs = topic_configs(load_settings(), min_insync=2)
    assert configs and all(c[MIN_INSYNC] == "2" for c in configs.values())
    assert all(MIN_INSYNC not in c for c in topic_configs(load_settings()).values())


def test_start_up_never_sets_more_insync_replicas_than_a_topic_has_copies_nor_compacts():
    wanted = {
        "one-copy": {MIN_INSYNC: "2", "retention.ms": "-1"},
        "three-copies": {MIN_INSYNC: "2", "cleanup.policy": "compact"},
    }
    now = {
        "one-copy": {MIN_INSYNC: "1", "retention.ms": "604800000"},
        "three-copies": {MIN_INSYNC: "1", "cleanup.policy": "delete"},
    }
    copies = {"one-copy": 1, "three-copies": 3}
    assert config_changes(wanted, now, copies) == {
        "one-copy": {"retention.ms": "-1"},  # longer retention: safe
        "three-copies": {MIN_INSYNC: "2"},  # compaction only when asked
    }
    assert config_changes(wanted, now, copies, compact=True)["three-copies"] == {
        MIN_INSYNC: "2",
        "cleanup.policy": "compact",
    }

"""Every offset operation says whether it happened: a commit Kafka refuses raises, naming the
partition (kafka-python's admin client returns such errors instead of raising them)."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from bookstore.kafka import (
    admin_client,
    alter_configs,
    commit_group_offsets,
    group_offsets,
    offsets,
)
from bookstore.topic_config import MAX_MESSAGE_BYTES, current_configs, ensure_topics
from tests.support import CUSTOMERS, wait_until


def test_a_commit_refused_for_a_group_with_an_active_member_raises(settings):
    ensure_topics(settings)
    group = f"test-active-{uuid.uuid4().hex[:8]}"
    member = KafkaConsumer(
        CUSTOMERS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    try:
        wait_until(lambda: member.poll(100) is not None and member.assignment(), 60, "assigned")
        tp = TopicPartition(CUSTOMERS, 0)
        with pytest.raises(KafkaError, match=rf"{group}.*{CUSTOMERS}\[0\]"):
            commit_group_offsets(settings, group, {tp: 0})
    finally:
        member.close(autocommit=False)


def test_a_commit_for_an_idle_group_is_kept(settings):
    ensure_topics(settings)
    group = f"test-idle-{uuid.uuid4().hex[:8]}"
    _, end = offsets(settings, [CUSTOMERS])
    commit_group_offsets(settings, group, end)
    assert group_offsets(settings, group) == end


def test_altered_configs_the_brokers_refuse_are_returned_with_why(settings):
    """The brokers alone validate an alteration: what they refuse comes back, named, and is not
    set; what they accept does not come back."""
    from kafka.admin import ConfigResource

    ensure_topics(settings)
    admin = admin_client(settings)
    try:
        before = current_configs(admin, [CUSTOMERS])[CUSTOMERS][MAX_MESSAGE_BYTES]
        bad = ConfigResource("TOPIC", CUSTOMERS, configs={MAX_MESSAGE_BYTES: "-5"})
        refused = alter_configs(admin, [bad])
        assert list(refused) == [CUSTOMERS] and refused[CUSTOMERS] != "OK"
        assert current_configs(admin, [CUSTOMERS])[CUSTOMERS][MAX_MESSAGE_BYTES] == before
        same = ConfigResource("TOPIC", CUSTOMERS, configs={MAX_MESSAGE_BYTES: before})
        assert alter_configs(admin, [same]) == {}
    finally:
        admin.close()

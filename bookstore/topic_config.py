"""What the topics must be for the log to stay the source of truth, and making them so.

Every topic is created explicitly (never by broker auto-create) with its configuration
(`topic_configs`: retention or compaction), its copies (`replication`: KAFKA_REPLICATION_FACTOR,
by default min(3, brokers)) and `min.insync.replicas` (KAFKA_MIN_INSYNC_REPLICAS, by default 2
with three copies). Processes bring existing topics to it at start-up as far as that loses
nothing and risks nothing (`ensure_topics`); `python -m bookstore topics --apply` does the rest
(compaction, adding copies) after saying what it changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bookstore.config import ConfigError, Settings
from bookstore.entities import Topics, topics
from bookstore.kafka import admin_client, alter_configs

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

log = logging.getLogger(__name__)

# Room for a dead letter's headers (origin, stage, a reason of at most 1,000 characters) on top
# of the largest record its origin topic accepts.
DEAD_LETTER_HEADROOM = 64 * 1024
MAX_MESSAGE_BYTES = "max.message.bytes"
CLEANUP_POLICY = "cleanup.policy"
MIN_INSYNC = "min.insync.replicas"


def topic_configs(settings: Settings, min_insync: int | None = None) -> dict[str, dict[str, str]]:
    """What each topic must keep, by topic: the topics of entities (`customers`, `books`) keep
    every record forever, or, with TOPIC_COMPACTION, are compacted (every record kept for
    TOPIC_COMPACTION_LAG_MS, then the latest per key; records without a key refused); events
    (`orders`) are kept for ORDERS_RETENTION_MS; dead letters for DEAD_LETTERS_RETENTION_MS (-1:
    forever). With `min_insync`, every topic's `min.insync.replicas` too."""
    names = topics(settings)
    whole = {CLEANUP_POLICY: "delete", "retention.ms": "-1"}
    compacted = {
        CLEANUP_POLICY: "compact",
        "min.compaction.lag.ms": str(settings.topic_compaction_lag_ms),
    }
    events = {CLEANUP_POLICY: "delete", "retention.ms": str(settings.orders_retention_ms)}
    entity = compacted if settings.topic_compaction else whole
    configs = {
        **{names.of(e.name): entity if e.compactable else events for e in settings.entities},
        names.dead_letters: {
            CLEANUP_POLICY: "delete",
            "retention.ms": str(settings.dead_letters_retention_ms),
        },
    }
    if min_insync is not None:
        configs = {t: {**c, MIN_INSYNC: str(min_insync)} for t, c in configs.items()}
    return configs


def replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """(copies of every partition, min.insync.replicas) for a cluster of `brokers` brokers:
    KAFKA_REPLICATION_FACTOR, by default min(3, brokers); KAFKA_MIN_INSYNC_REPLICAS, by default
    2 with three copies or more (a record Kafka acknowledged is on two brokers: any one may be
    lost), else 1."""
    copies = settings.kafka_replication_factor or min(3, brokers)
    if copies > brokers:
        raise ConfigError(
            f"configuration error: KAFKA_REPLICATION_FACTOR={copies}, but the Kafka cluster at "
            f"{settings.kafka_bootstrap_servers} has {brokers} broker(s)"
        )
    return copies, settings.kafka_min_insync_replicas or (2 if copies >= 3 else 1)


@dataclass
class TopicsState:
    """What `ensure_topics` left as it is: it needs `topics --apply`."""

    uncompacted: list[str] = field(default_factory=list)  # TOPIC_COMPACTION on, topic not
    under_replicated: dict[str, tuple[int, int]] = field(default_factory=dict)  # (now, wanted)


def ensure_topics(settings: Settings, only: Iterable[str] | None = None) -> TopicsState:
    """Create the missing topics (`only` some of them), configured and replicated as wanted;
    bring existing ones to their configuration (`align_configs`: what loses nothing).

    The dead-letter topic must accept any record its origin topics accepted (a dead letter
    keeps the original bytes): its `max.message.bytes` is raised to the origin topics' largest
    plus headroom, at creation and whenever an origin topic allows more than it does.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = topics(settings)
    chosen = list(names.all if only is None else only)
    admin = admin_client(settings)
    try:
        copies, min_insync = replication(settings, len(admin.describe_cluster()["brokers"]))
        wanted = topic_configs(settings, min_insync)
        missing = set(chosen) - set(admin.list_topics())
        if missing:
            new = [
                NewTopic(
                    name, settings.kafka_partitions, copies, topic_configs=wanted.get(name, {})
                )
                for name in sorted(missing)
            ]
            try:
                admin.create_topics(new)
                log.info("created Kafka topics %s (%d copies)", ", ".join(sorted(missing)), copies)
            except TopicAlreadyExistsError:
                pass  # another process created them first
        wanted = {t: wanted[t] for t in chosen if t in wanted}
        # one reading for all that follows (fitting the dead letters compares with every topic)
        fit = names.dead_letters in chosen
        now = current_configs(admin, names.all if fit else chosen, fresh=missing)
        held = replica_counts(admin, chosen)
        align_configs(admin, wanted, now, held)
        if fit:
            _fit_dead_letters(admin, names, now)
        return TopicsState(
            uncompacted(now, wanted),  # alignment at start-up never turns compaction on
            {t: (n, copies) for t, n in held.items() if n < copies},
        )
    finally:
        admin.close()


def current_configs(
    admin: KafkaAdminClient, names: Iterable[str], fresh: Iterable[str] = ()
) -> dict[str, dict[str, str]]:
    """Every config of each topic, defaults included: {topic: {name: value}}. A topic of
    `fresh`, created a moment ago, may not be known yet to the broker asked (it answered
    without its configs once, on a cluster just started): it is asked again, up to 10 s."""
    from kafka.admin import ConfigResource

    resources = [ConfigResource("TOPIC", t) for t in names]
    deadline = time.monotonic() + 10
    while True:
        described = admin.describe_configs(resources, config_filter="all")["topic"]
        now = {t: {k: c["value"] for k, c in cs.items()} for t, cs in described.items()}
        if all(now.get(t) for t in fresh) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def replica_counts(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """How many copies each topic has: the fewest of any of its partitions."""
    return {
        t["name"]: min(len(p["replica_nodes"]) for p in t["partitions"])
        for t in admin.describe_topics(list(names))
        if t["partitions"]
    }


def align_configs(
    admin: KafkaAdminClient,
    wanted: dict[str, dict[str, str]],
    now: dict[str, dict[str, str]],
    copies: dict[str, int],
    compact: bool = False,
) -> dict[str, dict[str, str]]:
    """Set on existing topics what differs from `wanted` (`now`: their `current_configs`;
    `copies`: their `replica_counts`); returns what was set.

    Longer retention loses nothing, so processes do it at start-up; so does turning compaction
    off (a compacted topic of an earlier release becomes one that keeps every record and
    accepts records without a key). Turning compaction on makes Kafka discard every record
    without a key and, later, the records a newer one with the same key supersedes: only
    `python -m bookstore topics --apply` does it (`compact=True`), after counting the records
    without a key. `min.insync.replicas` is never set above a topic's copies (every write would
    fail): a topic created with fewer copies gets them from `topics --apply` first.
    """
    from kafka.admin import ConfigResource

    changes = config_changes(wanted, now, copies, compact)
    if changes:
        _alter(admin, [ConfigResource("TOPIC", t, configs=c) for t, c in changes.items()])
        for topic, differ in changes.items():
            was = now.get(topic, {}).get(CLEANUP_POLICY, "")
            if differ.get(CLEANUP_POLICY) == "delete" and "compact" in was:
                log.warning(
                    "topic %s is no longer compacted: it keeps every record and accepts records "
                    "without a key (TOPIC_COMPACTION is off)",
                    topic,
                )
            log.info("topic %s: set %s", topic, differ)
    return changes


def config_changes(
    wanted: dict[str, dict[str, str]],
    now: dict[str, dict[str, str]],
    copies: dict[str, int],
    compact: bool = False,
) -> dict[str, dict[str, str]]:
    """What `align_configs` sets: every config that differs from `wanted`, but compaction
    only when `compact`, and min.insync.replicas never above a topic's copies."""
    changes: dict[str, dict[str, str]] = {}
    for topic, configs in wanted.items():
        differ = {k: v for k, v in configs.items() if now.get(topic, {}).get(k) != v}
        if differ.get(CLEANUP_POLICY) == "compact" and not compact:
            del differ[CLEANUP_POLICY]
        if MIN_INSYNC in differ and int(differ[MIN_INSYNC]) > copies.get(topic, 0):
            del differ[MIN_INSYNC]
        if differ:
            changes[topic] = differ
    return changes


def uncompacted(now: dict[str, dict[str, str]], wanted: dict[str, dict[str, str]]) -> list[str]:
    """The topics `wanted` compacted that are not, by their configs `now`."""
    return [
        t
        for t, c in wanted.items()
        if c.get(CLEANUP_POLICY) == "compact" and now[t][CLEANUP_POLICY] != "compact"
    ]


def add_copies(
    admin: KafkaAdminClient,
    names: Iterable[str],
    copies: int,
    on_wait: Callable[[int], None] = lambda partitions: None,
    timeout: float = 600.0,
) -> list[str]:
    """Give every partition of these topics `copies` replicas (keeping the ones it has, its
    leader first; new ones spread over the brokers), then wait until Kafka copied the data
    (`on_wait(partitions still moving)` every second). Returns the topics changed. Copies are
    only ever added: fewer is less safe, so it is left to an operator."""
    from kafka import TopicPartition

    brokers = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
    plan = {}
    for topic in admin.describe_topics(list(names)):
        for p in topic["partitions"]:
            replicas = list(p["replica_nodes"])
            others = [b for b in brokers if b not in replicas]
            start = p["partition_index"] % max(1, len(others))
            others = others[start:] + others[:start]  # new copies spread over the brokers
            if len(replicas) < copies:
                tp = TopicPartition(topic["name"], p["partition_index"])
                plan[tp] = replicas + others[: copies - len(replicas)]
    if not plan:
        return []
    refused = {tp: e for tp, e in admin.alter_partition_reassignments(plan).items() if e}
    if refused:
        tp, error = next(iter(refused.items()))
        raise error(f"Kafka refused to add copies of {tp.topic}[{tp.partition}]")
    deadline = time.monotonic() + timeout
    while moving := admin.list_partition_reassignments(list(plan)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(moving)} partition(s) still being copied after {timeout}s")
        on_wait(len(moving))
        time.sleep(1)
    return sorted({tp.topic for tp in plan})


def _fit_dead_letters(admin: KafkaAdminClient, names: Topics, now: dict[str, dict[str, str]]):
    from kafka.admin import ConfigResource

    limits = {t: int(now[t][MAX_MESSAGE_BYTES]) for t in names.all}
    needed = max(limits[t] for t in names.entities) + DEAD_LETTER_HEADROOM
    if limits[names.dead_letters] < needed:
        limit = {MAX_MESSAGE_BYTES: str(needed)}
        if _alter(admin, [ConfigResource("TOPIC", names.dead_letters, configs=limit)]):
            log.info("%s now accepts records up to %d bytes", names.dead_letters, needed)


def _alter(admin: KafkaAdminClient, resources: list) -> bool:
    """Alter topic configs; logs each topic whose configs the brokers refused. True when none."""
    refused = alter_configs(admin, resources)
    for topic, why in refused.items():
        log.error("Kafka refused the configs of topic %s: %s", topic, why)
    return not refused

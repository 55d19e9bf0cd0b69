"""Benchmark: end-to-end pipeline throughput vs a direct sink, on the same servers, same run.

    .venv/bin/python bench/pipeline.py [--messages 20000] [--batch-size 500] [--concurrency 1]

1. produces N valid messages (customers, books, orders in equal parts) to Kafka;
2. direct sink (the ceiling): one process, Kafka consumer -> the same batched store writes and
   audit append the workers do, no Celery;
3. pipeline: the bridge + one Celery worker per queue, as in production;
and prints messages/s for both and the ratio. Each run reads the same records from Kafka (its own
consumer group) and writes into its own empty databases.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg2  # noqa: E402
import pymongo  # noqa: E402
import redis  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

from bookstore.config import load_settings  # noqa: E402
from bookstore.kafka import ensure_topics  # noqa: E402
from bookstore.topics import ENTITY_TOPICS  # noqa: E402
from tests.conftest import Processes  # noqa: E402
from tests.pipeline import build_dataset, produce  # noqa: E402


def fresh_namespace(name: str, redis_db: int) -> dict[str, str]:
    """Empty PostgreSQL/MongoDB/Redis namespaces for one run."""
    base = load_settings()
    admin = psycopg2.connect(base.postgres_dsn.rsplit("/", 1)[0] + "/bookstore")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    pymongo.MongoClient(base.mongo_uri).drop_database(name)
    redis_url = base.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    return {
        "POSTGRES_DSN": base.postgres_dsn.rsplit("/", 1)[0] + f"/{name}",
        "MONGO_DB": name,
        "REDIS_URL": redis_url,
        "AUDIT_LOG_PATH": str(Path(tempfile.mkdtemp(prefix=f"{name}-")) / "messages.log"),
        "BRIDGE_GROUP_ID": f"{name}-{uuid.uuid4().hex[:6]}",
    }


def commit_offsets(group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=load_settings().kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    consumer.close()


def end_offsets() -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=load_settings().kafka_bootstrap_servers)
    tps = [TopicPartition(t, p) for t in ENTITY_TOPICS for p in consumer.partitions_for_topic(t)]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return ends


def count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def run_direct(env: dict[str, str], n: int, batch: int) -> float:
    """The ceiling: consume and write in one process, no Celery in between."""
    os.environ.update(env)
    from bookstore.persist import Persister
    from bookstore.records import Record
    from bookstore.stores.audit import AuditLog

    settings = load_settings()
    persister, audit = Persister(settings), AuditLog(settings.audit_log_path)
    consumer = KafkaConsumer(
        *ENTITY_TOPICS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.bridge_group_id,
        enable_auto_commit=False,
        max_poll_records=batch,
    )
    done, started = 0, time.perf_counter()
    while done < n:
        for tp, messages in consumer.poll(timeout_ms=500, max_records=batch).items():
            records = [Record.from_kafka(m) for m in messages]
            persister.persist(tp.topic, records)
            audit.append([r.to_wire() for r in records])
            done += len(records)
        consumer.commit()
    elapsed = time.perf_counter() - started
    consumer.close()
    return n / elapsed


def run_pipeline(env: dict[str, str], n: int, batch: int, concurrency: int) -> float:
    processes = Processes(Path(env["AUDIT_LOG_PATH"]).parent)
    env = {**env, "BRIDGE_BATCH_SIZE": str(batch)}
    for queue in ("postgres", "mongo", "redis", "audit"):
        processes.worker(queue, concurrency=concurrency, env=env)
    time.sleep(8)  # workers up before the clock starts
    started = time.perf_counter()
    processes.start("bridge", "-m", "bridge", env=env)
    try:
        stores_done = _stores_counter(env)
        while count_lines(env["AUDIT_LOG_PATH"]) < n or stores_done() < n:
            time.sleep(0.2)
        return n / (time.perf_counter() - started)
    finally:
        processes.stop_all()


def _stores_counter(env: dict[str, str]):
    pg = psycopg2.connect(env["POSTGRES_DSN"])
    pg.autocommit = True
    mongo = pymongo.MongoClient(load_settings().mongo_uri)[env["MONGO_DB"]]
    r = redis.Redis.from_url(env["REDIS_URL"])

    def count() -> int:
        with pg.cursor() as cur:
            try:
                cur.execute("SELECT count(*) FROM customers")
                customers = cur.fetchone()[0]
            except psycopg2.errors.UndefinedTable:
                customers = 0
        return customers + mongo.books.estimated_document_count() + r.scard("orders")

    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="processes per worker")
    args = parser.parse_args()
    third = args.messages // 3
    ensure_topics(load_settings())
    start = end_offsets()
    ds = build_dataset(third, third, args.messages - 2 * third)
    n = len(ds.messages[: args.messages])
    t = time.perf_counter()
    produce(load_settings(), ds.messages[:n])
    print(f"produced {n} messages in {time.perf_counter() - t:.1f}s")

    direct_env = fresh_namespace("bench_direct", 3)
    commit_offsets(direct_env["BRIDGE_GROUP_ID"], start)
    pipeline_env = fresh_namespace("bench_pipeline", 4)
    commit_offsets(pipeline_env["BRIDGE_GROUP_ID"], start)

    pipeline = run_pipeline(pipeline_env, n, args.batch_size, args.concurrency)
    direct = run_direct(direct_env, n, args.batch_size)
    print(f"direct sink : {direct:8.0f} messages/s")
    print(
        f"pipeline    : {pipeline:8.0f} messages/s  (batch {args.batch_size}, "
        f"{args.concurrency} process(es) per worker)"
    )
    print(f"ratio       : {pipeline / direct:8.2f} of the direct sink")


if __name__ == "__main__":
    main()

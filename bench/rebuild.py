"""What a rebuild and a verification cost: seconds per million records, on this machine.

    .venv/bin/python -m bench.rebuild [--records 300000]

Appends `--records` valid records (as many of each entity of the table) to the topics, then, in
this one process, with the library code the CLI runs: reads the whole log without storing
anything (the baseline: what Kafka and kafka-python cost alone), rebuilds every store into the
namespace `bench_rebuild` (Redis database 14) from the first offset, and verifies that namespace
against the log. Prints records/s, seconds per million records, each as a ratio to the baseline,
and the verification's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.harness import bench_settings, producer, records
from bookstore.entities import topics
from bookstore.kafka import read_topics
from bookstore.namespace import Namespace
from bookstore.rebuild import rebuild
from bookstore.topic_config import ensure_topics
from bookstore.verify import verify

NAMESPACE = Namespace("bench_rebuild", {"redis_db": 14})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300_000, help="records to append")
    args = parser.parse_args()
    live = bench_settings()  # its audit log in a directory of its own: the namespace's beside
    ensure_topics(live)
    names = topics(live)
    kafka = producer(live)
    for entity, key, value in records(args.records, live.entities):
        kafka.send(names.of(entity), key=key, value=value)
    kafka.flush()
    kafka.close()
    NAMESPACE.create(live)
    target = NAMESPACE.settings(live)
    stores = [spec.name for spec in live.entities.stores]

    began = time.monotonic()
    in_log = sum(len(batch) for batch in read_topics(live, names.entities))
    baseline = in_log / (time.monotonic() - began)
    print(f"log: {in_log:,} records on the entity topics; reading them alone: {baseline:,.0f}/s")

    columns = ("records", "records/s", "s per million", "/ read alone")
    print(f"\n{'step':<22}" + "".join(f"{c:>14}" for c in columns))

    def line(step: str, n: int, seconds: float) -> None:
        rate = n / seconds
        print(f"{step:<22}{n:>14,}{rate:>14,.0f}{1e6 / rate:>14,.1f}{rate / baseline:>14.2f}")

    seconds, read = 0.0, 0
    entity_stores = set(live.entities.store_queues)
    for store in stores:
        summary = rebuild(target, store, from_start=True)
        line(f"rebuild {store}", summary.read, summary.seconds)
        if store in entity_stores:  # they read each topic once between them
            seconds, read = seconds + summary.seconds, read + summary.read
    line(f"rebuild the {len(entity_stores)} stores", read, seconds)

    began = time.monotonic()
    reports = verify(target, [s for s in stores if live.entities.store(s).verifiable])
    seconds = time.monotonic() - began
    line(f"verify all {len(reports)}", in_log, seconds)
    differences = sum(r.differences for r in reports)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nverify: {differences} difference(s); this process peaked at {peak:,.0f} MB")
    if differences:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

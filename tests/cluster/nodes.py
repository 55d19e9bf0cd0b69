"""The three-node stack of the cluster tier, as the fault tests act on it and read it: through
`scripts/services` (kill, stop, start, cut, heal, pid, ctl) and the servers' own answers (Kafka's
metadata and controller quorum, RabbitMQ's queue leaders and connections)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import psutil
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from bookstore.config import Settings
from bookstore.kafka import KafkaUnavailable, client_options
from tests.support import REPO, services

STALLS: dict[str, float] = {}  # fault -> seconds until records flowed end to end again
KAFKA = ("kafka-1", "kafka-2", "kafka-3")
RABBITMQ = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
VHOST = "bookstore_test"
PIDBOX = ".celery.pidbox"


class Cluster:
    def __init__(self, settings: Settings):
        self.settings = settings

    # -- faults ------------------------------------------------------------------------------
    def kill(self, node: str) -> None:
        services("kill", node)

    def stop(self, node: str) -> None:
        services("stop", node)

    def start(self, node: str) -> None:
        services("start", node)

    def cut(self, node: str) -> None:
        services("cut", node)

    def heal(self, node: str) -> None:
        services("heal", node)

    def silence(self, node: str) -> None:
        """Cut `node` off from its clients only: their connections stay open, nothing answers."""
        services("cut", "--clients", node)

    def pause(self, node: str) -> None:
        os.kill(self.pid(node), signal.SIGSTOP)

    def resume(self, node: str) -> None:
        os.kill(self.pid(node), signal.SIGCONT)

    def pid(self, node: str) -> int:
        return int(services("pid", node).strip())

    # -- Kafka -------------------------------------------------------------------------------
    def _admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**client_options(self.settings))

    def kafka_leading_most(self, topics: Iterable[str]) -> str:
        """The Kafka node leading the most partitions of `topics`."""
        admin = self._admin()
        try:
            leaders = Counter(
                p["leader_id"] for t in admin.describe_topics(list(topics)) for p in t["partitions"]
            )
        finally:
            admin.close()
        return f"kafka-{leaders.most_common(1)[0][0]}"

    def controller(self) -> str:
        """The Kafka node leading the KRaft controller quorum (the active controller)."""
        admin = self._admin()
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
        return f"kafka-{quorum['topics'][0]['partitions'][0]['leader_id']}"

    def kafka_whole(self, topics: Iterable[str]) -> bool:
        """Every node a registered, unfenced broker and every partition of those of `topics`
        that exist (and of the consumer offsets) with all its replicas in sync."""
        try:
            admin = self._admin()
        except (KafkaError, KafkaUnavailable):
            return False
        try:
            brokers = admin.describe_cluster()["brokers"]
            if len(brokers) < 3 or any(b["is_fenced"] for b in brokers):
                return False
            existing = set(admin.list_topics()) & {*topics, "__consumer_offsets"}
            described = admin.describe_topics(sorted(existing))
        except KafkaError:
            return False
        finally:
            admin.close()
        return all(
            t["partitions"]
            and all(len(p["isr_nodes"]) == len(p["replica_nodes"]) for p in t["partitions"])
            for t in described
        )

    # -- RabbitMQ ----------------------------------------------------------------------------
    def _ctl(self, node: str, *args: str) -> list[list[str]]:
        """Rows of `rabbitmqctl ARGS` on `node` (tab-separated, no headers)."""
        out = services("ctl", node, *args, "--no-table-headers", timeout=120)
        return [line.split("\t") for line in out.splitlines() if line and "\t" in line]

    def _running(self) -> list[str]:
        return [n for n in RABBITMQ if _answers(n)]

    def queue_leaders(self) -> Counter:
        """Quorum queues of the tests' vhost led by each node."""
        rows = self._ctl(self._running()[0], "list_queues", "-p", VHOST, "name", "leader")
        return Counter(_node_name(leader) for _, leader in rows if leader)

    def control_queue_hosts(self) -> dict[str, str]:
        """Worker name -> the node holding its remote-control queue (`NAME.celery.pidbox`): a
        quorum queue's leader, or the one node of a classic queue."""
        rows = self._ctl(self._running()[0], "list_queues", "-p", VHOST, "name", "leader", "pid")
        return {
            name.removesuffix(PIDBOX): _node_of(leader or pid)
            for name, leader, pid in rows
            if name.endswith(PIDBOX)
            and not name.endswith(".reply" + PIDBOX)
            and _node_of(leader or pid)
        }

    def report(self) -> str:
        """What an operator would look at when the cluster does not heal: each node's status,
        RabbitMQ's view of its cluster and partitions, and each RabbitMQ node's last warnings."""
        status = subprocess.run(
            [str(REPO / "scripts/services"), "status", "--cluster"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        parts = [status.stdout.strip()]
        running = self._running()
        if running:
            try:
                parts.append(services("ctl", running[0], "cluster_status", timeout=120).strip())
            except (AssertionError, subprocess.TimeoutExpired) as e:
                parts.append(f"cluster_status on {running[0]}: {e}")
        data = Path(os.environ.get("SERVICES_DIR", REPO / ".services")) / "data"
        for node in RABBITMQ:
            for log in sorted((data / node / "log").glob("rabbit-*@*[0-9].log")):
                notable = [
                    line[:300]
                    for line in log.read_text(errors="replace").splitlines()
                    if re.search(r"\[(warning|error)\]|Autoheal|partition", line)
                ]
                parts.append(f"--- {log.name}, last notable lines:\n" + "\n".join(notable[-15:]))
        return "\n".join(parts)

    def rabbitmq_leading_most(self) -> str:
        return self.queue_leaders().most_common(1)[0][0]

    def rabbitmq_serving_most(self) -> str:
        """The node holding the most client connections (the cluster lists them all; each
        connection's Erlang pid names its node: <rabbit-2@127.0.2.2.…>)."""
        rows = self._ctl(self._running()[0], "list_connections", "pid", "vhost")
        served = Counter(_node_name(pid.strip("<>").split(".")[0]) for pid, _ in rows)
        return served.most_common(1)[0][0]

    def rabbitmq_whole(self) -> bool:
        """Three running nodes, every quorum queue with all its members online."""
        if len(self._running()) < 3:
            return False
        try:
            rows = self._ctl(RABBITMQ[0], "list_queues", "-p", VHOST, "members", "online")
        except AssertionError:
            return False
        return all(members.count("@") == online.count("@") for members, online in rows)


def rabbitmq_connected(pid: int) -> set[str]:
    """The RabbitMQ nodes the process `pid` holds AMQP connections to (its own sockets: a
    node's address names it, 127.0.2.N -> rabbitmq-N)."""
    return {
        f"rabbitmq-{c.raddr.ip.rsplit('.', 1)[1]}"
        for c in psutil.Process(pid).net_connections("tcp")
        if c.raddr and c.raddr.port in (5671, 5672) and c.status == psutil.CONN_ESTABLISHED
    }


def _answers(node: str) -> bool:
    result = subprocess.run(
        [str(REPO / "scripts/services"), "status", node], capture_output=True, timeout=60
    )
    return result.returncode == 0


def _node_of(text: str) -> str | None:
    """The node named anywhere in `text` (a node name, a pid, a quorum queue's id)."""
    found = re.search(r"rabbit-(\d)@", text)
    return f"rabbitmq-{found[1]}" if found else None


def _node_name(erlang: str) -> str:
    """`rabbit-2@127.0.2.2` (or a pid of that node) -> `rabbitmq-2`."""
    return re.sub(r"^rabbit-(\d)@.*$", r"rabbitmq-\1", erlang)

"""A real Apache Kafka cluster on this machine: 1 node, or 3 with a static controller quorum.

Each node runs KRaft combined mode (broker + controller) as ``java ... kafka.Kafka server.properties``
in its own session, so it outlives the command that started it. The cluster's layout and pids live
in ``<data dir>/cluster.json``; ``down`` stops exactly those pids, after checking each one is still
the broker we started (a recycled pid is never signalled).

    cluster = LocalKafka(Path("~/.local/share/abstream/kafka").expanduser(), dist=KafkaDist(cache))
    state = cluster.up()          # idempotent
    print(state.bootstrap)        # 127.0.0.1:9092
    cluster.down()
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

from abstream.errors import LocalKafkaError
from deploy.kafka_dist import KafkaDist, kafka_resource

__all__ = ["ClusterState", "LocalKafka", "NodeState", "kafka_uuid"]

_HOST = "127.0.0.1"
# Brokers this process started: kept so they are reaped on stop, not garbage-collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


def kafka_uuid() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid().toString()`` makes it (url-safe base64, no '-' first)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


@dataclass
class NodeState:
    node_id: int
    broker_port: int
    controller_port: int
    pid: int | None = None


@dataclass
class ClusterState:
    cluster_id: str
    nodes: list[NodeState] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{_HOST}:{n.broker_port}" for n in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@{_HOST}:{n.controller_port}" for n in self.nodes)


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((_HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((_HOST, port)) == 0


class LocalKafka:
    """The local cluster rooted at ``directory``; ``brokers`` and ``base_port`` apply when first created.

    ``brokers=None`` means the size of the existing cluster, or 1 for a new one.

    ``base_port=0`` picks free ports (tests use it so two runs never collide); otherwise node *i*
    listens on ``base_port + 2(i-1)`` and its controller on the port after.
    """

    def __init__(
        self,
        directory: Path,
        *,
        dist: KafkaDist,
        brokers: int | None = None,
        base_port: int = 9092,
        heap: str = "512m",
    ) -> None:
        self.directory = directory
        if brokers is None:
            existing = self.load_state()
            brokers = len(existing.nodes) if existing else 1
        if brokers not in (1, 3):
            raise LocalKafkaError(f"brokers must be 1 or 3 (a controller quorum needs an odd size), got {brokers}")
        self.dist = dist
        self.brokers = brokers
        self.base_port = base_port
        self.heap = heap

    # -- state ---------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.directory / "cluster.json"

    def load_state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        raw = json.loads(self.state_file.read_text())
        return ClusterState(raw["cluster_id"], [NodeState(**n) for n in raw["nodes"]])

    def _save_state(self, state: ClusterState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self.state_file)

    def node_dir(self, node_id: int) -> Path:
        return self.directory / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "logs" / "server.log"

    def is_running(self, node: NodeState) -> bool:
        """True when ``node.pid`` is alive and is the broker of this node (not a recycled pid)."""
        if node.pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.node_dir(node.node_id) / "server.properties").encode() in cmdline

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self, *, timeout: float = 90.0) -> ClusterState:
        """Start every node that is not running (formatting new ones) and wait for the cluster."""
        self.dist.fetch()
        state = self.load_state() or self._create()
        if len(state.nodes) != self.brokers:
            raise LocalKafkaError(
                f"{self.directory} holds a {len(state.nodes)}-broker cluster, not {self.brokers}: "
                "run `abstream local down --purge` first to replace it."
            )
        for node in state.nodes:
            if not self.is_running(node):
                node.pid = self._start(node)
                self._save_state(state)
        self.wait_ready(state, timeout=timeout)
        return state

    def _create(self) -> ClusterState:
        ports = _free_ports(2 * self.brokers) if self.base_port == 0 else None
        nodes = []
        for i in range(self.brokers):
            broker, controller = (
                (ports[2 * i], ports[2 * i + 1]) if ports else (self.base_port + 2 * i, self.base_port + 2 * i + 1)
            )
            nodes.append(NodeState(node_id=i + 1, broker_port=broker, controller_port=controller))
        busy = [p for n in nodes for p in (n.broker_port, n.controller_port) if _port_open(p)]
        if busy:
            raise LocalKafkaError(f"port(s) {busy} on {_HOST} are in use; pick another --port (or 0 for any)")
        state = ClusterState(cluster_id=kafka_uuid(), nodes=nodes)
        self.directory.mkdir(parents=True, exist_ok=True)
        for node in nodes:
            self._format(state, node)
        self._save_state(state)
        return state

    def _render_config(self, state: ClusterState, node: NodeState) -> Path:
        internal_rf = min(3, len(state.nodes))
        text = Template(kafka_resource("server.properties.template").read_text()).substitute(
            node_id=node.node_id,
            voters=state.voters,
            host=_HOST,
            broker_port=node.broker_port,
            controller_port=node.controller_port,
            log_dirs=self.node_dir(node.node_id) / "data",
            internal_rf=internal_rf,
            internal_min_isr=max(1, internal_rf - 1),
        )
        path = self.node_dir(node.node_id) / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _java_command(self, node_id: int, main: str, *args: str, heap: str) -> list[str]:
        logs = self.node_dir(node_id) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return [
            self.dist.java(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dist.log4j_config}", f"-Dkafka.logs.dir={logs}",
            "-cp", f"{self.dist.libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self, state: ClusterState, node: NodeState) -> None:
        config = self._render_config(state, node)
        command = self._java_command(
            node.node_id, "kafka.tools.StorageTool", "format", "-t", state.cluster_id, "-c", str(config),
            "--ignore-formatted", heap="256m",
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"formatting node {node.node_id}'s storage failed (exit {result.returncode})",
                log_tail=(result.stdout + result.stderr)[-4000:],
            )

    def _start(self, node: NodeState) -> int:
        config = self.node_dir(node.node_id) / "server.properties"
        command = self._java_command(node.node_id, "kafka.Kafka", str(config), heap=self.heap)
        stdout = (self.node_dir(node.node_id) / "logs" / "stdout.log").open("ab")
        with stdout:
            proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        # The java launcher re-execs itself; until it has, /proc shows no command line for the pid.
        deadline = time.monotonic() + 5
        while proc.poll() is None and not self.is_running(NodeState(node.node_id, 0, 0, proc.pid)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        _children[proc.pid] = proc
        return proc.pid

    def wait_ready(self, state: ClusterState, *, timeout: float) -> None:
        """Block until every node answers a metadata request naming all brokers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in state.nodes:
                if not self.is_running(node):
                    raise LocalKafkaError(
                        f"broker {node.node_id} exited while starting", log_tail=self.tail(node.node_id)
                    )
            if all(_port_open(n.broker_port) for n in state.nodes) and self._brokers_seen(state) == len(state.nodes):
                return
            time.sleep(0.25)
        raise LocalKafkaError(
            f"the cluster did not answer within {timeout:.0f}s (bootstrap {state.bootstrap})",
            log_tail=self.tail(state.nodes[0].node_id),
        )

    @staticmethod
    def _brokers_seen(state: ClusterState) -> int:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": state.bootstrap, "log_level": 0})
        try:
            return len(admin.list_topics(timeout=2).brokers)
        except Exception:
            return 0

    def tail(self, node_id: int, lines: int = 30) -> str:
        """The last lines of a node's log (server.log, else the JVM's stdout)."""
        for path in (self.log_file(node_id), self.node_dir(node_id) / "logs" / "stdout.log"):
            if path.exists() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop_node(self, node: NodeState, *, timeout: float = 30.0, kill: bool = False) -> bool:
        """Stop one node (SIGTERM, a clean shutdown; SIGKILL after ``timeout``); False if not running.

        ``kill`` sends SIGKILL at once, as a crash would end it (fault tests); ``up`` starts it again.
        """
        return bool(self._stop([node], timeout=timeout, sig=signal.SIGKILL if kill else signal.SIGTERM))

    def _stop(self, nodes: list[NodeState], *, timeout: float, sig: signal.Signals = signal.SIGTERM) -> list[int]:
        # All nodes at once: stopped one by one, the last ones lose quorum and hang in shutdown.
        running = [n for n in nodes if self.is_running(n)]
        for node in running:
            os.kill(node.pid, sig)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while any(self.is_running(n) for n in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for node in running:
            if self.is_running(node):
                os.kill(node.pid, signal.SIGKILL)  # type: ignore[arg-type]
            if (child := _children.pop(node.pid, None)) is not None:  # type: ignore[arg-type]
                child.wait()
            while self.is_running(node):
                time.sleep(0.05)
        return [n.pid for n in running if n.pid is not None]

    def down(self, *, purge: bool = False) -> list[int]:
        """Stop the recorded brokers by pid; with ``purge`` also delete the data. Returns stopped pids."""
        state = self.load_state()
        if state is None:
            return []
        stopped = self._stop(state.nodes, timeout=30.0)
        for node in state.nodes:
            node.pid = None
        self._save_state(state)
        if purge:
            shutil.rmtree(self.directory)
        return stopped

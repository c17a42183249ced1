"""Real Kafka + Redis for the integration tests, and factories around them.

Servers, in order: `CS_KAFKA_BOOTSTRAP` + `CS_REDIS_URL` from the environment;
else testcontainers when a Docker engine answers; else `scripts/stack up`
(Kafka from its Maven jars, redis-server from the OS packages).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"
# The change outbox (stream/topics.py), without the test's topic prefix.
OUTBOX = "contact-stream.change-outbox.v1"
# A worker log's lines that say why it stopped: mode's crash, an agent's failure, a traceback.
CRASH_LINE = re.compile(r"Crashed reason|\[CRITICAL\]|Traceback \(most recent|failed with")
# A worker log's lines that say nothing about a failure: Faust's services starting and stopping.
ROUTINE_LINE = re.compile(r"\]: (Starting|Stopping|Creating topic|-Stopped!)")


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    redis_url: str
    # Set when the broker is one scripts/stack runs (fault tests stop and start it).
    stack_env: dict[str, str] | None = None
    # Its SASL_PLAINTEXT listener (PLAIN), when it has one (scripts/stack does).
    sasl_bootstrap: str | None = None
    # Its SASL_SSL listener (SCRAM-SHA-512, PLAIN) and the CA that signed it (scripts/stack).
    sasl_ssl_bootstrap: str | None = None
    test_cafile: str | None = None

    def stack(self, command: str) -> None:
        """Run `scripts/stack COMMAND` on this session's stack (e.g. kafka-stop)."""
        if self.stack_env is None:
            pytest.skip("needs a broker run by scripts/stack (or CS_STACK_DIR naming one)")
        subprocess.run([str(STACK), command], check=True, env={**os.environ, **self.stack_env})


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    bootstrap, redis_url = os.environ.get("CS_KAFKA_BOOTSTRAP"), os.environ.get("CS_REDIS_URL")
    if bootstrap and redis_url:
        stack_dir = os.environ.get("CS_STACK_DIR")
        yield Servers(
            bootstrap,
            redis_url,
            {"CS_STACK_DIR": stack_dir} if stack_dir else None,
            os.environ.get("CS_KAFKA_SASL_BOOTSTRAP"),
            os.environ.get("CS_KAFKA_SASL_SSL_BOOTSTRAP"),
            os.environ.get("CS_KAFKA_TEST_CAFILE"),
        )
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with (
            KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
            RedisContainer("redis:7") as rds,
        ):
            host, port = rds.get_container_host_ip(), rds.get_exposed_port(6379)
            yield Servers(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0")
        return
    was_up = subprocess.run([str(STACK), "status"], capture_output=True).returncode == 0
    subprocess.run([str(STACK), "up"], check=True)
    env = subprocess.run([str(STACK), "env"], check=True, capture_output=True, text=True).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if "=" in line
    )
    try:
        yield Servers(
            values["CS_KAFKA_BOOTSTRAP"],
            values["CS_REDIS_URL"],
            {},
            values.get("CS_KAFKA_SASL_BOOTSTRAP"),
            values.get("CS_KAFKA_SASL_SSL_BOOTSTRAP"),
            values.get("CS_KAFKA_TEST_CAFILE"),
        )
    finally:
        if not was_up:
            subprocess.run([str(STACK), "down"], check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    condition: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll an (async or sync) condition until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


def _from_first_crash(text: str) -> list[str]:
    """A worker log from the line of its first crash on (4,000 characters), if it has one."""
    first = CRASH_LINE.search(text)
    if first is None:
        return []
    start = text.rfind("\n", 0, first.start()) + 1
    return ["from the first crash line:\n" + text[start : start + 4000]]


@dataclass
class Worker:
    """A real `contact-stream worker` process (or another command: `outputs`)."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    level: str = "info"
    command: str = "worker"
    ready_line: str = "contact-stream ready"

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", self.command, "-l", self.level],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def exit_status(self) -> int | None:
        """The process's exit status; None while it runs or before it started."""
        return None if self.process is None else self.process.poll()

    def failure_text(self, tail: int = 2000) -> str:
        """Why this worker failed: its exit status, the log from the first crash line, the tail.

        A worker that crashes while something holds its stop (a commit waiting
        for a broker that is down) logs many lines after the crash: the log's
        tail alone does not show the cause (CI, stop 23).
        """
        text = self.log_text()
        parts = [f"exit status: {self.exit_status}"]
        parts.extend(_from_first_crash(text))
        parts.append(f"log tail:\n{text[-tail:]}")
        return "\n".join(parts)

    def report_text(self, last: int = 80) -> str:
        """What a failed test's report shows of this worker (`pytest_runtest_makereport`).

        Its log's lines of events, without the tables Faust draws and its
        services' start and stop lines, and from the first crash line if any.
        """
        text = self.log_text()
        lines = [
            line[:300]
            for line in text.splitlines()
            if line.startswith(("=====", "[")) and not ROUTINE_LINE.search(line)
        ]
        shown = lines if len(lines) <= last else ["[...]", *lines[-last:]]
        parts = [f"exit status: {self.exit_status}; log: {self.log_path}", *shown]
        return "\n".join([*parts, *_from_first_crash(text)])

    def assert_healthy(self) -> None:
        """Still running, not crashed (a crashed worker may still be stopping), no agent failed."""
        assert self.process is not None and self.process.poll() is None, self.failure_text()
        log = self.log_text()
        assert "failed with" not in log and "Crashed reason" not in log, self.failure_text()

    def ready_count(self) -> int:
        return self.log_text().count(self.ready_line)

    async def wait_ready(self, timeout: float = 90.0) -> None:
        marker = f"===== start {self.starts} ====="

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.failure_text()}")
            return self.ready_line in self.log_text().rsplit(marker, 1)[-1]

        await wait_for(ready, timeout, what=f"{self.command} ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Env:
    """One test's isolated world: its own topic prefix, consumer group and Redis prefix."""

    servers: Servers
    prefix: str
    tmp_path: Path
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def redis_prefix(self) -> str:
        return f"cs-{self.prefix}"

    async def started_worker(self, datadir: str = "data", **extra: str) -> Worker:
        """A worker started and ready (its tables recovered)."""
        worker = self.worker(datadir, **extra)
        worker.start()
        await worker.wait_ready()
        return worker

    async def started_workers(self, *datadirs: str, **extra: str) -> list[Worker]:
        """One ready worker per data dir, each started once the previous is ready."""
        return [await self.started_worker(datadir, **extra) for datadir in datadirs]

    def worker(self, datadir: str = "data", **extra: str) -> Worker:
        w = Worker(
            self.worker_env(datadir, **extra), self.tmp_path / f"worker-{len(self.workers)}.log"
        )
        self.workers.append(w)
        return w

    def worker_env(self, datadir: str = "data", **extra: str) -> dict[str, str]:
        """The environment of this test's processes: its servers, prefixes and data dir."""
        return {
            **os.environ,
            "CS_KAFKA_BOOTSTRAP": self.servers.kafka_bootstrap,
            "CS_REDIS_URL": self.servers.redis_url,
            "CS_APP_ID": f"cs-{self.prefix}",
            "CS_TOPIC_PREFIX": f"{self.prefix}.",
            "CS_REDIS_PREFIX": self.redis_prefix,
            "CS_DATADIR": str(self.tmp_path / datadir),
            "CS_WEB_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            # A SIGKILLed worker's partitions move after this long, not 60 s.
            "CS_SESSION_TIMEOUT": "10",
            # Offsets committed every second, not 2.8 s: tests that wait until
            # every hop is committed settle sooner.
            "CS_COMMIT_INTERVAL": "1.0",
            **extra,
        }


@pytest.fixture
async def env(servers: Servers, tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(servers, f"t{uuid.uuid4().hex[:10]}", tmp_path)
    yield e
    # The test is over: no need for a graceful stop, which took ~2-6 s per
    # worker (180 s of the whole suite's teardowns). Tests that check a
    # clean stop call `stop()` themselves.
    for w in e.workers:
        if w.process is not None and w.process.poll() is None:
            w.kill()
    if not os.environ.get("CS_TEST_KEEP_TOPICS"):  # set it to inspect a failed test's topics
        await delete_topics(servers, (f"{e.prefix}.", f"cs-{e.prefix}-"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries its workers' logs (`Worker.report_text`).

    CI keeps only the test session's output, not the temporary directories the
    logs were in: a stall there (stop 33, a restarted worker whose change never
    came) left nothing to read but the assertion.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    env = getattr(item, "funcargs", {}).get("env")
    if report.when != "call" or not report.failed or not isinstance(env, Env):
        return
    for i, worker in enumerate(env.workers):
        report.sections.append((f"worker {i} ({worker.command})", worker.report_text()))


async def create_topics(
    servers: Servers, *names: str, partitions: int = 4, config: dict[str, str] | None = None
) -> None:
    """Create these topics (replication 1): the broker does not create them on first use."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=config or {}) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(servers: Servers, prefixes: tuple[str, ...]) -> None:
    """Drop a finished test's topics: a broker holding every run's partitions runs out of heap."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@pytest.fixture
async def producer(servers: Servers) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap, linger_ms=5)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def redis_client(servers: Servers) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()


class TopicReader:
    """Reads a whole topic from the beginning, accumulating records as they come."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Any] = []
        # A group of its own: it starts at the earliest offset and picks the topic
        # up as soon as it exists (metadata refreshed every second).
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"reader-{uuid.uuid4().hex}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=1000,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def poll(self) -> list[Any]:
        batches = await self._consumer.getmany(timeout_ms=200)
        for tp in sorted(batches, key=lambda t: t.partition):
            self.records.extend(batches[tp])
        return self.records

    async def read_to_end(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Everything the topic holds now (after the writers are known to be done)."""

        async def caught_up() -> bool:
            await self.poll()
            assigned = list(self._consumer.assignment())
            if not assigned:
                return False
            ends = await self._consumer.end_offsets(assigned)
            positions = [await self._consumer.position(tp) for tp in assigned]
            return all(pos >= ends[tp] for pos, tp in zip(positions, assigned, strict=True))

        await wait_for(caught_up, timeout, interval=0.05, what=f"end of {self.topic}")
        return self.values()

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]

    async def wait_until(
        self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        async def check() -> bool:
            await self.poll()
            return condition(self.values())

        await wait_for(check, timeout, interval=0.05, what=f"records on {self.topic}")
        return self.values()

    async def stop(self) -> None:
        await self._consumer.stop()


@pytest.fixture
async def reader(servers: Servers) -> AsyncIterator[Callable[..., Any]]:
    readers: list[TopicReader] = []

    async def make(topic: str, kind: type[TopicReader] = TopicReader) -> TopicReader:
        r = kind(servers.kafka_bootstrap, topic)
        await r.start()
        readers.append(r)
        return r

    yield make
    for r in readers:
        await r.stop()


async def wait_committed(servers: Servers, group: str, topic: str, timeout: float = 60) -> None:
    """Wait until `group` has committed every partition of `topic` up to its end.

    A worker commits only after its producer has flushed (outputs and table
    changelogs), so this is the moment its state is durable in Kafka.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        assert tps, f"topic {topic} has no partitions"
        ends = await consumer.end_offsets(tps)

        async def all_committed() -> bool:
            for tp in tps:
                committed = await consumer.committed(tp) or 0
                if committed < ends[tp]:
                    return False
            return True

        await wait_for(all_committed, timeout, what=f"{group} committed {topic}")
    finally:
        await consumer.stop()


async def wait_quiet(servers: Servers, group: str, topics: list[str], timeout: float = 120) -> None:
    """Wait until `group` has committed every record of `topics`, and no more arrive.

    The hops feed each other (an unlock releases parked visits), so one pass
    is not enough: repeat until a pass ends with the same end offsets it began with.
    Then, for a worker's group, until its change relay has put every change of
    the outbox on the changes topic.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert tps, f"no partitions for {topics}"
        deadline = time.monotonic() + timeout

        async def end_offsets() -> dict[TopicPartition, int]:
            # Right after a broker restart (a fault test) leadership may not be
            # settled yet: retry what the broker calls retriable.
            while True:
                try:
                    return await consumer.end_offsets(tps)
                except KafkaError as exc:
                    transient = exc.retriable or isinstance(exc, KafkaTimeoutError)
                    if not transient or time.monotonic() > deadline:
                        raise
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(0.5)

        while True:
            ends = await end_offsets()

            async def lagging(ends: dict[TopicPartition, int] = ends) -> dict[str, str]:
                behind = {}
                for tp in tps:
                    committed = await consumer.committed(tp)
                    if (committed or 0) < ends[tp]:
                        behind[f"{tp.topic.rsplit('.', 2)[-2]}[{tp.partition}]"] = (
                            f"{committed}/{ends[tp]}"
                        )
                return behind

            async def committed_all() -> bool:
                return not await lagging()

            try:
                await wait_for(committed_all, max(deadline - time.monotonic(), 1), what="commits")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; committed/end: {await lagging()}") from None
            if await end_offsets() == ends:
                break
    finally:
        await consumer.stop()
    if group.startswith("cs-"):  # a worker's group (Env: app id `cs-{prefix}`, topics `{prefix}.`)
        # The change relay's own group has published what the hops sent to the outbox.
        relay, outbox = f"{group}-change-relay", f"{group[3:]}.{OUTBOX}"
        await wait_committed(servers, relay, outbox, max(deadline - time.monotonic(), 30))


async def send_json(
    producer: AIOKafkaProducer, topic: str, value: Any, key: bytes | None = None
) -> None:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    await producer.send_and_wait(topic, raw, key=key)

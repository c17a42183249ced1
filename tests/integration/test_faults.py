"""Faults on the skeleton's path: Redis down, a failing agent, records the broker refuses."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.integration.conftest import Env, create_topics, free_port, send_json, wait_for
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


def start_redis(port: int, datadir: Path) -> subprocess.Popen[bytes]:
    """A Redis server of the test's own, keeping its data in `datadir` across a restart."""
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is installed by scripts/stack"
    persist = ["--save", "", "--appendonly", "yes", "--dir", str(datadir)]
    return subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", *persist],
        stdout=subprocess.DEVNULL,
    )


async def test_redis_down_stops_only_the_projection_which_catches_up_when_redis_returns(
    env: Env, producer, reader, tmp_path
) -> None:
    port = free_port()
    # Nothing listens on `port` yet. Faust buffers of 20 events: were the
    # projection fed by the worker's shared fetch loop, 200 snapshots waiting
    # for Redis would fill them and stall every agent (they did, once).
    worker = await env.started_worker(
        CS_REDIS_URL=f"redis://127.0.0.1:{port}/0", CS_STREAM_BUFFER_MAXSIZE="20"
    )
    changes = await reader(env.topic("contacts.changes.v1"))
    emails = [f"offline{i}@example.com" for i in range(200)]
    for email in emails:
        await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", [email]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= len(emails))
    ids = {c["contact_id"] for c in of_type(values, "contact.created")}
    assert "redis unavailable" in worker.log_text()

    server = start_redis(port, tmp_path)
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        prefix = f"{env.redis_prefix}:{{acme}}"

        async def all_projected() -> bool:
            try:
                keys = [k async for k in client.scan_iter(f"{prefix}:c:*", count=1000)]
            except RedisConnectionError:
                return False  # still starting
            return len(keys) == len(ids)

        await wait_for(all_projected, 90, what="projection catch-up")
        stored = {k.decode().rsplit(":", 1)[1] async for k in client.scan_iter(f"{prefix}:c:*")}
        assert stored == ids
        assert await client.get(f"{prefix}:email:offline7@example.com") is not None
    finally:
        await client.aclose()
        server.terminate()
        server.wait(10)


RATE = 60  # intakes per second, offered: well under one worker's capacity
PHASES = (("before", 5.0), ("outage", 20.0), ("after", 5.0))


async def test_redis_stopped_for_20s_mid_stream_never_pauses_the_pipeline(
    env: Env, producer, reader, tmp_path
) -> None:
    """SPEC §4: Redis down never stops the pipeline; the projection catches up.

    Intakes flow at a fixed rate for 5 s, Redis is stopped for 20 s, then runs
    again for the last 5 s. The change events' own timestamps (the worker's
    producer sets them) show the pipeline's pace in each phase.
    """
    port = free_port()
    server = start_redis(port, tmp_path)
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    await wait_for(lambda: redis_answers(client), 10, what="private redis up")
    # Small Faust buffers, as above: a projection waiting inside the shared
    # fetch loop would stall the agents within a second of the outage.
    worker = await env.started_worker(
        CS_REDIS_URL=f"redis://127.0.0.1:{port}/0", CS_STREAM_BUFFER_MAXSIZE="20"
    )
    changes = await reader(env.topic("contacts.changes.v1"))
    topic = env.topic("contacts.intake.v1")
    sent: dict[str, float] = {}  # email -> when it was sent
    moments: dict[str, tuple[float, float]] = {}
    try:
        for phase, seconds in PHASES:
            if phase == "outage":
                server.terminate()  # a clean shutdown: the append-only file is kept
                server.wait(10)
            elif phase == "after":
                server = start_redis(port, tmp_path)
            start = time.time()
            n = 0
            while (elapsed := time.time() - start) < seconds:
                if n < elapsed * RATE:
                    email = f"{phase}{n}@example.com"
                    await producer.send(topic, orjson.dumps(intake("acme", [email])))
                    sent[email] = time.time()
                    n += 1
                else:
                    await asyncio.sleep(1 / RATE)  # pacing the feed, not waiting for a result
            moments[phase] = (start, time.time())
        await producer.flush()
        await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= len(sent), 120)
        created = {  # email -> when its contact.created was produced
            value["data"]["contact"]["emails"][0]: r.timestamp / 1000
            for r in changes.records
            if (value := orjson.loads(r.value))["type"] == "contact.created"
        }
        assert "redis unavailable" in worker.log_text()

        down, up = moments["outage"]
        during = sorted(t for t in created.values() if down <= t < up)
        rates = {
            phase: sum(1 for t in created.values() if a <= t < b) / (b - a)
            for phase, (a, b) in moments.items()
        }
        gaps = [b - a for a, b in itertools.pairwise(during)]
        late = [e for e, t in sent.items() if down <= t < up - 5 and created[e] >= up]
        print(
            f"created per s: {rates}; sent {len(sent)}; largest gap during the outage "
            f"{max(gaps):.3f}s; sent during the outage and created after it: {len(late)}"
        )
        # Never paused: what was sent in the outage (but its last 5 s) became contacts in it.
        assert not late, f"{len(late)} intakes sent while Redis was down waited for it"
        # A stall would last the outage's 20 s; 5 s leaves room for a busy machine.
        assert max(gaps) < 5.0, f"the pipeline stood still {max(gaps):.1f}s during the outage"
        assert rates["outage"] >= 0.8 * RATE, rates

        ids = {c["contact_id"] for c in of_type(changes.values(), "contact.created")}
        prefix = f"{env.redis_prefix}:{{acme}}"

        async def all_projected() -> bool:
            try:
                return len([k async for k in client.scan_iter(f"{prefix}:c:*", count=1000)]) == len(
                    ids
                )
            except RedisConnectionError:
                return False  # still loading its append-only file

        await wait_for(all_projected, 90, what="projection catch-up after the outage")
        stored = {k.decode().rsplit(":", 1)[1] async for k in client.scan_iter(f"{prefix}:c:*")}
        assert stored == ids
        for email in ("before0", "outage0", f"outage{int(RATE * 19)}", "after0"):
            assert await client.get(f"{prefix}:email:{email}@example.com") is not None, email
    finally:
        await client.aclose()
        server.terminate()
        server.wait(10)


async def redis_answers(client: aioredis.Redis) -> bool:
    """True once the server answers a PING (while it starts, the connection fails)."""
    try:
        return bool(await client.ping())
    except (RedisConnectionError, OSError):
        return False


async def test_an_agent_failure_stops_the_worker_without_committing_the_failed_event(
    env: Env, producer, reader, servers
) -> None:
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", ["ok@example.com"]))
    await changes.wait_until(lambda v: len(v) >= 1)
    # Only the worker writes the internal hop; a record it cannot read is a bug
    # (or a foreign writer), not bad input, so it must not be skipped.
    internal = env.topic("contact-stream.contact-ops.v1")
    poison = await producer.send_and_wait(internal, orjson.dumps({"op": "x"}), key=b"acme:x")

    assert worker.process is not None
    await wait_for(lambda: worker.process.poll() is not None, 60, what="worker exit")
    assert worker.process.returncode == 70
    log = worker.log_text()
    assert "agent apply-contact-ops failed with KeyError" in log

    assert await not_committed_past(servers, env, internal, poison)


async def test_a_record_the_broker_refuses_stops_the_worker_before_its_input_is_committed(
    env: Env, producer, servers
) -> None:
    # The internal hops take no record over 64 bytes: what the intake agent
    # sends on is refused (MESSAGE_TOO_LARGE, not retried).
    hops = (env.topic("contact-stream.identity-ops.v1"), env.topic("contact-stream.contact-ops.v1"))
    await create_topics(servers, *hops, partitions=4, config={"max.message.bytes": "64"})
    worker = await env.started_worker()
    source = env.topic("contacts.intake.v1")
    sent = await producer.send_and_wait(
        source, orjson.dumps(intake("acme", ["refused@example.com"])), key=b"k"
    )

    assert worker.process is not None
    await wait_for(lambda: worker.process.poll() is not None, 60, what="worker exit")
    assert worker.process.returncode != 0
    log = worker.log_text()
    assert "record(s) not delivered: MessageSizeTooLargeError" in log, worker.failure_text()
    assert "refused by the broker: no offset is committed past" in log, worker.failure_text()
    assert "refused@example.com" not in log

    assert await not_committed_past(servers, env, source, sent)


async def not_committed_past(servers: Any, env: Env, topic: str, record: Any) -> bool:
    """The worker group's committed offset of `record`'s partition is not past `record`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers.kafka_bootstrap, group_id=f"cs-{env.prefix}"
    )
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topic, record.partition))
    finally:
        await consumer.stop()
    return committed is None or committed <= record.offset

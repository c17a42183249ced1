"""Faults on the skeleton's path: Redis down, and a failing agent."""

from __future__ import annotations

import shutil
import subprocess

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.integration.conftest import Env, free_port, send_json, wait_for
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


async def test_redis_down_stops_only_the_projection_which_catches_up_when_redis_returns(
    env: Env, producer, reader, tmp_path
) -> None:
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is installed by scripts/stack"
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

    server = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
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

    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers.kafka_bootstrap, group_id=f"cs-{env.prefix}"
    )
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(internal, poison.partition))
    finally:
        await consumer.stop()
    assert committed is None or committed <= poison.offset

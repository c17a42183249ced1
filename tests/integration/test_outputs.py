"""`contact-stream outputs`: the relay and the projection in a process of their own.

A worker started with `CS_OUTPUTS_IN_WORKER=false` publishes change events
to the outbox only; the outputs process relays them onto the changes topic
and writes the read model. Killed with SIGKILL while the outbox grows and
restarted, it must still put each change on the changes topic once, and
every contact in Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import (
    OUTBOX,
    Env,
    Servers,
    free_port,
    send_json,
    wait_committed,
    wait_for,
)
from tests.integration.test_http import scrape
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration

OFF = {"CS_OUTPUTS_IN_WORKER": "false"}


async def relay_members(servers: Servers, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    # DescribeGroups v2: each group is (error, id, state, protocol type, protocol, members).
    return sum(len(group[5]) for response in described for group in response.groups)


async def contacts_in_redis(redis_client: Any, env: Env) -> int:
    keys = [k async for k in redis_client.scan_iter(match=f"{env.redis_prefix}:{{acme}}:c:*")]
    return len(keys)


async def test_the_outputs_process_relays_and_projects_for_workers_without_them(
    env: Env, servers: Servers, producer, reader, redis_client
) -> None:
    worker = await env.started_worker(**OFF)
    outbox = await reader(env.topic(OUTBOX))
    changes = await reader(env.topic("contacts.changes.v1"))
    topic = env.topic("contacts.intake.v1")
    for i in range(20):
        await send_json(producer, topic, intake("acme", [f"first{i}@example.com"]))
    await outbox.wait_until(lambda v: len(of_type(v, "contact.created")) >= 20)
    # The worker did not start the relay or the projection.
    assert "change relay owns outbox partitions" not in worker.log_text()
    assert await relay_members(servers, f"cs-{env.prefix}-change-relay") == 0
    assert await changes.read_to_end() == []
    assert await contacts_in_redis(redis_client, env) == 0

    port = free_port()
    outputs = env.worker(**OFF, CS_OUTPUTS_METRICS_PORT=str(port))
    outputs.command, outputs.ready_line = "outputs", "contact-stream outputs running"
    outputs.start()
    await outputs.wait_ready()
    await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 20)

    async def projected(n: int) -> bool:
        return await contacts_in_redis(redis_client, env) >= n

    await wait_for(lambda: projected(20), 60, what="20 contacts in Redis")
    metrics = await scrape(f"http://127.0.0.1:{port}/metrics")
    relayed = metrics[f'cs_output_events_total{{topic="{env.topic("contacts.changes.v1")}"}}']
    assert relayed >= 20

    # SIGKILL: nothing flushed, a transaction possibly open. The worker goes on
    # filling the outbox; nothing reaches the changes topic until a restart.
    outputs.kill()
    for i in range(40):
        await send_json(producer, topic, intake("acme", [f"second{i}@example.com"]))
    await outbox.wait_until(lambda v: len(of_type(v, "contact.created")) >= 60)
    assert len(of_type(await changes.read_to_end(), "contact.created")) == 20

    outputs.start()
    await outputs.wait_ready()
    await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 60)
    await wait_for(lambda: projected(60), 60, what="60 contacts in Redis")
    values = await changes.read_to_end()
    await outbox.read_to_end()
    change_ids = [c["change_id"] for c in values]
    assert len(change_ids) == len(set(change_ids))
    assert sorted(change_ids) == sorted(c["change_id"] for c in outbox.values())
    assert await contacts_in_redis(redis_client, env) == 60

    # The projection's group commits up to both topics' ends: past the relay's
    # transaction markers too, read with nothing returned (it stayed one record
    # short of the changes topic's end until the next change, once).
    group = f"cs-{env.prefix}-projection"
    for name in ("contacts.changes.v1", "contact-stream.snapshots.v1"):
        await wait_committed(servers, group, env.topic(name), 30)

"""Tenant configuration from `tenants.config.v1` (SPEC §2.5), on a real worker.

A config written before the worker starts applies to its very first input
(the worker reads the whole compacted topic before its agents run); an
invalid record is dead-lettered once and the previous config stays; a tenant
never configured keeps the defaults.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import Env, Servers, send_json
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


async def create_topic(servers: Servers, name: str) -> None:
    """The operator's config topic exists before any worker (auto-creation is off)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 4, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()


async def configure(env: Env, servers: Servers, producer: Any, config: dict[str, Any]) -> None:
    """The config topic, and acme's config on it, before any worker starts."""
    topic = env.topic("tenants.config.v1")
    await create_topic(servers, topic)
    await send_json(producer, topic, config, key=b"acme")


def dropped(changes: list[dict]) -> dict[str, str]:
    return {c["data"]["value"]: c["data"]["reason"] for c in of_type(changes, "identifier.dropped")}


async def test_a_tenant_config_applies_to_later_intakes_and_a_bad_one_changes_nothing(
    env: Env, servers: Servers, producer, reader
) -> None:
    config_topic = env.topic("tenants.config.v1")
    intakes = env.topic("contacts.intake.v1")
    await create_topic(servers, config_topic)
    acme = {"default_region": "MX", "alt_email_limit": 0, "blocked_values": ["re:^spam@"]}
    # The value's tenant_id is ignored: the key names the tenant.
    await send_json(producer, config_topic, {**acme, "tenant_id": "other"}, key=b"acme")

    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    dead = await reader(env.topic("contacts.deadletter.v1"))

    emails = ["ana@example.com", "ana.work@example.com", "spam@example.com"]
    await send_json(producer, intakes, intake("acme", emails, ["55 1234 5678"]))
    values = await changes.wait_until(lambda v: len(v) >= 3)
    (created,) = of_type(values, "contact.created")
    assert created["data"]["contact"]["phones"] == ["+525512345678"]  # region MX
    assert created["data"]["contact"]["emails"] == ["ana@example.com"]
    assert dropped(values) == {
        "ana.work@example.com": "limit_reached",  # no alternates allowed
        "spam@example.com": "blocked",
    }

    # Bad records: a value that breaks the schema, a key that is no tenant id.
    await send_json(producer, config_topic, {"alt_email_limit": "many"}, key=b"acme")
    await send_json(producer, config_topic, {}, key=b"not a tenant!")
    letters = await dead.wait_until(lambda v: len(v) >= 2)
    assert sorted(d["reason"] for d in letters) == ["schema", "unknown_tenant_format"]
    assert all(d["topic"] == config_topic for d in letters)

    # acme keeps its config; `other` (never configured) has the defaults.
    await send_json(producer, intakes, intake("acme", ["bea@example.com", "bea2@example.com"]))
    await send_json(producer, intakes, intake("other", emails, ["600 111 222"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 3)
    by_tenant = {c["tenant_id"]: c for c in of_type(values, "contact.created")[1:]}
    assert by_tenant["acme"]["data"]["contact"]["emails"] == ["bea@example.com"]
    other = by_tenant["other"]["data"]["contact"]
    assert other["emails"] == emails  # nothing blocked, alternates allowed
    assert other["phones"] == ["+34600111222"]  # region ES
    assert len(await dead.read_to_end()) == 2

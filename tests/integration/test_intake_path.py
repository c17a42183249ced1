"""End to end on a real broker, Redis and worker: intake -> tables -> changes -> Redis."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Env, send_json, wait_committed, wait_for

pytestmark = pytest.mark.integration


def intake(tenant: str, emails: list[str], phones: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "event_id": uuid.uuid4().hex,
        "tenant_id": tenant,
        "occurred_at": "2026-11-22T10:00:00+01:00",
        # A sales source: these tests are about identity; marketing ones say `form`.
        "source": "import",
        "emails": emails,
        "phones": list(phones),
        **extra,
    }


def of_type(changes: list[dict[str, Any]], change_type: str) -> list[dict[str, Any]]:
    return [c for c in changes if c["type"] == change_type]


async def test_intake_creates_contact_then_update_continues_versions_and_reaches_redis(
    env: Env, producer, reader, redis_client
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    tenant = "acme"

    first = intake(tenant, [" Ana@Example.com "], ["600 111 222"], fields={"first_name": "Ana"})
    await send_json(producer, env.topic("contacts.intake.v1"), first, key=b"whatever")
    values = await changes.wait_until(lambda v: len(v) >= 1)
    created = values[0]
    assert created["type"] == "contact.created"
    assert created["version"] == 1
    assert created["at"] == "2026-11-22T09:00:00.000Z"
    assert created["cause"] == {"kind": "intake", "event_id": first["event_id"]}
    contact_id = created["contact_id"]
    assert created["data"]["contact"]["emails"] == ["ana@example.com"]
    assert created["data"]["contact"]["phones"] == ["+34600111222"]

    second = intake(tenant, ["ana@example.com", "ana.work@example.com"], fields={"city": "Madrid"})
    await send_json(producer, env.topic("contacts.intake.v1"), second)
    values = await changes.wait_until(lambda v: len(v) >= 3)
    assert [(c["type"], c["version"]) for c in values] == [
        ("contact.created", 1),
        ("identifier.added", 2),
        ("contact.updated", 3),
    ]
    assert {c["contact_id"] for c in values} == {contact_id}
    assert len({c["change_id"] for c in values}) == 3
    assert values[2]["data"]["changed"] == {"city": [None, "Madrid"]}
    assert values[2]["data"]["match"] == {"by": "email", "identifier": "ana@example.com"}
    assert changes.records[0].key == f"{tenant}:{contact_id}".encode()

    prefix = f"{env.redis_prefix}:{{{tenant}}}"

    async def redis_has_version_3() -> dict[str, Any] | None:
        raw = await redis_client.get(f"{prefix}:c:{contact_id}")
        snap = None if raw is None else orjson.loads(raw)
        return snap if snap and snap["version"] == 3 else None

    snap = await wait_for(redis_has_version_3, 30, what="redis snapshot v3")
    assert snap["emails"] == ["ana@example.com", "ana.work@example.com"]
    assert snap["fields"] == {"first_name": "Ana", "city": "Madrid"}
    for key in ("email:ana@example.com", "email:ana.work@example.com", "phone:+34600111222"):
        assert await redis_client.get(f"{prefix}:{key}") == contact_id.encode()


async def test_garbage_is_dead_lettered_with_its_reason_and_the_agent_keeps_going(
    env: Env, producer, reader
) -> None:
    worker = await env.started_worker()
    topic = env.topic("contacts.intake.v1")
    dead = await reader(env.topic("contacts.deadletter.v1"))
    changes = await reader(env.topic("contacts.changes.v1"))

    bad: list[tuple[bytes, str]] = [
        (b"not json at all", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[1, 2, 3]", "invalid_json"),
        (
            orjson.dumps({"event_id": "x", "source": "form", "emails": ["a@b.com"]}),
            "unknown_tenant_format",
        ),
        (orjson.dumps({**intake("acme", ["a@example.com"]), "source": "carrier-pigeon"}), "schema"),
        (orjson.dumps({**intake("acme", ["a@example.com"]), "marketing": "yes"}), "schema"),
        (orjson.dumps(intake("acme", ["nope"], ["12"])), "no_valid_identifier"),
        (orjson.dumps({**intake("acme", ["big@example.com"]), "pad": "x" * 70_000}), "too_large"),
    ]
    for i, (raw, _reason) in enumerate(bad):
        await producer.send_and_wait(topic, raw, key=f"k{i}".encode())
    good = intake("acme", ["after.garbage@example.com"])
    await send_json(producer, topic, good)

    letters = await dead.wait_until(lambda v: len(v) >= len(bad))
    assert sorted(d["reason"] for d in letters) == sorted(reason for _, reason in bad)
    by_key = {d["key"]: d for d in letters}
    assert by_key["k0"]["raw"] == "not json at all"
    assert by_key["k1"]["raw"].startswith("\ufffd")
    assert by_key["k7"]["reason"] == "too_large"
    assert all(d["topic"] == topic and d["detail"] for d in letters)
    created = await changes.wait_until(lambda v: len(v) >= 1)
    assert created[0]["cause"]["event_id"] == good["event_id"]
    assert worker.process is not None and worker.process.poll() is None


async def test_sigkilled_worker_recovers_contacts_from_changelog_without_recreating_them(
    env: Env, producer, reader, servers
) -> None:
    worker = await env.started_worker(datadir="data-1")
    topic = env.topic("contacts.intake.v1")
    changes = await reader(env.topic("contacts.changes.v1"))
    emails = [f"person{i}@example.com" for i in range(20)]
    for email in emails:
        await send_json(producer, topic, intake("acme", [email]))
    await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= len(emails))
    # Killed once its offsets are committed: what it applied is durable in the
    # changelogs. (A kill at an arbitrary moment is the reliability issue's test.)
    for hop in (
        "contacts.intake.v1",
        "contact-stream.identity-ops.v1",
        "contact-stream.contact-ops.v1",
    ):
        await wait_committed(servers, f"cs-{env.prefix}", env.topic(hop))
    worker.kill()

    # A fresh data dir: the tables can only come back from their changelog topics.
    await env.started_worker(datadir="data-2")
    for email in emails:
        await send_json(producer, topic, intake("acme", [email], tags=["again"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.updated")) >= len(emails))
    assert len(of_type(values, "contact.created")) == len(emails)
    ids_created = {c["contact_id"] for c in of_type(values, "contact.created")}
    assert {c["contact_id"] for c in of_type(values, "contact.updated")} == ids_created
    # At-least-once: the restarted worker may see a second rebalance (when the
    # killed member's session expires) and publish a change again with the same
    # id (README, Operations). A consumer dedups on change_id; after that the
    # versions must be 1..n, with no two changes at one version.
    distinct = list({c["change_id"]: c for c in values}.values())
    versions: dict[str, list[int]] = {}
    for c in distinct:
        versions.setdefault(c["contact_id"], []).append(c["version"])
    wrong = {cid: v for cid, v in versions.items() if v != list(range(1, len(v) + 1))}
    assert not wrong, f"versions not 1..n (in topic order, repeats removed): {wrong}"


async def test_the_same_email_in_two_tenants_makes_two_contacts_and_logs_show_no_email(
    env: Env, producer, reader, redis_client
) -> None:
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    for tenant in ("acme", "globex"):
        await send_json(
            producer,
            env.topic("contacts.intake.v1"),
            intake(tenant, ["shared.person@example.com"], ["600 999 888"]),
        )
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 2)
    created = {c["tenant_id"]: c["contact_id"] for c in of_type(values, "contact.created")}
    assert set(created) == {"acme", "globex"}
    assert created["acme"] != created["globex"]

    async def both_projected() -> bool:
        keys = [f"{env.redis_prefix}:{{{t}}}:email:shared.person@example.com" for t in created]
        return all([await redis_client.get(k) for k in keys])

    await wait_for(both_projected, 30, what="both tenants in redis")
    for tenant, contact_id in created.items():
        key = f"{env.redis_prefix}:{{{tenant}}}:email:shared.person@example.com"
        assert await redis_client.get(key) == contact_id.encode()
    log = worker.log_text()
    assert "shared.person@example.com" not in log and "600999888" not in log


async def test_a_memory_store_worker_finds_its_contacts_again_after_a_restart(
    env: Env, producer, reader
) -> None:
    # `memory://` keeps nothing on disk: a restarted worker has its tables only
    # from their changelogs, and must find the restored contacts by their keys.
    worker = await env.started_worker(CS_STORE="memory://")
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", ["m@example.com"]))
    contact_id = (await changes.wait_until(lambda v: len(v) >= 1))[0]["contact_id"]
    worker.stop()
    worker.start()
    await worker.wait_ready()
    edit = {
        "event_id": "edit-1",
        "tenant_id": "acme",
        "type": "update_contact",
        "contact_id": contact_id,
        "tags_add": ["back"],
    }
    await send_json(producer, env.topic("contacts.commands.v1"), edit)
    values = await changes.wait_until(lambda v: len(v) >= 2)
    again = intake("acme", ["m@example.com"], tags=["again"])  # the identity table too
    await send_json(producer, env.topic("contacts.intake.v1"), again)
    values = await changes.wait_until(lambda v: len(v) >= 3)
    assert [(c["type"], c["version"], c["contact_id"]) for c in values[1:3]] == [
        ("contact.updated", 2, contact_id),
        ("contact.updated", 3, contact_id),
    ], values

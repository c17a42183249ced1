"""Commands end to end (SPEC §2.4, §3.2.5, §3.3): profile edits, trash, purge, suspension."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Env, send_json
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


def command(tenant: str, command_type: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "tenant_id": tenant, "type": command_type, **fields}


async def test_commands_edit_trash_restore_suspend_and_purge_a_contact(
    env: Env, producer, reader
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    intakes, commands = env.topic("contacts.intake.v1"), env.topic("contacts.commands.v1")

    await send_json(
        producer, intakes, intake("acme", ["ana@example.com"], fields={"city": "Madrid"})
    )
    created = (await changes.wait_until(lambda v: len(v) >= 1))[0]
    ana = created["contact_id"]

    async def then(cmd: dict[str, Any], count: int) -> list[dict[str, Any]]:
        await send_json(producer, commands, cmd)
        return await changes.wait_until(lambda v: len(v) >= count)

    values = await then(
        command(
            "acme",
            "update_contact",
            contact_id=ana,
            fields={"city": None, "company": "ACME"},
            add_emails=["Ana.Work@Example.com"],
            tags_add=["vip"],
        ),
        3,
    )
    assert [c["type"] for c in values[1:]] == ["identifier.added", "contact.updated"]
    assert values[1]["data"]["value"] == "ana.work@example.com"
    assert values[2]["data"]["changed"]["company"] == [None, "ACME"]

    values = await then(command("acme", "delete_contact", contact_ids=[ana]), 4)
    assert values[3]["type"] == "contact.deleted" and values[3]["data"]["purge_after"]
    values = await then(command("acme", "suspend_contact", contact_ids=[ana]), 5)
    assert values[4]["type"] == "command.rejected" and values[4]["data"]["reason"] == "trashed"

    # An intake matching the trashed contact (by its new alternate) restores it first.
    await send_json(producer, intakes, intake("acme", ["ana.work@example.com"], tags=["again"]))
    values = await changes.wait_until(lambda v: len(v) >= 7)
    assert [c["type"] for c in values[5:7]] == ["contact.restored", "contact.updated"]

    values = await then(command("acme", "suspend_contact", contact_ids=[ana, ana]), 9)
    # No activity: tier `inactive`, `discarded` while suspended (SPEC §3.6).
    assert [c["type"] for c in values[7:9]] == ["activity_tier.changed", "contact.suspended"]

    ghost = str(uuid.uuid4())
    values = await then(command("acme", "restore_contact", contact_ids=[ghost]), 10)
    assert values[9]["type"] == "command.rejected"
    assert values[9]["contact_id"] == ghost and values[9]["version"] == 0
    assert values[9]["data"]["reason"] == "unknown_contact"

    await then(command("acme", "delete_contact", contact_ids=[ana]), 11)
    values = await then(command("acme", "purge_contact", contact_ids=[ana]), 12)
    assert values[11]["type"] == "contact.purged"
    versions = [c["version"] for c in values if c["contact_id"] == ana]
    assert versions == list(range(1, len(versions) + 1))

    # After the purge the same identifiers make a brand-new contact with only the new data.
    await send_json(producer, intakes, intake("acme", ["ana@example.com", "ana.work@example.com"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 2)
    reborn = of_type(values, "contact.created")[1]
    assert reborn["contact_id"] != ana
    assert reborn["data"]["contact"]["emails"] == ["ana@example.com", "ana.work@example.com"]
    assert reborn["data"]["contact"]["fields"] == {}


async def test_unknown_and_malformed_commands_are_dead_lettered(env: Env, producer, reader) -> None:
    await env.started_worker()
    dead = await reader(env.topic("contacts.deadletter.v1"))
    changes = await reader(env.topic("contacts.changes.v1"))
    topic = env.topic("contacts.commands.v1")
    await send_json(producer, topic, command("acme", "teleport_contact", contact_ids=["a"]))
    await send_json(producer, topic, command("acme", "delete_contact", contact_ids=[]))
    # A well-formed command naming an unknown contact is no dead letter (SPEC §2.4).
    listed = command("acme", "add_to_list", list_id="newsletter", contact_ids=["a"])
    await send_json(producer, topic, listed)
    letters = await dead.wait_until(lambda v: len(v) >= 2)
    assert sorted(d["reason"] for d in letters) == ["schema", "unknown_type"]
    assert orjson.loads(letters[0]["raw"])["tenant_id"] == "acme"
    (rejected,) = await changes.wait_until(lambda v: len(v) >= 1)
    assert rejected["type"] == "command.rejected" and rejected["version"] == 0
    assert rejected["data"] == {"reason": "unknown_contact", "command": "add_to_list"}
    assert len(await dead.read_to_end()) == 2


async def test_trash_purge_fires_at_the_exact_due_time_and_frees_the_identifiers(
    env: Env, producer, reader
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    intakes, commands = env.topic("contacts.intake.v1"), env.topic("contacts.commands.v1")
    day = 86_400_000
    now = int(time.time() * 1000)
    for email in ("overdue@example.com", "soon@example.com"):
        # Created 31 days ago: `at` never goes back along a contact's versions.
        await send_json(
            producer, intakes, intake("acme", [email], occurred_at=rfc3339(now - 31 * day))
        )
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 2)
    ids = {c["data"]["contact"]["emails"][0]: c["contact_id"] for c in created}
    # Deleted 30 days ago minus 1 s, and 30 days ago plus 3 s: with the default
    # 30-day retention one purge is overdue, the other is due in ~3 s.
    deleted_at = {
        "overdue@example.com": now - 30 * day - 1000,
        "soon@example.com": now - 30 * day + 3000,
    }
    for email, at in deleted_at.items():
        await send_json(
            producer,
            commands,
            command("acme", "delete_contact", contact_ids=[ids[email]], occurred_at=rfc3339(at)),
        )
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.purged")) >= 2, timeout=30)
    fired_at = time.time() * 1000
    purged = {c["contact_id"]: c for c in of_type(values, "contact.purged")}
    deleted = {c["contact_id"]: c for c in of_type(values, "contact.deleted")}
    for email, at in deleted_at.items():
        due = at + 30 * day
        assert deleted[ids[email]]["data"]["purge_after"] == rfc3339(due)
        assert purged[ids[email]]["at"] == rfc3339(due)
        assert purged[ids[email]]["cause"] == {"kind": "timer", "event_id": None}
    soon_due = deleted_at["soon@example.com"] + 30 * day
    assert fired_at - soon_due < 2000 + 1000  # within 2 s (plus this reader's own poll lag)
    # The purged contact's email is free again: a new intake creates a new contact.
    await send_json(producer, intakes, intake("acme", ["overdue@example.com"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 3)
    assert of_type(values, "contact.created")[2]["contact_id"] != ids["overdue@example.com"]


def rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


async def test_an_overdue_purge_fires_at_its_due_time_before_a_later_command(
    env: Env, producer, reader
) -> None:
    # No worker runs while the purge falls due; once back, the purge (inline
    # before the next command, or by tick) comes first, at its due time.
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    intakes, commands = env.topic("contacts.intake.v1"), env.topic("contacts.commands.v1")
    day = 86_400_000
    now = int(time.time() * 1000)
    await send_json(
        producer, intakes, intake("acme", ["late@example.com"], occurred_at=rfc3339(now - 40 * day))
    )
    contact_id = (await changes.wait_until(lambda v: len(v) >= 1))[0]["contact_id"]
    # Deleted 35 days ago: due 5 days ago. Stop the worker before it can tick.
    worker.kill()
    # Both keyed by the contact, as a producer would: one partition keeps their order.
    key = contact_id.encode()
    await send_json(
        producer,
        commands,
        command(
            "acme", "delete_contact", contact_ids=[contact_id], occurred_at=rfc3339(now - 35 * day)
        ),
        key=key,
    )
    await send_json(
        producer, commands, command("acme", "restore_contact", contact_ids=[contact_id]), key=key
    )
    await env.started_worker(datadir="data")
    values = await changes.wait_until(lambda v: any(c["type"] == "command.rejected" for c in v))
    # Killed before its offsets were committed, the worker replays the intake and
    # re-sends its effects with the same ids: a consumer dedups on change_id.
    values = list({c["change_id"]: c for c in values}.values())
    types = [c["type"] for c in values]
    assert types[:3] == ["contact.created", "contact.deleted", "contact.purged"]
    assert values[2]["at"] == rfc3339(now - 5 * day)
    rejected = of_type(values, "command.rejected")[0]
    assert rejected["data"]["reason"] == "unknown_contact" and rejected["version"] == 0


async def test_create_contact_is_a_manual_creation_rejected_when_an_identifier_exists(
    env: Env, producer, reader
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    commands = env.topic("contacts.commands.v1")
    await send_json(
        producer,
        commands,
        command("acme", "create_contact", emails=["eva@example.com"], fields={"city": "Lugo"}),
    )
    created = (await changes.wait_until(lambda v: len(v) >= 1))[0]
    assert created["type"] == "contact.created"
    assert created["cause"]["kind"] == "command"
    assert created["data"]["contact"]["source"] == "manual"
    # The same email again, by hand: a duplicate, with the existing contact's id (SPEC §3.2.6).
    await send_json(
        producer, commands, command("acme", "create_contact", emails=["Eva@Example.com"])
    )
    values = await changes.wait_until(lambda v: len(v) >= 2)
    rejected = values[1]
    assert rejected["type"] == "intake.rejected" and rejected["contact_id"] == created["contact_id"]
    assert rejected["data"]["reason"] == "duplicate"
    assert rejected["data"]["existing_contact_id"] == created["contact_id"]

"""SPEC §3.2.9 on real workers: intakes racing on shared identifiers end as if serial.

Two worker processes, 8 partitions: an intake's identifiers and its contact
are on different partitions, often on different workers.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Env, Servers, wait_quiet
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration
HOPS = ("contacts.intake.v1", "contact-stream.identity-ops.v1", "contact-stream.contact-ops.v1")


async def two_workers(env: Env) -> None:
    first = env.worker(datadir="a", CS_PARTITIONS="8")
    first.start()
    await first.wait_ready()
    second = env.worker(datadir="b", CS_PARTITIONS="8")
    second.start()
    await second.wait_ready()


async def send_all(producer, env: Env, intakes: list[dict[str, Any]]) -> None:
    topic = env.topic("contacts.intake.v1")
    # Random record keys: the input's partition says nothing about identity.
    futures = [
        await producer.send(topic, orjson.dumps(i), key=f"k{random.random()}".encode())
        for i in intakes
    ]
    await asyncio.gather(*futures)


async def settle(env: Env, servers: Servers) -> None:
    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(h) for h in HOPS])


def identifiers_by_contact(changes: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each contact's identifiers as the change events tell them."""
    held: dict[str, set[str]] = defaultdict(set)
    for c in changes:
        if c["type"] == "contact.created":
            snap = c["data"]["contact"]
            held[c["contact_id"]] |= set(snap["emails"]) | set(snap["phones"])
        elif c["type"] == "identifier.added":
            held[c["contact_id"]].add(c["data"]["value"])
    return held


async def test_twenty_identical_form_submits_at_once_create_one_contact(
    env: Env, producer, reader, servers
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    submit = {
        "emails": ["ana@example.com"],
        "phones": ["600111222"],
        "fields": {"first_name": "Ana"},
    }
    await send_all(producer, env, [intake("acme", **submit) for _ in range(20)])
    await settle(env, servers)
    values = await changes.read_to_end()
    assert len(of_type(values, "contact.created")) == 1
    assert {c["type"] for c in values} == {"contact.created"}


async def test_ten_new_emails_sharing_one_new_phone_end_on_one_contact(
    env: Env, producer, reader, servers
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    intakes = [intake("acme", [f"person{i}@example.com"], ["600222333"]) for i in range(10)]
    await send_all(producer, env, intakes)
    await settle(env, servers)
    values = await changes.read_to_end()
    assert len(of_type(values, "contact.created")) == 1
    held = identifiers_by_contact(values)
    assert len(held) == 1
    (identifiers,) = held.values()
    assert identifiers == {f"person{i}@example.com" for i in range(10)} | {"+34600222333"}


async def test_a_random_race_never_gives_an_identifier_two_owners_nor_loses_one(
    env: Env, producer, reader, servers
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    rng = random.Random(11)
    emails = [f"u{i}@example.com" for i in range(40)]
    phones = [f"6{i:08d}" for i in range(20)]
    intakes = [
        intake(
            "acme",
            rng.sample(emails, rng.randint(0, 2)) or [rng.choice(emails)],
            rng.sample(phones, rng.randint(0, 1)),
        )
        for _ in range(300)
    ]
    await send_all(producer, env, intakes)
    await settle(env, servers)
    values = await changes.read_to_end()
    held = identifiers_by_contact(values)
    owners: dict[str, list[str]] = defaultdict(list)
    for contact_id, identifiers in held.items():
        for identifier in identifiers:
            owners[identifier].append(contact_id)
    assert all(len(ids) == 1 for ids in owners.values()), "an identifier has two owners"
    sent = {e for i in intakes for e in i["emails"]} | {
        f"+34{p}" for i in intakes for p in i["phones"]
    }
    dropped = {c["data"]["value"] for c in of_type(values, "identifier.dropped")}
    assert sent <= set(owners) | dropped, "an identifier was lost"
    # Versions per contact are 1..n with no gap or repeat.
    versions: dict[str, list[int]] = defaultdict(list)
    for c in values:
        versions[c["contact_id"]].append(c["version"])
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in versions.values())

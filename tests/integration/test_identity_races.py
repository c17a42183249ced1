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

from tests.integration.conftest import Env, Servers, Worker, wait_quiet
from tests.integration.reference import compare, reference_changes
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration
HOPS = (
    "contacts.intake.v1",
    "contact-stream.identity-ops.v1",
    "contact-stream.contact-ops.v1",
    "contact-stream.quota-ops.v1",
)


async def two_workers(env: Env) -> list[Worker]:
    return await env.started_workers("a", "b", CS_PARTITIONS="8")


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


def race_intakes(seed: int, count: int, emails: int, phones: int) -> list[dict[str, Any]]:
    """Random intakes over a small pool of identifiers, with fields written at random times.

    Each carries a tag of its own, so each applied intake shows in its
    contact's change events; `occurred_at` varies so last-writer-wins matters.
    """
    rng = random.Random(seed)
    email_pool = [f"u{i}@example.com" for i in range(emails)]
    phone_pool = [f"6{i:08d}" for i in range(phones)]
    return [
        intake(
            "acme",
            rng.sample(email_pool, rng.randint(0, 2)) or [rng.choice(email_pool)],
            rng.sample(phone_pool, rng.randint(0, 1)),
            event_id=f"ev-{seed}-{n:04d}",
            occurred_at=f"2026-11-{rng.randint(1, 20):02d}T{rng.randint(0, 23):02d}:00:00Z",
            fields={"city": rng.choice(["Madrid", "Lima", "Quito", None])},
            tags=[f"t{n}"],
            # A third activate marketing: each of those goes through the quota's hop.
            source=rng.choice(["form", "import", "import"]),
        )
        for n in range(count)
    ]


async def test_two_thousand_racing_intakes_end_as_the_sequential_run_in_the_reported_order(
    env: Env, producer, reader, servers
) -> None:
    """SPEC §3.2.9 on 2 workers x 8 partitions: 2,000 intakes over 300 identifiers at once.

    The final changes equal, event for event (ids, versions, data), a
    sequential fold of the same records through the domain in the order the
    system reports (tests/integration/reference.py); so every invariant of
    the sequential run holds: one owner per identifier, none lost, versions 1..n.
    """
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    intake_log = await reader(env.topic("contacts.intake.v1"))
    intakes = race_intakes(seed=11, count=2000, emails=220, phones=80)
    await send_all(producer, env, intakes)
    await settle(env, servers)
    await changes.read_to_end()
    await intake_log.read_to_end()
    assert len(intake_log.records) == len(intakes)
    system = changes.values()
    assert len({c["change_id"] for c in system}) == len(system), "a change was published twice"
    compare(system, reference_changes(intake_log.records, changes.records))
    assert {c["cause"]["event_id"] for c in system} == {i["event_id"] for i in intakes}

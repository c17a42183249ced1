"""SPEC §2.7, §6 / issue 7 (5): bad input among 10,000 valid events.

Seeded random bad records of every kind the contract names (random bytes,
invalid UTF-8, non-objects, deep nesting, huge values, missing or bad
tenant ids, unknown types, wrong types, missing fields, no valid
identifier) go to the three input topics mixed with 10,000 valid events
(6,000 intakes, then 2,000 engagements and 2,000 edits of the contacts
they made; some with far-future or ancient times, all with keys that say
nothing). Every bad record must yield exactly one dead letter naming its
own topic, partition and offset, with the reason the first failing check
gives; every valid event its effect; and the worker must still run.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Env, Servers, wait_quiet
from tests.integration.test_identity_races import HOPS

pytestmark = pytest.mark.integration

INTAKES, ENGAGEMENTS, EDITS, BAD_PER_TOPIC = 6000, 2000, 2000, 300
TOPICS = ("contacts.intake.v1", "contacts.engagement.v1", "contacts.commands.v1")


def eid() -> str:
    return uuid.uuid4().hex


def bad_record(rng: random.Random, topic: str) -> tuple[bytes, str]:
    """One bad record for `topic` and the dead-letter reason it must get."""
    kind = rng.randrange(9)
    valid_type = {"contacts.engagement.v1": "open", "contacts.commands.v1": "delete_contact"}
    base: dict[str, Any] = {"event_id": eid(), "tenant_id": "acme"}
    if topic in valid_type:
        base["type"] = valid_type[topic]
    if kind == 0:  # random bytes, never UTF-8
        return b"\xff" + rng.randbytes(rng.randrange(1, 200)), "invalid_json"
    if kind == 1:  # JSON, but not an object
        return orjson.dumps(rng.choice([[1, 2], 3.5, "text", None, True])), "invalid_json"
    if kind == 2:  # nesting deeper than any parser should follow
        depth = rng.randrange(1100, 5000)  # orjson stops at 1024 levels
        return b'{"tenant_id":"acme","x":' + b"[" * depth + b"]" * depth + b"}", "invalid_json"
    if kind == 3:  # a huge value (commands may be 512 KiB: a bulk names 10,000 ids)
        low = 530_000 if topic == "contacts.commands.v1" else 70_000
        return orjson.dumps({**base, "pad": "x" * rng.randrange(low, low + 130_000)}), "too_large"
    if kind == 4:  # no tenant, or one that is not a tenant id
        value = dict(base)
        choice = rng.randrange(3)
        if choice == 0:
            del value["tenant_id"]
        else:
            value["tenant_id"] = ["bad tenant!", 12345][choice - 1]
        return orjson.dumps(value), "unknown_tenant_format"
    if kind == 5 and topic != "contacts.intake.v1":  # a type the contract does not name
        return orjson.dumps({**base, "type": "teleport"}), "unknown_type"
    if kind == 6:  # a required field missing
        value = {k: v for k, v in base.items() if k != "event_id"}
        return orjson.dumps({**value, "emails": ["a@example.com"], "contact_ids": ["x"]}), "schema"
    if kind == 7:  # wrong types
        wrong = {
            "contacts.intake.v1": {"source": "form", "emails": "not-a-list"},
            "contacts.engagement.v1": {"email": 42},
            "contacts.commands.v1": {"contact_ids": "x"},
        }[topic]
        return orjson.dumps({**base, **wrong}), "schema"
    # No valid identifier: invalid or blocked, the only thing named.
    if topic == "contacts.intake.v1":
        return orjson.dumps(
            {**base, "source": "form", "emails": ["noreply@x.com", "not-an-email"]}
        ), "no_valid_identifier"
    if topic == "contacts.engagement.v1":
        return orjson.dumps({**base, "email": "test@example.com"}), "no_valid_identifier"
    return orjson.dumps({**base, "contact_ids": []}), "schema"


def timestamp(rng: random.Random) -> str:
    """Mostly ordinary; some from the far future (clamped) and some ancient."""
    return rng.choice(
        ["2026-11-22T10:00:00Z"] * 8 + ["2999-01-01T00:00:00Z", "1971-01-01T00:00:00Z"]
    )


async def send(producer, topic: str, values: list[bytes]) -> list[tuple[int, int]]:
    """(partition, offset) of each record, keyed with keys that say nothing."""
    futures = [await producer.send(topic, v, key=f"k{random.random()}".encode()) for v in values]
    return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]


async def test_every_bad_record_gets_one_dead_letter_and_every_valid_event_its_effect(
    env: Env, producer, reader, servers: Servers
) -> None:
    rng = random.Random(41)
    worker = await env.started_worker(CS_PARTITIONS="8")
    changes = await reader(env.topic("contacts.changes.v1"))
    dead = await reader(env.topic("contacts.deadletter.v1"))

    expected: dict[tuple[str, int, int], str] = {}

    async def send_bad(topic: str, count: int) -> None:
        records = [bad_record(rng, topic) for _ in range(count)]
        coordinates = await send(producer, env.topic(topic), [raw for raw, _ in records])
        for (partition, offset), (_, reason) in zip(coordinates, records, strict=True):
            expected[(env.topic(topic), partition, offset)] = reason

    intakes = [
        {
            "event_id": eid(),
            "tenant_id": "acme",
            "source": rng.choice(["form", "import", "api"]),
            "occurred_at": timestamp(rng),
            "emails": [f"f{n}@example.com"],
            "tags": [f"t{n % 7}"],
        }
        for n in range(INTAKES)
    ]
    half = BAD_PER_TOPIC // 2
    await send_bad(TOPICS[0], half)
    await send(producer, env.topic(TOPICS[0]), [orjson.dumps(i) for i in intakes])
    await send_bad(TOPICS[0], BAD_PER_TOPIC - half)
    created = await changes.wait_until(
        lambda v: sum(1 for c in v if c["type"] == "contact.created") >= INTAKES, timeout=300
    )
    ids = {
        c["data"]["contact"]["emails"][0]: c["contact_id"]
        for c in created
        if c["type"] == "contact.created"
    }

    engagements = [
        {
            "event_id": eid(),
            "tenant_id": "acme",
            "type": rng.choice(["open", "click", "sent"]),
            "occurred_at": timestamp(rng),
            "email": f"F{rng.randrange(INTAKES)}@Example.com",
        }
        for n in range(ENGAGEMENTS)
    ]
    edits = [
        {
            "event_id": eid(),
            "tenant_id": "acme",
            "type": "update_contact",
            "contact_id": ids[f"f{rng.randrange(INTAKES)}@example.com"],
            "tags_add": [f"edit{n}"],
        }
        for n in range(EDITS)
    ]
    await send_bad(TOPICS[1], half)
    await send_bad(TOPICS[2], half)
    await send(producer, env.topic(TOPICS[1]), [orjson.dumps(e) for e in engagements])
    await send(producer, env.topic(TOPICS[2]), [orjson.dumps(e) for e in edits])
    await send_bad(TOPICS[1], BAD_PER_TOPIC - half)
    await send_bad(TOPICS[2], BAD_PER_TOPIC - half)

    hops = [env.topic(h) for h in (*HOPS, *TOPICS[1:])]
    await wait_quiet(servers, f"cs-{env.prefix}", hops, timeout=300)
    values = await changes.read_to_end()
    letters = await dead.read_to_end()

    # Exactly one dead letter per bad record, at its coordinates, with its reason.
    seen = Counter((d["topic"], d["partition"], d["offset"]) for d in letters)
    assert not {k: n for k, n in seen.items() if n > 1}, "a record dead-lettered twice"
    assert set(seen) == set(expected), (
        f"dead letters for valid records: {len(set(seen) - set(expected))}; "
        f"bad records without one: {len(set(expected) - set(seen))}"
    )
    reasons = {(d["topic"], d["partition"], d["offset"]): d["reason"] for d in letters}
    wrong = {k: (reasons[k], r) for k, r in expected.items() if reasons[k] != r}
    assert not wrong, f"unexpected reasons (got, wanted): {list(wrong.values())[:10]}"

    # Every valid event took effect.
    effects = Counter(
        c["cause"]["event_id"]
        for c in values
        if c["type"] in ("contact.created", "engagement.scored", "contact.updated")
    )
    for batch in (intakes, engagements, edits):
        missing = [e["event_id"] for e in batch if effects[e["event_id"]] == 0]
        assert not missing, f"{len(missing)} valid events without effect"
    print(
        f"\nbad records: {len(expected)} ({dict(Counter(expected.values()))}); "
        f"valid events: {INTAKES + ENGAGEMENTS + EDITS}; change events: {len(values)}"
    )
    assert worker.process is not None and worker.process.poll() is None
    assert "failed with" not in worker.log_text()

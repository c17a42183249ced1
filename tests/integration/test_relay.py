"""SPEC §6 / issue 7: the change relay puts each change of the outbox on the changes topic once.

Change events go straight onto the outbox (stream/topics.py), with the
copies a replay sends: a contact's earlier versions again, an unversioned
event (`command.rejected` for an unknown id) again. Meanwhile the worker is
SIGKILLed twice while the relay is moving them, and restarted each time.
The changes topic, read `read_committed`, must then hold every change once
and each contact's changes in version order. A second reader that also sees
uncommitted records shows what the kills left behind (aborted transactions).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.topic_reader import assign_from_beginning, reached
from tests.integration.conftest import OUTBOX, Env, Servers, wait_committed

CONTACTS, VERSIONS, UNVERSIONED, CHUNKS = 400, 12, 120, 12


def change(tenant: str, contact: str, version: int, change_id: str) -> dict[str, Any]:
    return {
        "change_id": change_id,
        "tenant_id": tenant,
        "contact_id": contact,
        "version": version,
        "type": "command.rejected" if version == 0 else "contact.updated",
        "at": "2026-11-01T00:00:00.000Z",
        "cause": {"kind": "command", "event_id": f"e-{change_id}"},
        "data": {},
    }


def outbox_stream(tenant: str, rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """Every contact's versions in order and the unversioned events, interleaved,
    with replayed copies spliced in; and how many of the records are copies."""
    sent = dict.fromkeys(range(CONTACTS), 0)
    unversioned: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    copies = 0
    while any(v < VERSIONS for v in sent.values()) or len(unversioned) < UNVERSIONED:
        contacts_left = [c for c, v in sent.items() if v < VERSIONS]
        if len(unversioned) < UNVERSIONED and (not contacts_left or rng.random() < 0.02):
            unversioned.append(change(tenant, f"gone-{len(unversioned)}", 0, uuid.uuid4().hex))
            out.append(unversioned[-1])
            if rng.random() < 0.5:
                out.append(rng.choice(unversioned))
                copies += 1
            continue
        n = rng.choice(contacts_left)
        contact = f"c{n}"
        if sent[n] and rng.random() < 0.15:  # a replay from an earlier offset
            start = rng.randint(1, sent[n])
            out += [change(tenant, contact, v, f"{contact}-{v}") for v in range(start, sent[n] + 1)]
            copies += sent[n] + 1 - start
        sent[n] += 1
        out.append(change(tenant, contact, sent[n], f"{contact}-{sent[n]}"))
    return out, copies


async def read_all(servers: Servers, topic: str, isolation: str) -> list[dict[str, Any]]:
    """Every record of the topic, each value with its record timestamp under "_ts"."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        ends = await assign_from_beginning(consumer, topic)
        values: list[dict[str, Any]] = []
        while not await reached(consumer, ends):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values += [{**orjson.loads(r.value), "_ts": r.timestamp} for r in records]
        return values
    finally:
        await consumer.stop()


async def test_each_change_of_the_outbox_is_published_once_across_two_kills(
    env: Env, servers: Servers, producer: AIOKafkaProducer, reader: Any
) -> None:
    tenant = f"relay{uuid.uuid4().hex[:8]}"
    stream, copies = outbox_stream(tenant, random.Random(7))
    worker = await env.started_worker(CS_PARTITIONS="4")
    changes = await reader(env.topic("contacts.changes.v1"))
    outbox = env.topic(OUTBOX)
    size = -(-len(stream) // CHUNKS)
    # Each outbox record has a timestamp of its own; a change keeps its first copy's.
    base = int(time.time() * 1000) - 3_600_000
    first_at: dict[str, int] = {}
    for position, value in enumerate(stream):
        first_at.setdefault(value["change_id"], base + position)
    kills = 0
    for chunk in range(CHUNKS):
        for position in range(chunk * size, min((chunk + 1) * size, len(stream))):
            value = stream[position]
            key = f"{tenant}:{value['contact_id']}".encode()
            await producer.send(outbox, orjson.dumps(value), key=key, timestamp_ms=base + position)
        await producer.flush()
        if chunk in (3, 7):
            # Killed while the relay is moving this chunk: some of it is on the
            # changes topic, the rest (an open transaction, perhaps) is not.
            shown = len(changes.records)
            await changes.wait_until(lambda v, shown=shown: len(v) > shown + 20, timeout=60)
            worker.kill()
            kills += 1
            worker.start()
            await worker.wait_ready()

    await wait_committed(servers, f"cs-{env.prefix}-change-relay", outbox, timeout=120)
    published = await read_all(servers, env.topic("contacts.changes.v1"), "read_committed")
    # The reader that followed the topic while the relay wrote it saw the same.
    followed = [orjson.loads(r.value)["change_id"] for r in await changes.poll()]
    followed_all = await changes.read_to_end()
    print(f"\nfollowing reader: {len(followed)} then {len(followed_all)}")
    assert sorted(c["change_id"] for c in followed_all) == sorted(c["change_id"] for c in published)
    uncommitted = await read_all(servers, env.topic("contacts.changes.v1"), "read_uncommitted")
    expected = {c["change_id"] for c in stream}
    counts = Counter(c["change_id"] for c in published)
    print(
        f"\noutbox {len(stream)} records ({copies} copies, {len(expected)} changes), {kills} kills;"
        f" published (read_committed) {len(published)}, records incl. aborted"
        f" (read_uncommitted) {len(uncommitted)}"
    )
    assert {cid: n for cid, n in counts.items() if n > 1} == {}, "a change published twice"
    assert set(counts) == expected, f"lost: {sorted(expected - set(counts))[:5]}"
    moved = [c["change_id"] for c in published if c["_ts"] != first_at[c["change_id"]]]
    assert not moved, (
        f"changes published with another timestamp than their outbox record: {moved[:5]}"
    )
    for n in range(CONTACTS):
        versions = [c["version"] for c in published if c["contact_id"] == f"c{n}"]
        assert versions == list(range(1, VERSIONS + 1)), f"c{n}: {versions}"
    assert "failed with" not in worker.log_text()

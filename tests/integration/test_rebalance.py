"""SPEC §6.4: a second worker joins, and later leaves, while the race is in flight.

Every rebalance pauses and resumes partitions under records already fetched:
exactly where Faust dropped records (docs/findings/faust-fetch-drop.md). One
worker starts the 2,000-intake race; a second joins after a fifth of it is
applied and leaves (SIGTERM, a graceful shutdown) after half. Once every hop
is quiet, nothing is lost and nothing applied twice: the changes topic
(read_committed) holds each change id once, the change events equal the
sequential fold in the reported order, and every intake took effect exactly
once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import Env, Servers, send_json, wait_for, wait_quiet
from tests.integration.reference import assert_sequential
from tests.integration.test_commands import rfc3339
from tests.integration.test_engagement import engagement
from tests.integration.test_identity_crash import PRIMARY, applied_event_ids, dedupe
from tests.integration.test_identity_races import HOPS, race_intakes, send_all
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration

DAY = 86_400_000


async def test_a_worker_joining_and_leaving_mid_race_loses_nothing_and_applies_nothing_twice(
    env: Env, producer, reader, servers: Servers
) -> None:
    first = await env.started_worker(datadir="a", CS_PARTITIONS="8")
    changes = await reader(env.topic("contacts.changes.v1"))
    intake_log = await reader(env.topic("contacts.intake.v1"))
    intakes = race_intakes(seed=47, count=2000, emails=220, phones=80)
    await send_all(producer, env, intakes)

    def applied() -> int:
        return len(applied_event_ids(changes.values()))

    await changes.wait_until(lambda v: len(applied_event_ids(v)) >= 400, timeout=180)
    second = env.worker(datadir="b", CS_PARTITIONS="8")
    second.start()
    at_join = applied()
    await second.wait_ready(timeout=120)
    await changes.wait_until(lambda v: len(applied_event_ids(v)) >= 1000, timeout=180)
    second.stop()  # SIGTERM: leaves the group
    at_leave = applied()
    assert at_leave < len(intakes), "the race was over before the second worker left"

    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(h) for h in HOPS], timeout=300)
    raw = await changes.read_to_end(timeout=120)
    values, repeated = dedupe(raw)
    print(
        f"\napplied at join {at_join}, at leave {at_leave} of {len(intakes)};"
        f" change records {len(raw)}, distinct {len(values)}, repeated ids {len(repeated)}"
    )
    assert first.process is not None and first.process.poll() is None, first.failure_text()
    assert "failed with" not in first.log_text() + second.log_text()
    assert not repeated, f"change ids published more than once: {list(repeated.items())[:5]}"
    done = [c["cause"]["event_id"] for c in values if c["type"] in PRIMARY]
    assert sorted(done) == sorted(i["event_id"] for i in intakes), "lost or applied twice"
    await intake_log.read_to_end()
    assert_sequential(values, intake_log.records, changes.records)


async def test_due_tier_changes_fire_once_at_their_time_while_partitions_move(
    env: Env, producer, reader
) -> None:
    # SPEC §6.4: timers move with their partitions. 48 contacts whose recency
    # tier turns `frequent` (16 days after their last activity) at times spread
    # over ~24 s, while a second worker joins and later leaves: each change
    # fires once, with `at` = its due time, whoever owns the contact then.
    await env.started_worker(datadir="a", CS_PARTITIONS="8")
    changes = await reader(env.topic("contacts.changes.v1"))
    now = int(time.time() * 1000)
    await send_all(
        producer,
        env,
        [
            intake("acme", [f"due{n}@example.com"], occurred_at=rfc3339(now - 30 * DAY))
            for n in range(48)
        ],
    )
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 48)
    ids = [c["contact_id"] for c in of_type(created, "contact.created")]
    start = int(time.time() * 1000)
    due = {contact_id: start + 8_000 + 500 * n for n, contact_id in enumerate(ids)}
    topic = env.topic("contacts.engagement.v1")
    for contact_id, at in due.items():
        event = engagement("acme", "sent", contact_id=contact_id)
        await send_json(producer, topic, {**event, "occurred_at": rfc3339(at - 16 * DAY)})

    def fired(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            c
            for c in values
            if c["type"] == "activity_tier.changed"
            and c["data"] == {"from": "new", "to": "frequent"}
        ]

    # The first boundaries fall due with one worker; then a second joins.
    await changes.wait_until(lambda v: len(fired(v)) >= 2, timeout=60)
    second = env.worker(datadir="b", CS_PARTITIONS="8")
    second.start()
    await second.wait_ready(timeout=120)
    await wait_for(lambda: time.time() * 1000 > start + 20_000, 60, what="mid-schedule")
    second.stop()  # the rest fall due after it left

    values = await changes.wait_until(
        lambda v: len({c["contact_id"] for c in fired(v)}) >= 48, timeout=120
    )
    # A replay after a rebalance may send a change to the outbox again; the
    # change relay publishes it once.
    ids = [c["change_id"] for c in values]
    assert len(ids) == len(set(ids)), "a change id published more than once"
    distinct = {c["change_id"]: c for c in fired(values)}.values()
    twice = {
        cid: [(c["version"], c["at"]) for c in distinct if c["contact_id"] == cid]
        for cid in due
        if sum(1 for c in distinct if c["contact_id"] == cid) != 1
    }
    assert not twice, f"fired twice or never (version, at): {twice}"
    for change in distinct:
        assert change["at"] == rfc3339(due[change["contact_id"]]), change
        assert change["cause"] == {"kind": "timer", "event_id": None}

"""Engagement events end to end (SPEC §2.3, §3.5, §3.6): addressing, scores, tiers, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Env, send_json, wait_for
from tests.integration.test_commands import command
from tests.integration.test_http import scrape
from tests.integration.test_identity_races import send_all, two_workers
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


def engagement(tenant: str, event_type: str, **address: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "tenant_id": tenant,
        "type": event_type,
        "occurred_at": "2026-11-22T10:05:00Z",
        **address,
    }


async def test_engagement_by_email_phone_or_id_scores_the_contact_and_sets_its_tier(
    env: Env, producer, reader
) -> None:
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    dead = await reader(env.topic("contacts.deadletter.v1"))
    topic = env.topic("contacts.engagement.v1")
    await send_json(
        producer,
        env.topic("contacts.intake.v1"),
        intake("acme", ["ana@example.com"], ["600111222"]),
    )
    ana = (await changes.wait_until(lambda v: len(v) >= 1))[0]["contact_id"]
    metrics = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}/metrics"

    async def unlocked() -> bool:  # the intake's unlocks are out: both entries settled
        return (await scrape(metrics))["cs_identity_locks_held"] == 0

    await wait_for(unlocked, 30, what="the intake's identifier locks released")

    await send_json(producer, topic, engagement("acme", "open", email="ANA@example.com"))
    values = await changes.wait_until(lambda v: len(v) >= 3)
    assert [(c["type"], c["version"]) for c in values[1:3]] == [
        ("engagement.scored", 2),
        ("activity_tier.changed", 3),
    ]
    assert values[1]["data"]["points"] == 5 and values[1]["cause"]["kind"] == "engagement"
    assert values[2]["data"] == {"from": "inactive", "to": "new"}

    await send_json(producer, topic, engagement("acme", "click", phone="600 111 222"))
    await send_json(producer, topic, engagement("acme", "high_intent_visit", contact_id=ana))
    values = await changes.wait_until(lambda v: len(of_type(v, "engagement.scored")) >= 3)
    scores = sorted(c["data"]["score"] for c in of_type(values, "engagement.scored"))
    assert scores[-1] == pytest.approx(30.0)  # 5 + 10 + 15, all at one time: no decay
    # One worker holds every partition and both entries were settled: the email
    # and the phone were read in place, without the lookup hop.
    scraped = await scrape(metrics)
    assert scraped["cs_lookups_local_total"] == 2
    # Once ready, the worker froze its heap (CS_GC_FREEZE): full collections skip it.
    assert scraped["cs_gc_frozen_objects"] > 10_000
    # A first start on fresh topics: every topic was in the consumer's metadata when it
    # subscribed (one missing made the group rebalance 5 minutes later; stream/topics.py).
    assert "not found in cluster metadata" not in worker.log_text()

    # Nobody owns it, an unknown id, and a blocked address: dead letters, nothing lost.
    await send_json(producer, topic, engagement("acme", "open", email="nobody@example.com"))
    await send_json(producer, topic, engagement("acme", "open", contact_id=str(uuid.uuid4())))
    await send_json(producer, topic, engagement("acme", "open", email="noreply@example.com"))
    letters = await dead.wait_until(lambda v: len(v) >= 3)
    assert sorted(d["reason"] for d in letters) == [
        "no_valid_identifier",
        "unknown_contact",
        "unknown_contact",
    ]
    for letter in letters:
        # The original record, to replay once the contact exists.
        assert letter["topic"] == topic and '"type":"open"' in letter["raw"].replace(" ", "")


async def test_a_burst_is_taken_in_batches_and_each_engagement_applied_once_in_order(
    env: Env, producer, reader
) -> None:
    """The agents take their events a batch at a time (CS_AGENT_BATCH, stream/agents/batches.py)."""
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", ["bo@example.com"]))
    bo = (await changes.wait_until(lambda v: len(v) >= 1))[0]["contact_id"]
    sent = [engagement("acme", kind, email="bo@example.com") for kind in ["sent", "open"] * 150]
    topic = env.topic("contacts.engagement.v1")
    # Sent without waiting for each: they reach the worker as a few fetched batches.
    futures = [await producer.send(topic, orjson.dumps(e), key=b"bo") for e in sent]
    await asyncio.gather(*futures)
    values = await changes.wait_until(
        lambda v: len(of_type(v, "engagement.scored")) >= len(sent), timeout=60
    )
    # One partition, one order: each applied once, as sent, versions without a gap.
    scored = of_type(values, "engagement.scored")
    assert [c["cause"]["event_id"] for c in scored] == [e["event_id"] for e in sent]
    versions = [c["version"] for c in values if c["contact_id"] == bo]
    assert versions == list(range(1, len(versions) + 1))

    scraped = await scrape(f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}/metrics")
    router = 'cs_agent_batch_events_{}{{agent="route-engagements"}}'
    assert scraped[router.format("sum")] == len(sent)
    # Fewer batches than events: some held more than one.
    assert scraped[router.format("count")] < len(sent)
    contact = 'cs_agent_batch_events_{}{{agent="apply-contact-ops"}}'
    assert scraped[contact.format("sum")] == len(sent) + 1  # and the intake
    assert scraped[contact.format("count")] < len(sent)


async def test_engagement_to_a_merged_id_or_identifier_reaches_the_survivor(
    env: Env, producer, reader
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_all(
        producer, env, [intake("acme", ["s@example.com"]), intake("acme", ["m@example.com"])]
    )
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 2)
    ids = {c["data"]["contact"]["emails"][0]: c["contact_id"] for c in created}
    survivor, merged = ids["s@example.com"], ids["m@example.com"]
    await send_json(
        producer,
        env.topic("contacts.commands.v1"),
        command("acme", "merge_contacts", survivor_id=survivor, merged_ids=[merged]),
    )
    await changes.wait_until(lambda v: len(of_type(v, "contact.merged")) >= 2)
    topic = env.topic("contacts.engagement.v1")
    await send_json(producer, topic, engagement("acme", "open", contact_id=merged))
    await send_json(producer, topic, engagement("acme", "click", email="m@example.com"))
    values = await changes.wait_until(lambda v: len(of_type(v, "engagement.scored")) >= 2)
    assert {c["contact_id"] for c in of_type(values, "engagement.scored")} == {survivor}
    assert [c for c in values if c["contact_id"] == merged][-1]["type"] == "contact.merged"

"""Campaign status of marketing contacts end to end (SPEC §3.5.4-§3.5.6, §3.7).

Real Kafka, two workers. The status machine itself is tested row by row in
tests/unit/test_engagement.py; here it runs through the topics: engagement
events by email, sends counted to inactivity, the real-time reactivation,
and overdue status timers fired on start with their due times.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import Env, Servers, send_json
from tests.integration.test_commands import rfc3339
from tests.integration.test_engagement import engagement
from tests.integration.test_identity_races import two_workers
from tests.integration.test_intake_path import intake, of_type
from tests.integration.test_tenant_config import configure

pytestmark = pytest.mark.integration

DAY = 86_400_000


def statuses(values: list[dict[str, Any]], contact_id: str) -> list[tuple[str | None, str, str]]:
    return [
        (c["data"]["from"], c["data"]["to"], c["data"]["reason"])
        for c in of_type(values, "campaign_status.changed")
        if c["contact_id"] == contact_id
    ]


async def test_interactions_engage_sends_make_inactive_and_a_click_reactivates_at_once(
    env: Env, producer, reader
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    now = int(time.time() * 1000)
    await send_json(
        producer,
        env.topic("contacts.intake.v1"),
        intake("acme", ["ana@example.com"], source="form", occurred_at=rfc3339(now - 60_000)),
    )
    ana = (await changes.wait_until(lambda v: len(v) >= 3))[0]["contact_id"]
    topic = env.topic("contacts.engagement.v1")

    # open 5 + click 10 + visit 15 = 30 >= 20: engaged.
    for n, kind in enumerate(["open", "click", "high_intent_visit"]):
        event = engagement("acme", kind, email="ana@example.com")
        await send_json(producer, topic, {**event, "occurred_at": rfc3339(now - 50_000 + n)})
    values = await changes.wait_until(lambda v: len(statuses(v, ana)) >= 2)
    assert statuses(values, ana) == [
        (None, "active", "activated"),
        ("active", "engaged", "threshold_reached"),
    ]

    # Three sends later than the last interaction: inactive (SPEC §3.5.4).
    for n in range(3):
        event = engagement("acme", "sent", email="ana@example.com")
        await send_json(producer, topic, {**event, "occurred_at": rfc3339(now - 40_000 + n)})
    values = await changes.wait_until(lambda v: len(statuses(v, ana)) >= 3)
    assert statuses(values, ana)[2] == ("engaged", "inactive", "sends")

    # The real-time trigger: a click reactivates at once.
    click = {**engagement("acme", "click", email="ana@example.com"), "occurred_at": rfc3339(now)}
    await send_json(producer, topic, click)
    produced = time.monotonic()
    values = await changes.wait_until(lambda v: len(statuses(v, ana)) >= 4)
    waited = time.monotonic() - produced
    assert statuses(values, ana)[3] == ("inactive", "reactivated", "interaction")
    assert waited < 1.0, f"reactivation seen {waited:.2f} s after the click was produced"
    (change,) = [
        c for c in of_type(values, "campaign_status.changed") if c["data"]["to"] == "reactivated"
    ]
    assert change["cause"]["event_id"] == click["event_id"]


async def test_inactive_since_130_days_gets_reactivation_cycles_and_suppression_on_start(
    env: Env, producer, reader
) -> None:
    # Activated 220 days ago with no engagement: inactive (days) at +90 = 130
    # days ago; cycles at +30 and +44 days after that, suppressed at +58
    # (defaults: cooling 30, interval 14, 2 attempts). All overdue: the intake
    # is written while the workers are down (they ran once to create the
    # topics), and every transition fires with its own due time as `at`, in
    # due order, once they start again.
    workers = await two_workers(env)
    for worker in workers:
        worker.stop()
    now = int(time.time() * 1000)
    activated = now - 220 * DAY
    await send_json(
        producer,
        env.topic("contacts.intake.v1"),
        intake("acme", ["old@example.com"], source="form", occurred_at=rfc3339(activated)),
    )
    for worker in workers:
        worker.start()
    for worker in workers:
        await worker.wait_ready()
    changes = await reader(env.topic("contacts.changes.v1"))
    values = await changes.wait_until(
        lambda v: bool(v) and len(statuses(v, v[0]["contact_id"])) >= 3
    )
    contact = values[0]["contact_id"]
    inactive_at = activated + 90 * DAY
    timed = [
        (c["type"], c["at"], c["data"])
        for c in values
        if c["contact_id"] == contact and c["cause"]["kind"] == "timer"
    ]
    assert timed == [
        (
            "campaign_status.changed",
            rfc3339(inactive_at),
            {"from": "active", "to": "inactive", "reason": "days"},
        ),
        ("reactivation.due", rfc3339(inactive_at + 30 * DAY), {"cycle": 1}),
        ("reactivation.due", rfc3339(inactive_at + 44 * DAY), {"cycle": 2}),
        (
            "campaign_status.changed",
            rfc3339(inactive_at + 58 * DAY),
            {"from": "inactive", "to": "suppressed", "reason": "reactivation_exhausted"},
        ),
    ]
    versions = [c["version"] for c in values if c["contact_id"] == contact]
    assert versions == list(range(1, len(versions) + 1))


async def test_status_timers_follow_the_tenants_own_rules(
    env: Env, servers: Servers, producer, reader
) -> None:
    # inactive_after_days = 1: activated a day ago minus 8 s, the contact turns
    # inactive 8 s from now, on time (the due index reads the tenant's config,
    # not the defaults' 90 days).
    await configure(env, servers, producer, {"inactive_after_days": 1})
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    activated = int(time.time() * 1000) - DAY + 8_000
    await send_json(
        producer,
        env.topic("contacts.intake.v1"),
        intake("acme", ["soon@example.com"], source="form", occurred_at=rfc3339(activated)),
    )
    ana = (await changes.wait_until(lambda v: len(v) >= 3))[0]["contact_id"]
    values = await changes.wait_until(lambda v: len(statuses(v, ana)) >= 2, timeout=30)
    seen = int(time.time() * 1000)
    (inactive,) = [c for c in of_type(values, "campaign_status.changed") if c["version"] == 4]
    assert inactive["data"] == {"from": "active", "to": "inactive", "reason": "days"}
    assert inactive["at"] == rfc3339(activated + DAY)
    assert seen - (activated + DAY) < 2_000

"""SPEC §3.3.5 and §3.3.6 for engagement: a merge sums scores and keeps the latest activity."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stream.domain.commands import SuspendContact, UnsuspendContact, apply_command
from stream.domain.contact import Cause, Contact
from stream.domain.engage import EngagementInput, apply_engagement
from stream.domain.engagement import EngagementConfig
from stream.domain.identity import IdentityConfig
from stream.domain.merge import merge_contacts
from stream.domain.timefmt import MS_PER_DAY

T0 = 1_795_000_000_000
CONFIG = EngagementConfig()


def engaged(contact_id: str, *events: tuple[str, int]) -> Contact:
    contact = Contact(
        tenant_id="acme",
        contact_id=contact_id,
        source="form",
        created_at=T0,
        updated_at=T0,
        version=1,
    )
    for n, (kind, at) in enumerate(events):
        cause = Cause("engagement", f"{contact_id}-{n}")
        contact = apply_engagement(contact, EngagementInput(kind, at), CONFIG, at, cause).contact
    return contact


def test_merge_sums_the_scores_at_its_time_and_keeps_the_latest_activity_per_kind() -> None:
    half_life = CONFIG.score_half_life_days * MS_PER_DAY
    survivor = engaged("s", ("open", T0), ("sent", T0 + 5))
    merged = engaged("m", ("click", T0 + half_life), ("open", T0 + 3))
    at = T0 + half_life
    decision = merge_contacts(
        survivor, [merged], IdentityConfig(), at, Cause("command", "x"), CONFIG
    )
    e = decision.survivor.engagement
    # 5 points a half-life ago, plus 5 (three ms after the first) and 10 just now.
    expected = 5 * 0.5 + 5 * 2 ** (-(half_life - 3) / half_life) + 10
    assert e.score == pytest.approx(expected, rel=1e-12)
    assert e.score_at == at
    assert dict(e.activity) == {"open": T0 + 3, "sent": T0 + 5, "click": T0 + half_life}
    assert (e.last_engagement_at, e.last_activity_at) == (T0 + half_life, T0 + half_life)
    # Alone the survivor would be `frequent` by then (30 days); the merged click keeps it `new`.
    assert decision.survivor.engagement.tier == "new"
    assert not [c for c in decision.changes if c.type == "activity_tier.changed"]


def test_merge_with_a_suspended_contact_discards_the_tier_before_suspending() -> None:
    survivor = engaged("s", ("open", T0))
    merged = replace(engaged("m"), suspended=True)
    decision = merge_contacts(survivor, [merged], IdentityConfig(), T0 + 10, Cause("command", "x"))
    types = [c.type for c in decision.changes if c.contact_id == "s"]
    assert types[-2:] == ["activity_tier.changed", "contact.suspended"]
    assert decision.changes[-2].data == {"from": "new", "to": "discarded"}


def test_suspension_discards_the_tier_and_unsuspension_brings_it_back() -> None:
    contact = engaged("s", ("open", T0))
    suspended = apply_command(
        contact, SuspendContact("acme", "s"), IdentityConfig(), T0 + 1, Cause("command", "a")
    )
    assert [c.type for c in suspended.changes] == ["activity_tier.changed", "contact.suspended"]
    assert suspended.changes[0].data == {"from": "new", "to": "discarded"}
    back = apply_command(
        suspended.contact,
        UnsuspendContact("acme", "s"),
        IdentityConfig(),
        T0 + 2,
        Cause("command", "b"),
    )
    assert [c.type for c in back.changes] == ["contact.unsuspended", "activity_tier.changed"]
    assert back.changes[1].data == {"from": "discarded", "to": "new"}

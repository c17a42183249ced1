"""Engagement events on a contact: change events, versions and due tiers (SPEC §2.6, §3.5-§3.7)."""

from __future__ import annotations

import pytest

from stream.domain.contact import Cause, Contact, snapshot, tombstone
from stream.domain.engage import EngagementInput, apply_engagement, fire_due, next_due
from stream.domain.engagement import EngagementConfig
from stream.domain.timefmt import MS_PER_DAY, format_ms

T0 = 1_795_000_000_000
CONFIG = EngagementConfig()


def contact() -> Contact:
    return Contact(
        tenant_id="acme", contact_id="c1", source="form", created_at=T0, updated_at=T0, version=1
    )


def cause(event_id: str = "e1") -> Cause:
    return Cause("engagement", event_id)


def test_a_first_open_scores_and_makes_a_new_contact_tier_new() -> None:
    decision = apply_engagement(
        contact(), EngagementInput("open", T0 + 1000), CONFIG, T0 + 1000, cause()
    )
    types = [(c.type, c.version) for c in decision.changes]
    assert types == [("engagement.scored", 2), ("activity_tier.changed", 3)]
    scored, tier = decision.changes
    assert scored.data == {
        "type": "open",
        "points": 5,
        "score": 5.0,
        "score_at": format_ms(T0 + 1000),
        "sends_since_engagement": 0,
    }
    assert tier.data == {"from": "inactive", "to": "new"}
    snap = snapshot(decision.contact)
    assert snap["engagement"]["tier"] == "new"
    assert snap["engagement"]["last_engagement_at"] == format_ms(T0 + 1000)
    assert snap["activity"] == {"open": format_ms(T0 + 1000)}


def test_without_score_updates_only_the_tier_change_is_published() -> None:
    decision = apply_engagement(
        contact(), EngagementInput("click", T0), CONFIG, T0, cause(), emit_scores=False
    )
    assert [c.type for c in decision.changes] == ["activity_tier.changed"]
    assert decision.contact.engagement.score == 10.0


def test_a_tier_boundary_due_before_an_event_fires_first_at_its_own_time() -> None:
    opened = apply_engagement(contact(), EngagementInput("open", T0), CONFIG, T0, cause()).contact
    later = T0 + 20 * MS_PER_DAY
    decision = apply_engagement(opened, EngagementInput("sent", later), CONFIG, later, cause("e2"))
    first = decision.changes[0]
    assert (first.type, first.data, first.at) == (
        "activity_tier.changed",
        {"from": "new", "to": "frequent"},
        T0 + 16 * MS_PER_DAY,
    )
    assert first.cause == Cause("timer", None)
    assert [c.version for c in decision.changes] == list(range(4, 4 + len(decision.changes)))
    # The send is activity: back to `new` at once.
    assert decision.changes[-1].data == {"from": "frequent", "to": "new"}


def test_the_timer_fires_each_boundary_in_order_with_its_due_time() -> None:
    opened = apply_engagement(contact(), EngagementInput("open", T0), CONFIG, T0, cause()).contact
    assert next_due(opened, CONFIG) == T0 + 16 * MS_PER_DAY
    fired = fire_due(opened, T0 + 200 * MS_PER_DAY, CONFIG)
    assert [(c.data["to"], c.at) for c in fired.changes] == [
        ("frequent", T0 + 16 * MS_PER_DAY),
        ("dormant", T0 + 46 * MS_PER_DAY),
        ("expired", T0 + 121 * MS_PER_DAY),
    ]
    assert next_due(fired.contact, CONFIG) is None
    assert fire_due(fired.contact, T0 + 300 * MS_PER_DAY, CONFIG).changes == ()


def test_a_tombstone_takes_no_engagement_and_has_nothing_due() -> None:
    gone = tombstone(contact(), "purged")
    assert next_due(gone, CONFIG) is None
    with pytest.raises(ValueError, match="live and trashed"):
        apply_engagement(gone, EngagementInput("open", T0), CONFIG, T0, cause())

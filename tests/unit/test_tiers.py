"""SPEC §3.6: recency tiers, their exact boundaries and their timers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.engagement import (
    DAY_MS,
    Engagement,
    EngagementConfig,
    Transition,
    apply_engagement,
    fire_due,
    next_due,
    on_activation,
    refresh_tier,
)
from stream.domain.tiers import TierChange, next_boundary, tier_at, tier_boundaries

D = DAY_MS
T0 = 1_790_000_000_000
CFG = EngagementConfig()


def engaged_once(
    type_: str = "page_visit", at: int = T0, suspended: bool = False
) -> tuple[Engagement, list[Transition]]:
    return apply_engagement(Engagement(), type_, at, False, False, CFG, at, suspended=suspended)


def tiers_of(out: list[Transition]) -> list[TierChange]:
    return [x for x in out if isinstance(x, TierChange)]


@pytest.mark.parametrize(
    ("last", "t", "suspended", "for_good", "tier"),
    [
        pytest.param(T0, T0, False, False, "new", id="d 0 is new"),
        pytest.param(T0, T0 + 16 * D - 1, False, False, "new", id="d 15 is new"),
        pytest.param(T0, T0 + 16 * D, False, False, "frequent", id="d 16 is frequent"),
        pytest.param(T0, T0 + 46 * D - 1, False, False, "frequent", id="d 45 is frequent"),
        pytest.param(T0, T0 + 46 * D, False, False, "dormant", id="d 46 is dormant"),
        pytest.param(T0, T0 + 121 * D - 1, False, False, "dormant", id="d 120 is dormant"),
        pytest.param(T0, T0 + 121 * D, False, False, "expired", id="d 121 is expired"),
        pytest.param(T0, T0 + 9999 * D, False, False, "expired", id="d over 121 stays expired"),
        pytest.param(None, T0, False, False, "inactive", id="no activity is inactive"),
        pytest.param(T0, T0, True, False, "discarded", id="discarded overrides while suspended"),
        pytest.param(None, T0, True, False, "discarded", id="suspended without activity discarded"),
        pytest.param(T0, T0, False, True, "discarded", id="discarded for good after 3.5.6"),
    ],
)
def test_tier_at(last: int | None, t: int, suspended: bool, for_good: bool, tier: str) -> None:
    assert tier_at(last, t, suspended, for_good) == tier


TIER_TOPS = [("new", 15), ("frequent", 45), ("dormant", 120), ("expired", 10**9)]


@given(last=st.integers(0, 2**42), offset=st.integers(0, 400 * D))
def test_tier_is_floor_of_whole_days_since_last_activity(last: int, offset: int) -> None:
    days = offset // D
    expected = next(tier for tier, top in TIER_TOPS if days <= top)
    assert tier_at(last, last + offset) == expected


def test_tier_boundaries_are_exact_days_after_last_activity() -> None:
    assert tier_boundaries(T0) == (T0 + 16 * D, T0 + 46 * D, T0 + 121 * D)


def test_expired_has_no_next_boundary() -> None:
    assert next_boundary(T0, "expired") is None
    assert next_boundary(None, "new") is None
    assert next_boundary(T0, "new") == TierChange(T0 + 16 * D, "new", "frequent")


def test_first_activity_moves_inactive_to_new() -> None:
    state, out = engaged_once("sent")
    assert state.tier == "new"
    assert tiers_of(out) == [TierChange(T0, "inactive", "new")]


def test_each_boundary_fires_its_own_change_at_its_time() -> None:
    state, _ = engaged_once()
    for day, change in [(16, ("new", "frequent")), (46, ("frequent", "dormant")),
                        (121, ("dormant", "expired"))]:  # fmt: skip
        before, out = fire_due(state, T0 + day * D - 1, CFG, False, False)
        assert before.tier == change[0]
        state, out = fire_due(state, T0 + day * D, CFG, False, False)
        assert tiers_of(out) == [TierChange(T0 + day * D, *change)]
    assert next_due(state, CFG, False, False) is None


def test_overdue_boundaries_fire_in_order_each_at_its_due_time() -> None:
    state, _ = engaged_once()
    state, out = fire_due(state, T0 + 500 * D, CFG, marketing=False, suspended=False)
    assert tiers_of(out) == [
        TierChange(T0 + 16 * D, "new", "frequent"),
        TierChange(T0 + 46 * D, "frequent", "dormant"),
        TierChange(T0 + 121 * D, "dormant", "expired"),
    ]
    assert state.tier == "expired"


def test_new_activity_brings_an_expired_contact_back_to_new() -> None:
    state, _ = engaged_once()
    state, _ = fire_due(state, T0 + 200 * D, CFG, False, False)
    state, out = apply_engagement(state, "sent", T0 + 200 * D, False, False, CFG, T0 + 200 * D)
    assert tiers_of(out) == [TierChange(T0 + 200 * D, "expired", "new")]


def test_a_late_old_event_sets_the_tier_it_earns_now() -> None:
    state, _ = engaged_once()
    state, _ = fire_due(state, T0 + 60 * D, CFG, False, False)
    # Activity 20 days ago is newer than the last one: frequent, not new.
    now = T0 + 60 * D
    state, out = apply_engagement(state, "open", now - 20 * D, False, False, CFG, now)
    assert tiers_of(out) == [TierChange(now, "dormant", "frequent")]


def test_suspension_discards_and_unsuspension_recomputes() -> None:
    state, _ = engaged_once()
    state, out = refresh_tier(state, T0 + D, suspended=True)
    assert tiers_of(out) == [TierChange(T0 + D, "new", "discarded")]
    # No boundary fires while suspended.
    state, out = fire_due(state, T0 + 50 * D, CFG, marketing=False, suspended=True)
    assert out == []
    state, out = refresh_tier(state, T0 + 50 * D, suspended=False)
    assert tiers_of(out) == [TierChange(T0 + 50 * D, "discarded", "dormant")]


def test_a_suspended_contact_takes_activity_but_stays_discarded() -> None:
    state, _ = engaged_once(suspended=True)
    assert state.tier == "discarded"
    assert state.last_activity_at == T0


@pytest.mark.parametrize("kind", ["bounce_hard", "spam_complaint", "unsubscribe"])
def test_suppressed_for_good_is_discarded_for_good(kind: str) -> None:
    state, _ = engaged_once()
    state, out = apply_engagement(state, kind, T0 + D, False, False, CFG, T0 + D)
    assert tiers_of(out) == [TierChange(T0 + D, "new", "discarded")]
    state, _ = apply_engagement(state, "click", T0 + 2 * D, False, False, CFG, T0 + 2 * D)
    state, _ = refresh_tier(state, T0 + 3 * D, suspended=False)
    state, out = fire_due(state, T0 + 300 * D, CFG, False, False)
    assert state.tier == "discarded"
    assert out == []


def test_sales_and_marketing_contacts_age_alike() -> None:
    sales, _ = engaged_once("click")
    marketing, _ = on_activation(Engagement(), T0 - 1, CFG)
    marketing, _ = apply_engagement(marketing, "click", T0, False, True, CFG, T0)
    sales, _ = fire_due(sales, T0 + 50 * D, CFG, marketing=False, suspended=False)
    marketing, _ = fire_due(marketing, T0 + 50 * D, CFG, marketing=True, suspended=False)
    assert sales.tier == marketing.tier == "dormant"


def test_an_intakeless_new_contact_is_inactive_with_no_timer() -> None:
    assert Engagement().tier == "inactive"
    assert next_due(Engagement(), CFG, marketing=False, suspended=False) is None

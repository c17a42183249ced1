"""SPEC §2.5, §3.3.1 and §3.4: a contact's marketing status, its slot and its hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.marketing import (
    DAY_MS,
    Activated,
    ActivationRejected,
    CommandRejected,
    Deactivated,
    Decision,
    Marketing,
    MarketingConfig,
    MarketingError,
    QuotaExceeded,
    ReleaseSlot,
    ScheduleRelease,
    SlotReleased,
    activate,
    deactivate,
    drop_slot,
    fire_release,
    needs_slot,
    on_intake,
    purge_not_before,
    release_due,
    set_marketing,
    wants_marketing,
)
from stream.domain.quota import Grant, Quota, release_slot, request_slot, schedule_release

T = 1_795_000_000_000  # 2026-11-18T11:06:40Z
HOLD_END = T + 30 * DAY_MS
CFG = MarketingConfig()
OFF = MarketingConfig(marketing_module=False)
SALES = Marketing()
ACTIVE = Marketing(active=True, activated_at=T, slot_request=0)
HELD = Marketing(active=False, activated_at=T, slot_held_until=HOLD_END, slot_request=0)
RELEASED = Marketing(active=False, activated_at=T)
GRANT = Grant(1, granted=True, used=1, limit=None)
LATER = T + 40 * DAY_MS
NEW = Marketing(active=True, activated_at=LATER, slot_request=1)


@dataclass(frozen=True)
class Row:
    rule: str
    run: Callable[[], Decision]
    expected: Decision


def row(rule: str, run: Callable[[], Decision], expected: Decision) -> object:
    return pytest.param(Row(rule, run, expected), id=rule)


AUTO = ("form", "spider", "facebook_lead_ads", "landing_page")
OPT_IN = ("inbox", "ecommerce", "import", "manual", "api", "deal")

RULES = [
    *(
        row(
            f"3.4.2 {source} makes the contact marketing",
            partial(on_intake, SALES, T, CFG, source, None, GRANT),
            Decision(
                Marketing(active=True, activated_at=T, slot_request=1),
                (Activated(T, T, "new"),),
            ),
        )
        for source in AUTO
    ),
    *(
        row(
            f"3.4.2 {source} makes the contact marketing only with marketing true",
            partial(on_intake, SALES, T, CFG, source, True, GRANT),
            Decision(
                Marketing(active=True, activated_at=T, slot_request=1),
                (Activated(T, T, "new"),),
            ),
        )
        for source in OPT_IN
    ),
    *(
        row(
            f"3.4.2 {source} without marketing true leaves a sales contact sales ({flag})",
            partial(on_intake, SALES, T, CFG, source, flag),
            Decision(SALES),
        )
        for source in OPT_IN
        for flag in (None, False)
    ),
    row(
        "3.4.2 only marketing true has an effect: false does not deactivate",
        lambda: on_intake(ACTIVE, T + DAY_MS, CFG, "import", False),
        Decision(ACTIVE),
    ),
    row(
        "3.4.2 an existing marketing contact stays as it is",
        lambda: on_intake(ACTIVE, T + DAY_MS, CFG, "form", None),
        Decision(ACTIVE),
    ),
    row(
        "3.4.2 a new activation first asks the quota for a slot",
        lambda: on_intake(SALES, T, CFG, "form", None),
        Decision(SALES, needs_grant=True),
    ),
    row(
        "3.4.3 set_marketing true switches it by hand",
        lambda: set_marketing(SALES, T, CFG, True, "profile", GRANT),
        Decision(Marketing(True, T, None, 1), (Activated(T, T, "new"),)),
    ),
    row(
        "3.4.3 via automation may only deactivate: true is rejected not_allowed",
        lambda: set_marketing(SALES, T, CFG, True, "automation"),
        Decision(SALES, (CommandRejected(T, "not_allowed"),)),
    ),
    row(
        "3.4.3 via automation deactivates",
        lambda: set_marketing(ACTIVE, T + DAY_MS, CFG, False, "automation"),
        Decision(
            HELD,
            (Deactivated(T + DAY_MS, HOLD_END),),
            (ScheduleRelease(0, HOLD_END),),
        ),
    ),
    row(
        "3.4.3 a switch to the current state yields nothing (true on marketing)",
        lambda: set_marketing(ACTIVE, T + DAY_MS, CFG, True, "bulk"),
        Decision(ACTIVE),
    ),
    row(
        "3.4.3 a switch to the current state yields nothing (false on sales)",
        lambda: set_marketing(SALES, T, CFG, False, "bulk"),
        Decision(SALES),
    ),
    row(
        "3.4.3 a switch to the current state yields nothing (false inside the hold)",
        lambda: set_marketing(HELD, T + 2 * DAY_MS, CFG, False, "bulk"),
        Decision(HELD),
    ),
    row(
        "3.4.4 beyond the limit the activation is rejected quota_exceeded",
        lambda: set_marketing(SALES, T, CFG, True, "api", Grant(1, False, 5, 5)),
        Decision(SALES, (ActivationRejected(T, "quota_exceeded"),)),
    ),
    row(
        "3.4.4 allow_overage: an activation leaving used above the limit yields quota.exceeded",
        lambda: set_marketing(SALES, T, CFG, True, "api", Grant(1, True, 6, 5, exceeded=True)),
        Decision(
            Marketing(True, T, None, 1),
            (Activated(T, T, "new"), QuotaExceeded(T, 6, 5)),
        ),
    ),
    row(
        "3.4.5 deactivation before activated_at + hold_days keeps the slot used until then",
        lambda: deactivate(ACTIVE, T + 10 * DAY_MS, CFG),
        Decision(HELD, (Deactivated(T + 10 * DAY_MS, HOLD_END),), (ScheduleRelease(0, HOLD_END),)),
    ),
    row(
        "3.4.5 at the hold end exactly the slot is released at once (slot_held_until null)",
        lambda: deactivate(ACTIVE, HOLD_END, CFG),
        Decision(RELEASED, (Deactivated(HOLD_END, None),), (ReleaseSlot(0),)),
    ),
    row(
        "3.4.5 after the hold end the slot is released at once",
        lambda: deactivate(ACTIVE, LATER, CFG),
        Decision(RELEASED, (Deactivated(LATER, None),), (ReleaseSlot(0),)),
    ),
    row(
        "3.4.5 the hold ends at activated_at + hold_days with marketing.slot_released",
        lambda: fire_release(HELD, HOLD_END),
        Decision(RELEASED, (SlotReleased(HOLD_END),), (ReleaseSlot(0),)),
    ),
    row(
        "3.4.5 a replayed hold timer finds nothing to release",
        lambda: fire_release(RELEASED, HOLD_END),
        Decision(RELEASED),
    ),
    row(
        "3.4.6 re-activation while the slot is held reuses it with the same activated_at",
        lambda: set_marketing(HELD, T + 20 * DAY_MS, CFG, True, "profile"),
        Decision(
            ACTIVE,
            (Activated(T + 20 * DAY_MS, T, "reused"),),
            (ScheduleRelease(0, None),),
        ),
    ),
    row(
        "3.4.6 after release it is a new activation (a quota check)",
        lambda: set_marketing(RELEASED, LATER, CFG, True, "profile"),
        Decision(RELEASED, needs_grant=True),
    ),
    row(
        "3.4.6 after release the new activation has a new activated_at",
        lambda: set_marketing(RELEASED, LATER, CFG, True, "profile", GRANT),
        Decision(NEW, (Activated(LATER, LATER, "new"),)),
    ),
    row(
        "3.4.7 a trashed marketing contact keeps its slot until purged",
        lambda: drop_slot(ACTIVE),
        Decision(RELEASED, quota=(ReleaseSlot(0),)),
    ),
    row(
        "3.4.7 purging a contact inside its hold releases the held slot",
        lambda: drop_slot(HELD),
        Decision(RELEASED, quota=(ReleaseSlot(0),)),
    ),
    row(
        "2.5 module off: set_marketing true is rejected module_disabled",
        lambda: set_marketing(SALES, T, OFF, True, "api"),
        Decision(SALES, (ActivationRejected(T, "module_disabled"),)),
    ),
    row(
        "2.5 module off: set_marketing true inside the hold is rejected module_disabled",
        lambda: set_marketing(HELD, T + DAY_MS, OFF, True, "api"),
        Decision(HELD, (ActivationRejected(T + DAY_MS, "module_disabled"),)),
    ),
    row(
        "2.5 module off: set_marketing false still applies",
        lambda: set_marketing(ACTIVE, T + DAY_MS, OFF, False, "api"),
        Decision(HELD, (Deactivated(T + DAY_MS, HOLD_END),), (ScheduleRelease(0, HOLD_END),)),
    ),
    row(
        "2.5 module off: intakes emit nothing about marketing",
        lambda: on_intake(SALES, T, OFF, "form", True),
        Decision(SALES),
    ),
    row(
        "2.5 module off: contacts keep their marketing state and slots",
        lambda: on_intake(ACTIVE, T + DAY_MS, OFF, "form", True),
        Decision(ACTIVE),
    ),
    row(
        "2.5 a running hold keeps its end when hold_days changes",
        lambda: deactivate(
            set_marketing(HELD, T + DAY_MS, CFG, True, "api").state,
            T + 2 * DAY_MS,
            MarketingConfig(hold_days=10),
        ),
        Decision(
            Marketing(False, T, T + 10 * DAY_MS, 0),
            (Deactivated(T + 2 * DAY_MS, T + 10 * DAY_MS),),
            (ScheduleRelease(0, T + 10 * DAY_MS),),
        ),
    ),
]


@pytest.mark.parametrize("case", RULES)
def test_marketing_rule(case: Row) -> None:
    assert case.run() == case.expected


def test_deactivation_inside_hold_keeps_slot_until_day_30() -> None:
    decision = deactivate(ACTIVE, T + 29 * DAY_MS, CFG)
    assert decision.state.holds_slot
    assert not decision.state.active
    assert release_due(decision.state) == T + 30 * DAY_MS
    assert not needs_slot(decision.state, T + 30 * DAY_MS - 1)
    assert needs_slot(decision.state, T + 30 * DAY_MS)


def test_hold_end_must_fire_before_a_later_input() -> None:
    with pytest.raises(MarketingError):
        set_marketing(HELD, HOLD_END, CFG, True, "api")
    with pytest.raises(MarketingError):
        fire_release(HELD, HOLD_END - 1)


def test_purge_waits_for_the_hold_while_the_slot_is_used() -> None:
    assert purge_not_before(ACTIVE, CFG) == HOLD_END
    assert purge_not_before(HELD, MarketingConfig(hold_days=5)) == HOLD_END
    assert purge_not_before(RELEASED, CFG) is None
    assert purge_not_before(SALES, CFG) is None


def test_a_grant_that_is_not_used_goes_back_to_the_quota() -> None:
    rejected = set_marketing(SALES, T, CFG, True, "automation", GRANT)
    assert rejected.quota == (ReleaseSlot(1),)


def test_a_grant_to_a_contact_holding_a_slot_is_adopted_not_released() -> None:
    # The quota re-keyed the contact's one slot to the new request: releasing
    # it would free the slot the contact still uses; keeping the old id would
    # make its later release miss.
    decision = set_marketing(ACTIVE, T + DAY_MS, CFG, True, "api", GRANT)
    assert decision == Decision(replace(ACTIVE, slot_request=1))


def test_wants_marketing_refuses_an_unknown_source() -> None:
    assert wants_marketing("form", False)
    with pytest.raises(MarketingError):
        wants_marketing("carrier_pigeon", True)


def test_invalid_config_and_via_are_domain_errors() -> None:
    with pytest.raises(MarketingError):
        MarketingConfig(limit_policy="maybe")
    with pytest.raises(MarketingError):
        MarketingConfig(marketing_limit=-1)
    with pytest.raises(MarketingError):
        set_marketing(SALES, T, CFG, True, "carrier_pigeon")


def test_snapshot_shows_the_hold() -> None:
    assert HELD.as_json() == {
        "active": False,
        "activated_at": "2026-11-18T11:06:40.000Z",
        "slot_held_until": "2026-12-18T11:06:40.000Z",
    }
    assert Activated(T, T, "reused").data() == {
        "activated_at": "2026-11-18T11:06:40.000Z",
        "slot": "reused",
    }
    assert Deactivated(T, None).data() == {"slot_held_until": None}


# A fold of random contact actions through the domain and a shared quota: the
# quota's holders are exactly the contacts that hold a slot, whatever happens.
ACTIONS = st.sampled_from(["form", "import_true", "on", "off", "automation_on", "purge"])
STEP = st.tuples(st.integers(0, 3), ACTIONS, st.integers(0, 45 * DAY_MS), st.booleans())


@settings(max_examples=300)
@given(
    steps=st.lists(STEP, max_size=40),
    limit=st.none() | st.integers(0, 3),
    policy=st.sampled_from(["reject", "allow_overage"]),
    hold_days=st.integers(0, 40),
)
def test_quota_holders_are_exactly_the_contacts_holding_a_slot(
    steps: list[tuple[int, str, int, bool]], limit: int | None, policy: str, hold_days: int
) -> None:
    config = MarketingConfig(marketing_limit=limit, limit_policy=policy, hold_days=hold_days)
    quota = Quota(limit=limit)
    states = {f"c{i}": Marketing() for i in range(4)}
    now = T
    for n, (who, action, delta, retry) in enumerate(steps):
        cid, now = f"c{who}", now + delta
        state = states[cid]
        decisions = []
        due = release_due(state)
        if due is not None and due <= now:
            decisions.append(fire_release(state, due))
            state = decisions[-1].state
        decision = _act(state, now, config, action)
        if decision.needs_grant:
            quota, grant = request_slot(quota, cid, n, config)
            if retry:  # a retried request changes nothing and repeats the answer
                again, repeated = request_slot(quota, cid, n, config)
                assert again == quota and repeated.duplicate
                assert (repeated.granted, repeated.used) == (grant.granted, grant.used)
            decision = _act(state, now, config, action, grant)
            assert not decision.needs_grant
        decisions.append(decision)
        for d in decisions:
            for op in d.quota * (2 if retry else 1):
                if isinstance(op, ReleaseSlot):
                    quota = release_slot(quota, cid, op.request_id)
                else:
                    quota = schedule_release(quota, cid, op.request_id, op.at)
        states[cid] = decision.state
        holding = {c: s for c, s in states.items() if s.holds_slot}
        assert quota.used == len(holding) >= 0
        assert {c: s.request_id for c, s in quota.holders.items()} == {
            c: s.slot_request for c, s in holding.items()
        }
        assert {c: s.release_at for c, s in quota.holders.items()} == {
            c: s.slot_held_until for c, s in holding.items()
        }
        if policy == "reject" and limit is not None:
            assert quota.used <= limit


def _act(
    state: Marketing, at: int, config: MarketingConfig, action: str, grant: Grant | None = None
) -> Decision:
    if action == "form":
        return on_intake(state, at, config, "form", None, grant)
    if action == "import_true":
        return on_intake(state, at, config, "import", True, grant)
    if action == "on":
        return set_marketing(state, at, config, True, "bulk", grant)
    if action == "automation_on":
        return set_marketing(state, at, config, True, "automation", grant)
    if action == "off":
        return set_marketing(state, at, config, False, "profile")
    return drop_slot(state)


def test_activate_without_a_grant_asks_for_one() -> None:
    assert activate(SALES, T, CFG) == Decision(SALES, needs_grant=True)

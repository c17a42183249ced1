"""SPEC §3.4.4: the tenant's quota, exact under retries, replays and any limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.marketing import MarketingConfig
from stream.domain.quota import (
    ANSWERS_KEPT,
    Grant,
    Quota,
    QuotaError,
    Release,
    Slot,
    release_slot,
    releases,
    request_slot,
    schedule_release,
    set_limit,
)

UNLIMITED = MarketingConfig()
REJECT_2 = MarketingConfig(marketing_limit=2)
OVERAGE_2 = MarketingConfig(marketing_limit=2, limit_policy="allow_overage")


def holding(*contact_ids: str, limit: int | None = 2) -> Quota:
    return Quota(limit=limit, holders={c: Slot(0) for c in contact_ids})


@dataclass(frozen=True)
class Row:
    rule: str
    run: Callable[[], tuple[Quota, Grant]]
    granted: bool
    used: int
    exceeded: bool = False


def row(rule: str, run: Callable[[], tuple[Quota, Grant]], *expected: object) -> object:
    granted, used, *rest = expected
    return pytest.param(Row(rule, run, bool(granted), int(str(used)), bool(rest)), id=rule)


RULES = [
    row(
        "3.4.4 with no limit every activation gets a slot",
        lambda: request_slot(holding("a", "b", "c", limit=None), "d", 1, UNLIMITED),
        True,
        4,
    ),
    row(
        "3.4.4 an activation needs used < marketing_limit before it",
        lambda: request_slot(holding("a"), "b", 1, REJECT_2),
        True,
        2,
    ),
    row(
        "3.4.4 beyond it the activation is rejected",
        lambda: request_slot(holding("a", "b"), "c", 1, REJECT_2),
        False,
        2,
    ),
    row(
        "3.4.4 allow_overage: the activation goes through and yields quota.exceeded",
        lambda: request_slot(holding("a", "b"), "c", 1, OVERAGE_2),
        True,
        3,
        "exceeded",
    ),
    row(
        "3.4.4 allow_overage: reaching the limit exactly is not exceeding it",
        lambda: request_slot(holding("a"), "b", 1, OVERAGE_2),
        True,
        2,
    ),
    row(
        "3.4.4 a limit of zero rejects every activation",
        lambda: request_slot(Quota(), "a", 1, MarketingConfig(marketing_limit=0)),
        False,
        0,
    ),
    row(
        "3.4.4 deactivated contacts in their hold count",
        lambda: request_slot(schedule_release(holding("a", "b"), "a", 0, 10), "c", 1, REJECT_2),
        False,
        2,
    ),
    row(
        "3.4.4 lowering the limit changes no contact, later activations are rejected",
        lambda: request_slot(holding("a", "b", "c", limit=5), "d", 1, REJECT_2),
        False,
        3,
    ),
    row(
        "3.4.4 a retried request never double-counts",
        lambda: request_slot(request_slot(holding("a"), "b", 1, REJECT_2)[0], "b", 1, REJECT_2),
        True,
        2,
    ),
    row(
        "3.4.4 a retried request after the release takes no slot again",
        lambda: request_slot(
            release_slot(request_slot(Quota(), "b", 1, REJECT_2)[0], "b", 1),
            "b",
            1,
            REJECT_2,
        ),
        True,
        1,
    ),
    row(
        "3.4.4 a contact asking again while holding keeps its one slot",
        lambda: request_slot(holding("a", "b"), "a", 2, REJECT_2),
        True,
        2,
    ),
]


@pytest.mark.parametrize("case", RULES)
def test_quota_rule(case: Row) -> None:
    quota, grant = case.run()
    assert (grant.granted, grant.used, grant.exceeded) == (case.granted, case.used, case.exceeded)
    assert quota.used == len(quota.holders)


def test_retried_request_after_release_repeats_the_first_answer_and_counts_nothing() -> None:
    quota, first = request_slot(Quota(), "b", 1, REJECT_2)
    quota = release_slot(quota, "b", 1)
    again, repeated = request_slot(quota, "b", 1, REJECT_2)
    assert again == quota and again.used == 0
    assert repeated == Grant(1, True, 1, 2, duplicate=True)
    assert first == Grant(1, True, 1, 2)


def test_a_rejected_request_retried_later_stays_rejected() -> None:
    # The contact went on as sales; granting its retry would leak a slot.
    quota, rejected = request_slot(holding("a", "b"), "c", 1, REJECT_2)
    quota = release_slot(quota, "a", 0)
    again, repeated = request_slot(quota, "c", 1, REJECT_2)
    assert not rejected.granted and not repeated.granted and repeated.duplicate
    assert again.used == 1


def test_release_is_keyed_by_request_so_a_stale_one_frees_nothing() -> None:
    quota = holding("a")
    assert release_slot(quota, "a", -1) == quota
    assert release_slot(quota, "zed", 0) == quota
    assert release_slot(release_slot(quota, "a", 0), "a", 0).used == 0


def test_releases_list_the_coming_holds_earliest_first() -> None:
    quota = holding("a", "b", "c", limit=None)
    quota = schedule_release(quota, "c", 0, 500)
    quota = schedule_release(quota, "a", 0, 900)
    quota = schedule_release(quota, "b", 7, 100)
    assert releases(quota) == (Release("c", 500), Release("a", 900))
    assert releases(schedule_release(quota, "c", 0, None)) == (Release("a", 900),)
    assert quota.as_json()["releases"][0] == {"contact_id": "c", "at": "1970-01-01T00:00:00.500Z"}


def test_set_limit_changes_no_holder() -> None:
    quota = set_limit(holding("a", "b", "c", limit=None), 1)
    assert (quota.used, quota.limit) == (3, 1)
    with pytest.raises(QuotaError):
        set_limit(quota, -1)


def test_a_late_duplicate_older_than_every_remembered_answer_takes_nothing() -> None:
    quota = Quota()
    for request in range(ANSWERS_KEPT + 1):
        quota, _ = request_slot(quota, "a", request, UNLIMITED)
        quota = release_slot(quota, "a", request)
    again, grant = request_slot(quota, "a", 0, UNLIMITED)
    assert again == quota and quota.used == 0
    assert grant == Grant(0, False, 0, None, duplicate=True)


def test_a_request_needs_a_contact_and_a_request_id() -> None:
    with pytest.raises(QuotaError):
        request_slot(Quota(), "", 1, UNLIMITED)
    with pytest.raises(QuotaError):
        request_slot(Quota(), "a", -1, UNLIMITED)


# Random requests and releases, each delivered once or more, duplicates landing
# anywhere after the original (retries, crash replays of the sender).
CONTACTS = st.sampled_from(["a", "b", "c", "d", "e"])
OPS = st.lists(st.tuples(st.booleans(), CONTACTS, st.integers(0, 10_000)), max_size=40)


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    originals: list[tuple[str, str, int]] = []
    requested: list[tuple[str, int]] = []
    for n, (is_release, contact, pick) in enumerate(draw(OPS)):
        if is_release and requested:
            # A release only follows its own request (the contact got a grant first).
            originals.append(("release", *requested[pick % len(requested)]))
        else:
            requested.append((contact, n))
            originals.append(("request", contact, n))
    out = list(originals)
    for message in originals:
        for _ in range(draw(st.integers(0, 2))):
            out.insert(draw(st.integers(out.index(message) + 1, len(out))), message)
    return out


def apply(quota: Quota, message: tuple[str, str, int], config: MarketingConfig) -> Quota:
    kind, contact, request = message
    if kind == "request":
        return request_slot(quota, contact, request, config)[0]
    return release_slot(quota, contact, request)


def first_occurrences(messages: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return list(dict.fromkeys(messages))


CONFIGS = st.builds(
    MarketingConfig,
    marketing_limit=st.none() | st.integers(0, 4),
    limit_policy=st.sampled_from(["reject", "allow_overage"]),
)


@settings(max_examples=400)
@given(messages=deliveries(), config=CONFIGS)
def test_duplicates_never_make_used_negative_or_double_count(
    messages: list[tuple[str, str, int]], config: MarketingConfig
) -> None:
    quota = Quota()
    for message in messages:
        quota = apply(quota, message, config)
        assert quota.used == len(set(quota.holders)) >= 0
        if config.limit_policy == "reject" and config.marketing_limit is not None:
            assert quota.used <= config.marketing_limit
    once = Quota()
    for message in first_occurrences(messages):
        once = apply(once, message, config)
    assert quota.holders == once.holders


@settings(max_examples=200)
@given(messages=deliveries(), config=CONFIGS)
def test_each_answer_matches_the_count(
    messages: list[tuple[str, str, int]], config: MarketingConfig
) -> None:
    quota = Quota()
    for kind, contact, request in messages:
        if kind == "release":
            quota = release_slot(quota, contact, request)
            continue
        before = quota.used
        quota, grant = request_slot(quota, contact, request, config)
        if grant.duplicate:
            assert quota.used == before
            continue
        assert grant.used == quota.used
        limit = config.marketing_limit
        took = quota.used > before
        assert grant.exceeded == (took and limit is not None and quota.used > limit)

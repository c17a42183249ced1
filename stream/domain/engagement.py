"""Engagement score, campaign status and their timers (SPEC §3.5-§3.7), as pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stream.domain import tiers
from stream.domain.frozen import replace
from stream.domain.tiers import TierChange
from stream.domain.timefmt import MS_PER_DAY

DAY_MS = MS_PER_DAY

INTERACTIONS = frozenset({"open", "click", "high_intent_visit", "reply", "form_submit"})
# Consent withdrawn or the address dead: suppressed for good (SPEC §3.5.6).
FOR_GOOD = frozenset({"bounce_hard", "spam_complaint", "unsubscribe"})
ENGAGEMENT_TYPES = INTERACTIONS | FOR_GOOD | {"sent", "page_visit", "bounce_soft"}
MACHINE_OPEN = "machine_open"

ACTIVE = "active"
ENGAGED = "engaged"
INACTIVE = "inactive"
REACTIVATED = "reactivated"
SUPPRESSED = "suppressed"
EXHAUSTED = "reactivation_exhausted"
# The statuses that an interaction or a send count can still move (SPEC §3.5.4).
RUNNING = (ACTIVE, REACTIVATED, ENGAGED)

DEFAULT_POINTS: Mapping[str, int] = MappingProxyType(
    {"open": 5, "click": 10, "high_intent_visit": 15}
)


# (type, latest occurred_at) pairs, sorted by type.
Activity = tuple[tuple[str, int], ...]


class UnknownEngagementType(ValueError):
    """An engagement type outside SPEC §2.3."""


@dataclass(frozen=True, slots=True)
class EngagementConfig:
    """The part of a tenant's config (SPEC §2.5) the engagement rules read."""

    # Read-only and shared: a dict default would be one mutable object for every config.
    points: Mapping[str, int] = field(default_factory=lambda: DEFAULT_POINTS)
    engaged_threshold: int = 20
    score_half_life_days: int = 30
    inactive_after_sends: int = 3
    inactive_after_days: int = 90
    cooling_days: int = 30
    reactivation_interval_days: int = 14
    reactivation_attempts: int = 2
    marketing_module: bool = True

    @property
    def half_life_ms(self) -> int:
        return self.score_half_life_days * DAY_MS


@dataclass(frozen=True, slots=True)
class Engagement:
    """One contact's engagement state; `score` is the score's value at `score_at`."""

    score: float = 0.0
    score_at: int | None = None
    last_engagement_at: int | None = None
    last_activity_at: int | None = None
    # Latest `occurred_at` per type, sorted by type; a machine open is `machine_open`.
    activity: Activity = ()
    campaign_status: str | None = None
    status_reason: str | None = None
    status_since: int | None = None
    # The `sent` times later than both the last interaction and the latest
    # activation, sorted: the count stays exact whatever the arrival order.
    sends: tuple[int, ...] = ()
    reactivation_cycle: int = 0
    # bounce_hard, spam_complaint or unsubscribe: kept for sales contacts too.
    suppressed_for_good: str | None = None
    activated_at_latest: int | None = None
    tier: str = tiers.INACTIVE

    @property
    def sends_since_engagement(self) -> int:
        return len(self.sends)

    def score_value(self, t: int, config: EngagementConfig) -> float:
        """The decayed score at `t`."""
        if self.score_at is None:
            return 0.0
        if config.half_life_ms <= 0:
            return self.score
        return self.score * math.exp2(-(t - self.score_at) / config.half_life_ms)


@dataclass(frozen=True, slots=True)
class Scored:
    """`engagement.scored`: an engagement event was applied."""

    at: int
    type: str
    points: int
    score: float
    score_at: int | None
    sends_since_engagement: int


@dataclass(frozen=True, slots=True)
class StatusChange:
    """`campaign_status.changed`."""

    at: int
    from_: str | None
    to: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ReactivationDue:
    """`reactivation.due`; `emit` is False for a suspended or trashed contact (SPEC §3.3.2)."""

    at: int
    cycle: int
    emit: bool = True


Transition = Scored | StatusChange | ReactivationDue | TierChange
Due = StatusChange | ReactivationDue | TierChange


def add_points(state: Engagement, points: float, occurred_at: int, half_life_ms: int) -> Engagement:
    """Add points earned at `occurred_at`, referenced to the later of it and `score_at`."""
    if state.score_at is None:
        return replace(state, score=points, score_at=occurred_at)
    if half_life_ms <= 0:
        return replace(state, score=state.score + points, score_at=max(state.score_at, occurred_at))
    if occurred_at >= state.score_at:
        decayed = state.score * math.exp2(-(occurred_at - state.score_at) / half_life_ms)
        return replace(state, score=decayed + points, score_at=occurred_at)
    # A late event: decay its points to the stored reference instead.
    late = points * math.exp2(-(state.score_at - occurred_at) / half_life_ms)
    return replace(state, score=state.score + late)


def apply_engagement(
    state: Engagement,
    event_type: str,
    occurred_at: int,
    machine_open: bool,
    marketing: bool,
    config: EngagementConfig,
    now: int,
    *,
    suspended: bool = False,
) -> tuple[Engagement, list[Transition]]:
    """Apply one engagement event (SPEC §3.5); `now` is the change's logical `at`."""
    if event_type not in ENGAGEMENT_TYPES:
        raise UnknownEngagementType(event_type)
    machine = machine_open and event_type == "open"
    interaction = event_type in INTERACTIONS and not machine
    key = MACHINE_OPEN if machine else event_type
    last_engagement_at = state.last_engagement_at
    if interaction:
        last_engagement_at = _later(last_engagement_at, occurred_at)
    sends = (*state.sends, occurred_at) if event_type == "sent" else state.sends
    # One `replace` for all of it (each costs microseconds on the engagement path).
    s = replace(
        state,
        activity=_latest(state.activity, key, occurred_at),
        last_activity_at=_later(state.last_activity_at, occurred_at),
        last_engagement_at=last_engagement_at,
        sends=_pruned(sends, _later(last_engagement_at, state.activated_at_latest)),
    )
    points = 0
    # With the module off nothing is scored, but times and activity still move.
    if config.marketing_module and not machine:
        points = config.points.get(event_type, 0)
    if points:
        s = add_points(s, points, occurred_at, config.half_life_ms)
    out: list[Transition] = [
        Scored(now, event_type, points, s.score, s.score_at, s.sends_since_engagement)
    ]
    if event_type in FOR_GOOD and s.suppressed_for_good is None:
        s = replace(s, suppressed_for_good=event_type)
    if marketing and config.marketing_module:
        s = _after_input(s, interaction, occurred_at, config, now, out)
    return _retier(s, now, suspended, out)


def on_activation(
    state: Engagement, at: int, config: EngagementConfig
) -> tuple[Engagement, list[Transition]]:
    """The contact became marketing at `at` (a new or reused slot): null → active."""
    if not config.marketing_module:
        return state, []
    s = _prune_sends(replace(state, activated_at_latest=_later(state.activated_at_latest, at)))
    out: list[Transition] = []
    if s.suppressed_for_good is not None:
        # Consent is not re-granted by an activation.
        if s.campaign_status != SUPPRESSED or s.status_reason != s.suppressed_for_good:
            s = _enter(s, at, SUPPRESSED, s.suppressed_for_good, out)
        return s, out
    if s.campaign_status is None:
        s = _enter(s, at, ACTIVE, "activated", out)
    return _after_input(s, False, at, config, at, out), out


def on_deactivation(state: Engagement, at: int) -> tuple[Engagement, list[Transition]]:
    """The contact stopped being marketing: status → null."""
    if state.campaign_status is None:
        return state, []
    out: list[Transition] = []
    return _enter(state, at, None, "deactivated", out), out


def on_merge(
    state: Engagement, at: int, config: EngagementConfig, marketing: bool, suppressed: str | None
) -> tuple[Engagement, list[Transition]]:
    """The survivor's campaign status after a merge (SPEC §3.3.5), its score already summed.

    `suppressed`: the reason of a participant suppressed for good, which the
    survivor keeps. Then `suppressed` (same reason); else `engaged` (reason
    `merged`) if the summed score reaches the threshold; else as it was.
    """
    s = state
    if suppressed is not None and s.suppressed_for_good is None:
        s = replace(s, suppressed_for_good=suppressed)
    out: list[Transition] = []
    if not marketing or not config.marketing_module:
        return s, out
    if s.suppressed_for_good is not None:
        if s.campaign_status != SUPPRESSED:
            s = _enter(s, at, SUPPRESSED, s.suppressed_for_good, out)
    elif s.campaign_status != ENGAGED and s.score_value(at, config) >= config.engaged_threshold:
        s = _enter(s, at, ENGAGED, "merged", out)
    return s, out


def refresh_tier(
    state: Engagement, at: int, suspended: bool
) -> tuple[Engagement, list[Transition]]:
    """Recompute the tier at `at`, for suspension and unsuspension."""
    return _retier(state, at, suspended, [])


def next_due(
    state: Engagement, config: EngagementConfig, marketing: bool, suspended: bool
) -> Due | None:
    """The earliest time-based transition due, or None; ties go status first, then tier."""
    candidates: list[Due] = []
    if marketing and config.marketing_module:
        candidates += _status_due(state, config, suspended)
    if not suspended and state.suppressed_for_good is None:
        aged = tiers.next_boundary(state.last_activity_at, state.tier)
        if aged is not None:
            candidates.append(aged)
    # `min` keeps the first of equal times: candidates come in tie order.
    return min(candidates, key=lambda due: due.at, default=None)


def fire_due(
    state: Engagement,
    until: int,
    config: EngagementConfig,
    marketing: bool,
    suspended: bool,
    *,
    trashed: bool = False,
) -> tuple[Engagement, list[Transition]]:
    """Fire every transition due at or before `until`, in due order, each at its due time."""
    out: list[Transition] = []
    while (due := next_due(state, config, marketing, suspended)) is not None and due.at <= until:
        if isinstance(due, StatusChange):
            state = _enter(state, due.at, due.to, due.reason, out)
        elif isinstance(due, ReactivationDue):
            # The cycle counts even when nothing is sent (SPEC §3.3.2).
            state = replace(state, reactivation_cycle=due.cycle)
            out.append(replace(due, emit=due.emit and not trashed))
        else:
            state = replace(state, tier=due.to)
            out.append(due)
    return state, out


def _after_input(
    s: Engagement,
    interaction: bool,
    occurred_at: int,
    config: EngagementConfig,
    now: int,
    out: list[Transition],
) -> Engagement:
    """The status rules that an input (not a timer) triggers, in SPEC §3.5.4 order."""
    good = s.suppressed_for_good
    if good is not None:
        if s.campaign_status != SUPPRESSED or s.status_reason != good:
            s = _enter(s, now, SUPPRESSED, good, out)
        return s
    status = s.campaign_status
    exhausted = status == SUPPRESSED and s.status_reason == EXHAUSTED
    since = s.status_since if s.status_since is not None else occurred_at
    # A late interaction from before the current status began reactivates nothing.
    if interaction and (status == INACTIVE or exhausted) and occurred_at >= since:
        s = _enter(s, now, REACTIVATED, "interaction", out)
    if s.campaign_status in (ACTIVE, REACTIVATED) and (
        s.score_value(now, config) >= config.engaged_threshold
    ):
        s = _enter(s, now, ENGAGED, "threshold_reached", out)
    # Zero disables the count: a count never "reaches" the number it starts at.
    if (
        s.campaign_status in RUNNING
        and config.inactive_after_sends > 0
        and s.sends_since_engagement >= config.inactive_after_sends
    ):
        s = _enter(s, now, INACTIVE, "sends", out)
    return s


def _status_due(state: Engagement, config: EngagementConfig, suspended: bool) -> list[Due]:
    status = state.campaign_status
    since = state.status_since if state.status_since is not None else 0
    due: list[Due] = []
    if status == ENGAGED:
        decayed = _decay_due(state, config, since)
        if decayed is not None:
            due.append(StatusChange(decayed, ENGAGED, ACTIVE, "score_decayed"))
    if status in RUNNING:
        ref = _later(state.last_engagement_at, state.activated_at_latest)
        if ref is not None:
            at = max(ref + config.inactive_after_days * DAY_MS, since)
            due.append(StatusChange(at, status, INACTIVE, "days"))
    if status == INACTIVE:
        start = since + config.cooling_days * DAY_MS
        interval = config.reactivation_interval_days * DAY_MS
        cycle = state.reactivation_cycle + 1
        if cycle <= config.reactivation_attempts:
            due.append(ReactivationDue(start + (cycle - 1) * interval, cycle, not suspended))
        else:
            at = start + config.reactivation_attempts * interval
            due.append(StatusChange(at, INACTIVE, SUPPRESSED, EXHAUSTED))
    return due


def _enter(
    s: Engagement, at: int, to: str | None, reason: str, out: list[Transition]
) -> Engagement:
    out.append(StatusChange(at, s.campaign_status, to, reason))
    cycle = 0 if to == INACTIVE else s.reactivation_cycle
    return replace(
        s, campaign_status=to, status_reason=reason, status_since=at, reactivation_cycle=cycle
    )


def _retier(
    s: Engagement, at: int, suspended: bool, out: list[Transition]
) -> tuple[Engagement, list[Transition]]:
    tier = tiers.tier_at(s.last_activity_at, at, suspended, s.suppressed_for_good is not None)
    if tier != s.tier:
        out.append(TierChange(at, s.tier, tier))
        s = replace(s, tier=tier)
    return s, out


def _decay_due(s: Engagement, config: EngagementConfig, since: int) -> int | None:
    """The first ms at or after `since` where the decayed score is below the threshold."""
    threshold = config.engaged_threshold
    if config.half_life_ms <= 0 or threshold <= 0 or s.score_at is None:
        return None
    if s.score <= 0:
        return since
    exact = s.score_at + config.half_life_ms * math.log2(s.score / threshold)
    due = max(math.ceil(exact), since)
    # The formula rounded up, checked against the score itself: an exact hit on a
    # millisecond is not yet below, and float rounding may be off by one ms.
    while s.score_value(due, config) >= threshold:
        due += 1
    while due > since and s.score_value(due - 1, config) < threshold:
        due -= 1
    return due


def _prune_sends(s: Engagement) -> Engagement:
    return replace(s, sends=_pruned(s.sends, _later(s.last_engagement_at, s.activated_at_latest)))


def _pruned(sends: tuple[int, ...], ref: int | None) -> tuple[int, ...]:
    """The sends later than `ref` (the last interaction or activation), sorted."""
    return tuple(sorted(t for t in sends if ref is None or t > ref))


def _latest(activity: Activity, key: str, at: int) -> Activity:
    current = dict(activity)
    current[key] = max(current.get(key, at), at)
    return tuple(sorted(current.items()))


def _later(a: int | None, b: int | None) -> int | None:
    """The later of two times, either of which may be None."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b

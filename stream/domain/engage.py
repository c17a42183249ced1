"""Engagement events and engagement timers on a contact (SPEC §2.6, §3.5-§3.7).

`stream.domain.engagement` decides on the engagement state alone; here that
state lives in a `Contact` and its transitions become change events with
consecutive versions. Campaign status applies to marketing contacts only;
score, `last_*_at`, `activity` and the recency tier apply to every contact
(SPEC §3.5.3, §3.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.domain import engagement as eng
from stream.domain.contact import LIVE, TRASHED, Cause, Change, ChangeLog, Contact
from stream.domain.frozen import replace
from stream.domain.tiers import TierChange
from stream.domain.timefmt import format_optional_ms

TIMER = Cause("timer", None)


@dataclass(frozen=True, slots=True)
class EngagementInput:
    """One engagement event (SPEC §2.3) addressed to this contact."""

    type: str
    occurred_at: int
    machine_open: bool = False


@dataclass(frozen=True, slots=True)
class EngageDecision:
    contact: Contact
    changes: tuple[Change, ...]


def is_marketing(contact: Contact) -> bool:
    """Marketing now (SPEC §3.4): the campaign status runs for these only."""
    return contact.marketing.active


def apply_engagement(
    contact: Contact,
    event: EngagementInput,
    config: eng.EngagementConfig,
    at: int,
    cause: Cause,
    emit_scores: bool = True,
) -> EngageDecision:
    """What is due at or before `at` fires first (SPEC §3.7), then the event applies."""
    if contact.state not in (LIVE, TRASHED):
        raise ValueError("engagement applies to live and trashed contacts only")
    fired = fire_due(contact, at, config)
    contact = fired.contact
    log = ChangeLog(contact, cause, at)
    state, transitions = eng.apply_engagement(
        contact.engagement,
        event.type,
        event.occurred_at,
        event.machine_open,
        is_marketing(contact),
        config,
        log.at,
        suspended=contact.suspended,
    )
    log.contact = replace(log.contact, engagement=state)
    for transition in transitions:
        if isinstance(transition, eng.Scored) and not emit_scores:
            continue
        emit_transition(log, transition)
    return EngageDecision(log.contact, fired.changes + tuple(log.changes))


def next_due(contact: Contact, config: eng.EngagementConfig) -> int | None:
    """When the contact's next engagement transition (tier boundary, status timer) is due."""
    if contact.state not in (LIVE, TRASHED):
        return None
    due = eng.next_due(contact.engagement, config, is_marketing(contact), contact.suspended)
    return None if due is None else due.at


def fire_due(contact: Contact, until: int, config: eng.EngagementConfig) -> EngageDecision:
    """Every engagement transition due at or before `until`, each at its due time (SPEC §3.7)."""
    if contact.state not in (LIVE, TRASHED):
        return EngageDecision(contact, ())
    state, transitions = eng.fire_due(
        contact.engagement,
        until,
        config,
        is_marketing(contact),
        contact.suspended,
        trashed=contact.state == TRASHED,
    )
    if state == contact.engagement:
        return EngageDecision(contact, ())
    changes: list[Change] = []
    current = replace(contact, engagement=state)
    for transition in transitions:
        log = ChangeLog(current, TIMER, transition.at)
        emit_transition(log, transition)
        current = log.contact
        changes.extend(log.changes)
    return EngageDecision(current, tuple(changes))


def emit_transition(log: ChangeLog, transition: eng.Transition) -> None:
    """One transition's change event on the contact, if it is published."""
    change_type, data = _change(transition)
    if change_type:
        log.emit(change_type, data)


def _change(transition: eng.Transition) -> tuple[str | None, dict[str, Any]]:
    """The change event of one transition (SPEC §2.6), None when it is not published."""
    match transition:
        case eng.Scored():
            return "engagement.scored", {
                "type": transition.type,
                "points": transition.points,
                "score": transition.score,
                "score_at": format_optional_ms(transition.score_at),
                "sends_since_engagement": transition.sends_since_engagement,
            }
        case eng.StatusChange():
            return "campaign_status.changed", {
                "from": transition.from_,
                "to": transition.to,
                "reason": transition.reason,
            }
        case eng.ReactivationDue():
            if not transition.emit:
                return None, {}
            return "reactivation.due", {"cycle": transition.cycle}
        case TierChange():
            return "activity_tier.changed", {"from": transition.from_, "to": transition.to}
    raise TypeError(f"not a transition: {transition!r}")  # pragma: no cover

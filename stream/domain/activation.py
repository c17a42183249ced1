"""Marketing on a contact: activation, deactivation, the hold's end and static lists (SPEC §3.4).

`stream.domain.marketing` decides on the marketing state alone; here that
state lives in a `Contact`, its events get consecutive versions, and what
follows from them is emitted in SPEC §2.6 order: `marketing.*` and
`quota.exceeded`, then `list.*`, then `campaign_status.changed` (activation
gives null → `active`, deactivation → null, SPEC §3.5.4).

A new slot comes from the tenant's quota, on another partition. A decision
that needs one answers `needs_grant`: the shell discards it, asks the quota
(request id: the offset of the operation's record on the contact partition,
which grows with each of a contact's operations and repeats on a replay) and
decides the whole input again with the `Grant`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.domain import engage
from stream.domain import engagement as eng
from stream.domain import marketing as mkt
from stream.domain.contact import ChangeLog, Contact
from stream.domain.frozen import replace
from stream.domain.quota import Grant

SET_MARKETING = "set_marketing"


@dataclass(frozen=True, slots=True)
class MarketingRules:
    """What a marketing decision reads: the tenant's rules and the quota's answer, if any."""

    config: mkt.MarketingConfig = field(default_factory=mkt.MarketingConfig)
    engagement: eng.EngagementConfig = field(default_factory=eng.EngagementConfig)
    grant: Grant | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """A marketing step's outcome for the shell: wait for a grant, or send these quota ops."""

    needs_grant: bool = False
    quota: tuple[mkt.QuotaOp, ...] = ()


def on_intake(log: ChangeLog, source: str, wanted: bool | None, rules: MarketingRules) -> Step:
    """An intake's activation, if its source or `marketing: true` asks for one (SPEC §3.4.2)."""
    state = log.contact.marketing
    return emit(log, mkt.on_intake(state, log.at, rules.config, source, wanted, rules.grant), rules)


def set_marketing(log: ChangeLog, marketing: bool, via: str, rules: MarketingRules) -> Step:
    """The `set_marketing` command on this contact (SPEC §3.4.3)."""
    state = log.contact.marketing
    return emit(
        log, mkt.set_marketing(state, log.at, rules.config, marketing, via, rules.grant), rules
    )


def fire_release(log: ChangeLog) -> Step:
    """The hold ended at `log.at` (the due time): `marketing.slot_released`."""
    return emit(log, mkt.fire_release(log.contact.marketing, log.at), MarketingRules())


def emit(log: ChangeLog, decision: mkt.Decision, rules: MarketingRules) -> Step:
    """A marketing decision's events on the contact, then the lists and campaign status."""
    if decision.needs_grant:
        return Step(needs_grant=True)
    before = log.contact.marketing
    log.contact = replace(log.contact, marketing=decision.state)
    for event in decision.events:
        data = event.data()
        if isinstance(event, mkt.CommandRejected):
            data = {**data, "command": SET_MARKETING}
        log.emit(event.type, data)
    if before.active and not decision.state.active:
        # SPEC §3.4.8: deactivation removes the contact from its static lists.
        lists = log.contact.lists
        log.contact = replace(log.contact, lists=())
        for list_id in lists:
            log.emit("list.removed", {"list_id": list_id, "reason": "deactivated"})
        state, transitions = eng.on_deactivation(log.contact.engagement, log.at)
        _transitions(log, state, transitions)
    elif decision.state.active and not before.active:
        state, transitions = eng.on_activation(log.contact.engagement, log.at, rules.engagement)
        _transitions(log, state, transitions)
    return Step(quota=decision.quota)


def _transitions(log: ChangeLog, state: eng.Engagement, transitions: list[eng.Transition]) -> None:
    log.contact = replace(log.contact, engagement=state)
    for transition in transitions:
        engage.emit_transition(log, transition)


def add_to_list(log: ChangeLog, list_id: str) -> None:
    """Static lists take only marketing contacts (SPEC §3.4.8); adding a member again is nothing."""
    contact = log.contact
    if not contact.marketing.active:
        log.emit("list.add_rejected", {"list_id": list_id, "reason": "not_marketing"})
    elif list_id not in contact.lists:
        log.contact = replace(contact, lists=(*contact.lists, list_id))
        log.emit("list.added", {"list_id": list_id, "reason": "command"})


def remove_from_list(log: ChangeLog, list_id: str) -> None:
    """Leave a static list; a contact not in it is left as it is."""
    contact = log.contact
    if list_id in contact.lists:
        log.contact = replace(contact, lists=tuple(x for x in contact.lists if x != list_id))
        log.emit("list.removed", {"list_id": list_id, "reason": "command"})


def release_due(contact: Contact) -> int | None:
    """When the contact's held slot is released (SPEC §3.4.5), if a hold runs."""
    return mkt.release_due(contact.marketing) if contact.holds_identifiers else None

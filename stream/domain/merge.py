"""Merging contacts (SPEC §3.3.5): identifiers, fields, owner, tags and suspension.

The shell resolves aliases first (a merged id names its survivor only for
other commands: here it is rejected) and loads every participant; an unknown
id it rejects itself with `reject_unversioned(..., "unknown_contact", ...)`.

Marketing: a sales survivor takes over the active merged slot with the
earliest `activated_at` (`marketing.activated`, slot `reused`, no quota
check); every other merged slot is released at once; lists are united only
if the survivor ends marketing. The quota ops name their contact: a merge
moves slots between contacts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stream.domain import marketing as mkt
from stream.domain.commands import reject_unversioned
from stream.domain.contact import (
    LIVE,
    MERGED,
    PURGED,
    Cause,
    Change,
    ChangeLog,
    Contact,
    TimedValue,
    owner_value,
    same_value,
    tombstone,
)
from stream.domain.engage import emit_transition
from stream.domain.engagement import (
    EngagementConfig,
    Transition,
    on_activation,
    on_merge,
    refresh_tier,
)
from stream.domain.frozen import replace
from stream.domain.identity import IdentityConfig, add_identifiers
from stream.domain.marketing import QuotaOp
from stream.domain.normalize import Identifier

MERGE = "merge_contacts"


@dataclass(frozen=True, slots=True)
class MergeDecision:
    """A merge's effect.

    `changes` are in publish order: each merged contact's `contact.merged`
    (its last version), then the survivor's versions; on a rejection, only the
    rejections. `claimed` identifiers move from a merged contact to the
    survivor; `released` ones (beyond the limits) are owned by nobody.
    """

    survivor: Contact
    merged: tuple[Contact, ...]
    changes: tuple[Change, ...]
    claimed: tuple[Identifier, ...] = ()
    released: tuple[Identifier, ...] = ()
    # (contact_id, op) for the tenant's quota, in order.
    quota: tuple[tuple[str, QuotaOp], ...] = ()

    @property
    def rejected(self) -> bool:
        return any(c.type == "command.rejected" for c in self.changes)

    def changes_of(self, contact_id: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.contact_id == contact_id)


def merge_contacts(
    survivor: Contact,
    merged: Sequence[Contact],
    config: IdentityConfig,
    at: int,
    cause: Cause,
    engagement: EngagementConfig | None = None,
) -> MergeDecision:
    """Merge `merged` (in `merged_ids` order) into `survivor` (SPEC §3.3.5).

    A purged participant is unknown (`unknown_contact`, version 0) and a merged
    one is rejected (`merged`, version 0); otherwise the survivor among the
    merged ids, a repeated id or a participant not live is `invalid_merge` on
    the survivor. A rejected merge changes nothing else.
    """
    if any(m.tenant_id != survivor.tenant_id for m in merged):
        raise ValueError("a merge stays within one tenant")
    unversioned = [
        reject_unversioned(
            c.tenant_id,
            c.contact_id,
            MERGE,
            "unknown_contact" if c.state == PURGED else "merged",
            at,
            cause,
        )
        # One rejection per distinct id: a repeated id would repeat its change_id.
        for c in {c.contact_id: c for c in (survivor, *merged)}.values()
        if c.state in (PURGED, MERGED)
    ]
    if unversioned:
        return MergeDecision(survivor, (), tuple(unversioned))
    ids = [m.contact_id for m in merged]
    if (
        not merged
        or survivor.contact_id in ids
        or len(set(ids)) != len(ids)
        or any(c.state != LIVE for c in (survivor, *merged))
    ):
        log = ChangeLog(survivor, cause, at)
        log.emit("command.rejected", {"reason": "invalid_merge", "command": MERGE})
        return MergeDecision(log.contact, (), tuple(log.changes))

    changes: list[Change] = []
    gone: list[Contact] = []
    for m in merged:
        mlog = ChangeLog(m, cause, at)
        mlog.contact = tombstone(m, MERGED, merged_into=survivor.contact_id)
        mlog.emit("contact.merged", _merged_data(survivor, m))
        gone.append(mlog.contact)
        changes.extend(mlog.changes)

    log = ChangeLog(survivor, cause, at)
    for m in merged:
        log.emit("contact.merged", _merged_data(survivor, m))
    claimed: list[Identifier] = []
    for m in merged:
        # The merged contact owned these: nobody else can, so only the limits drop any.
        claimed.extend(add_identifiers(log, m.identifiers, {}, config, {"merged_id": m.contact_id}))
    kept = set(log.contact.identifiers)
    released = tuple(i for m in merged for i in m.identifiers if i not in kept)
    changed = _merge_profile(log, merged)
    if changed:
        log.emit("contact.updated", {"changed": changed})
    engagement = engagement or EngagementConfig()
    was_marketing = log.contact.marketing.active
    quota = _merge_marketing(log, merged, engagement.marketing_module)
    suspends = not log.contact.suspended and any(m.suspended for m in merged)
    _merge_engagement(
        log,
        merged,
        engagement,
        suspended=log.contact.suspended or suspends,
        activated=log.contact.marketing.active and not was_marketing,
    )
    if suspends:
        log.contact = replace(log.contact, suspended=True)
        log.emit("contact.suspended", {})
    changes.extend(log.changes)
    return MergeDecision(
        log.contact, tuple(gone), tuple(changes), tuple(claimed), released, tuple(quota)
    )


def _merge_marketing(
    log: ChangeLog, merged: Sequence[Contact], module: bool
) -> list[tuple[str, QuotaOp]]:
    """Slots and lists of a merge (SPEC §3.3.5); the survivor's ops come after the merged ones."""
    survivor = log.contact
    quota: list[tuple[str, QuotaOp]] = []
    active = [m for m in merged if m.marketing.active]
    taken = None
    if module and not survivor.marketing.active and active:
        taken = min(active, key=lambda m: m.marketing.activated_at or 0)
    for m in merged:
        if m.marketing.holds_slot:
            quota.extend((m.contact_id, op) for op in mkt.drop_slot(m.marketing).quota)
    if taken is not None:
        decision = mkt.take_over(survivor.marketing, taken.marketing, log.at)
        log.contact = replace(log.contact, marketing=decision.state)
        for event in decision.events:
            log.emit(event.type, event.data())
        quota.extend((survivor.contact_id, op) for op in decision.quota)
    if log.contact.marketing.active:
        lists = tuple(dict.fromkeys(x for c in (log.contact, *merged) for x in c.lists))
        added = [x for x in lists if x not in log.contact.lists]
        log.contact = replace(log.contact, lists=lists)
        for list_id in added:
            log.emit("list.added", {"list_id": list_id, "reason": "merged"})
    return quota


def _merge_engagement(
    log: ChangeLog,
    merged: Sequence[Contact],
    config: EngagementConfig,
    suspended: bool,
    activated: bool,
) -> None:
    """Latest `activity` and `last_*_at`, the scores summed at the merge's `at`, the
    campaign status (SPEC §3.3.5), then the tier.

    Counters (`sends_since_engagement`, `reactivation_cycle`) stay the survivor's.
    """
    own = log.contact.engagement
    states = [own, *(m.engagement for m in merged)]
    scored = [e for e in states if e.score_at is not None]
    activity: dict[str, int] = {}
    for e in states:
        for kind, seen in e.activity:
            activity[kind] = max(seen, activity.get(kind, seen))
    state = replace(
        own,
        score=sum(e.score_value(log.at, config) for e in scored) if scored else own.score,
        score_at=log.at if scored else own.score_at,
        last_engagement_at=_latest(e.last_engagement_at for e in states),
        last_activity_at=_latest(e.last_activity_at for e in states),
        activity=tuple(sorted(activity.items())),
    )
    status: list[Transition] = []
    if activated:
        state, status = on_activation(state, log.at, config)
    suppressed = next(
        (m.engagement.suppressed_for_good for m in merged if m.engagement.suppressed_for_good), None
    )
    state, more = on_merge(state, log.at, config, log.contact.marketing.active, suppressed)
    state, tiers = refresh_tier(state, log.at, suspended)
    log.contact = replace(log.contact, engagement=state)
    for transition in (*status, *more, *tiers):
        emit_transition(log, transition)


def _latest(times: Iterable[int | None]) -> int | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _merged_data(survivor: Contact, merged: Contact) -> dict[str, Any]:
    return {"survivor_id": survivor.contact_id, "merged_id": merged.contact_id}


def _merge_profile(log: ChangeLog, merged: Sequence[Contact]) -> dict[str, list[Any]]:
    """Survivor's non-null value, else the latest merged one; tags union (SPEC §3.3.5)."""
    contact = log.contact
    changed: dict[str, list[Any]] = {}
    fields = contact.field_map
    names = dict.fromkeys(name for c in (contact, *merged) for name, _ in c.fields)
    for name in names:
        current = fields.get(name)
        chosen = _pick(current, [m.field_map.get(name) for m in merged])
        if chosen is None or chosen == current:
            continue
        old = None if current is None else current.value
        if not same_value(old, chosen.value):
            changed[name] = [old, chosen.value]
        fields[name] = chosen
    owner = _pick(contact.owner, [m.owner for m in merged])
    if owner is not None and owner != contact.owner:
        new_owner = owner.value
        if not same_value(owner_value(contact), new_owner):
            changed["owner"] = [owner_value(contact), new_owner]
    else:
        owner = contact.owner
    tags = tuple(dict.fromkeys(tag for c in (contact, *merged) for tag in c.tags))
    if tags != contact.tags:
        changed["tags"] = [list(contact.tags), list(tags)]
    log.contact = replace(contact, fields=tuple(sorted(fields.items())), owner=owner, tags=tags)
    return changed


def _pick(current: TimedValue | None, others: Sequence[TimedValue | None]) -> TimedValue | None:
    """The survivor's value unless null; else the latest non-null merged one.

    With no value anywhere the latest clear is kept, so an older write still
    loses to it on the survivor as it would have on its own contact.
    """
    if current is not None and current.value is not None:
        return current
    present = [tv for tv in (current, *others) if tv is not None]
    values = [tv for tv in present if tv.value is not None]
    pool = values or present
    if not pool:
        return None
    return max(pool, key=lambda tv: (tv.at, tv.event_id.encode()))

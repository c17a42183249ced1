"""The per-tenant marketing quota (SPEC §3.4.4): who holds a slot, safe under retries.

The quota's owner (one partition per tenant) is the only writer of the count.
A contact asks for a slot with a request id and releases it with that id. The
id is a number that grows with each request of one contact and that a replay
repeats: the shell uses the contact's version before the activating input
(each requesting input emits an event, so the next request has a greater id).
The count is the number of holders, never a counter: a retried request finds
its remembered answer (or, older than every remembered one, takes nothing), a
retried release finds nothing to remove, so neither can count twice nor make
`used` negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream.domain.frozen import replace
from stream.domain.timefmt import format_ms

if TYPE_CHECKING:
    from stream.domain.marketing import MarketingConfig

# Answers remembered per contact. A retry or a crash replay re-sends a
# contact's few latest requests, in order, so a short memory suffices.
ANSWERS_KEPT = 8


class QuotaError(ValueError):
    """An invalid quota request."""


@dataclass(frozen=True, slots=True)
class Grant:
    """The quota's answer to one slot request.

    `exceeded`: this activation left `used > limit` (allow_overage). A
    `duplicate` answer took nothing: it repeats the first answer to the same
    request, or refuses one older than every remembered answer. The shell
    delivers it only to a contact still waiting for that request.
    """

    request_id: int
    granted: bool
    used: int
    limit: int | None
    exceeded: bool = False
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Slot:
    """One contact's slot: the request that took it and its hold end, if any."""

    request_id: int
    release_at: int | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """A coming slot release (SPEC §5 `GET …/quota`)."""

    contact_id: str
    at: int


@dataclass(frozen=True, slots=True)
class Quota:
    """A tenant's quota. Mappings are never mutated: every change builds new ones."""

    limit: int | None = None
    holders: Mapping[str, Slot] = field(default_factory=dict)
    answers: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)

    @property
    def used(self) -> int:
        """Marketing contacts plus deactivated ones still in their hold."""
        return len(self.holders)

    def as_json(self) -> dict[str, Any]:
        """Used, limit and the coming releases, as `GET …/quota` shows them."""
        return {
            "used": self.used,
            "limit": self.limit,
            "releases": [
                {"contact_id": r.contact_id, "at": format_ms(r.at)} for r in releases(self)
            ],
        }


@dataclass(frozen=True, slots=True)
class Holder:
    """What the quota keeps of one contact: its slot (if it holds one) and its recent answers.

    The shell stores one per contact (a tenant's whole quota in one value
    would grow with its contacts); `used` is then the number of holders with
    a slot, counted by the shell from the stored entries.
    """

    slot: Slot | None = None
    answers: tuple[Grant, ...] = ()


def request_for(
    holder: Holder, request_id: int, used: int, config: MarketingConfig
) -> tuple[Holder, Grant]:
    """One contact's slot request, given the tenant's `used` (SPEC §3.4.4).

    A repeated request gets its first answer. A contact that already holds a
    slot is granted again without counting twice; its slot is re-keyed to the
    new request, which the contact adopts (stream/domain/activation.py).
    """
    if request_id < 0:
        raise QuotaError("a slot request needs a request id >= 0")
    for earlier in holder.answers:
        if earlier.request_id == request_id:
            return holder, replace(earlier, duplicate=True)
    limit = config.marketing_limit
    if holder.answers and request_id < holder.answers[-1].request_id:
        # Older than the newest answer and forgotten: a late duplicate. It takes
        # nothing, so it can never leak a slot; no contact still waits for it.
        return holder, Grant(request_id, False, used, limit, duplicate=True)
    slot = holder.slot
    if slot is not None:
        slot, grant = Slot(request_id), Grant(request_id, True, used, limit)
    elif limit is None or used < limit:
        slot, grant = Slot(request_id), Grant(request_id, True, used + 1, limit)
    elif config.limit_policy == "allow_overage":
        slot, grant = Slot(request_id), Grant(request_id, True, used + 1, limit, exceeded=True)
    else:
        grant = Grant(request_id, False, used, limit)
    return Holder(slot, (*holder.answers, grant)[-ANSWERS_KEPT:]), grant


def release_for(holder: Holder, request_id: int) -> Holder:
    """Free the slot taken by `request_id`; a stale or repeated release does nothing."""
    if holder.slot is None or holder.slot.request_id != request_id:
        return holder
    return replace(holder, slot=None)


def schedule_for(holder: Holder, request_id: int, at: int | None) -> Holder:
    """Record when a held slot will be released (None: the contact re-activated)."""
    slot = holder.slot
    if slot is None or slot.request_id != request_id or slot.release_at == at:
        return holder
    return replace(holder, slot=replace(slot, release_at=at))


def transfer_for(holder: Holder, request_id: int) -> Holder:
    """A merge hands the contact a merged contact's slot (SPEC §3.3.5): no limit check."""
    return replace(holder, slot=Slot(request_id))


def request_slot(
    quota: Quota, contact_id: str, request_id: int, config: MarketingConfig
) -> tuple[Quota, Grant]:
    """Grant or refuse a slot (SPEC §3.4.4); a repeated request gets its first answer."""
    if not contact_id:
        raise QuotaError("a slot request needs a contact id and a request id >= 0")
    holder, grant = request_for(_holder(quota, contact_id), request_id, quota.used, config)
    answers = {**quota.answers, contact_id: holder.answers}
    quota = _with(quota, contact_id, holder.slot)
    return Quota(limit=config.marketing_limit, holders=quota.holders, answers=answers), grant


def release_slot(quota: Quota, contact_id: str, request_id: int) -> Quota:
    """Free the contact's slot taken by `request_id`; a stale or repeated release does nothing."""
    return _with(quota, contact_id, release_for(_holder(quota, contact_id), request_id).slot)


def schedule_release(quota: Quota, contact_id: str, request_id: int, at: int | None) -> Quota:
    """Record when a held slot will be released (None: the contact re-activated)."""
    holder = schedule_for(_holder(quota, contact_id), request_id, at)
    return _with(quota, contact_id, holder.slot)


def take_slot(quota: Quota, contact_id: str, request_id: int) -> Quota:
    """A merge hands the contact a merged contact's slot (SPEC §3.3.5): no limit check."""
    return _with(quota, contact_id, transfer_for(_holder(quota, contact_id), request_id).slot)


def _holder(quota: Quota, contact_id: str) -> Holder:
    return Holder(quota.holders.get(contact_id), tuple(quota.answers.get(contact_id, ())))


def _with(quota: Quota, contact_id: str, slot: Slot | None) -> Quota:
    if quota.holders.get(contact_id) == slot:
        return quota
    holders = {k: v for k, v in quota.holders.items() if k != contact_id}
    if slot is not None:
        holders[contact_id] = slot
    return replace(quota, holders=holders)


def releases(quota: Quota) -> tuple[Release, ...]:
    """The coming releases, earliest first (ties by contact id, for a stable answer)."""
    coming = (
        Release(contact_id, slot.release_at)
        for contact_id, slot in quota.holders.items()
        if slot.release_at is not None
    )
    return tuple(sorted(coming, key=lambda r: (r.at, r.contact_id)))


def set_limit(quota: Quota, limit: int | None) -> Quota:
    """A new limit applies to later activations only: no holder loses its slot."""
    if limit is not None and limit < 0:
        raise QuotaError("marketing_limit must not be negative")
    return replace(quota, limit=limit)

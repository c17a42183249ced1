"""The quota table (source: the quota-ops hop, key `tenant`), and its per-tenant index.

One entry per contact that asked the quota or holds a slot (`tenant|contact_id`
-> encoded `Holder`): a tenant's whole quota in one value would grow with its
contacts and pass Kafka's record size. `used` is the number of entries holding
a slot; the in-memory `QuotaIndex` counts them (and the coming releases) per
tenant. It is derived from the table, never state of record: rebuilt from the
restored table after every rebalance, and updated on every write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from stream.domain.marketing import QuotaOp, ReleaseSlot, ScheduleRelease, TakeSlot
from stream.domain.quota import Grant, Holder, Slot
from stream.tables.base import bytes_table

quota_holders = bytes_table(
    "quota", "tenant|contact_id -> the contact's slot in the tenant's quota and its recent answers"
)


def holder_key(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}|{contact_id}"


# The marker of an operation's `after` entry bound for the quota-ops hop
# (stream/agents/merge.py `send_after`).
QUOTA_OPS = "quota-ops"


def quota_message(tenant_id: str, contact_id: str, op: QuotaOp) -> list[Any]:
    """An `after` entry carrying one quota op for the contact, keyed by its tenant."""
    message = {"tenant_id": tenant_id, "contact_id": contact_id, **quota_fields(op)}
    return [tenant_id, message, QUOTA_OPS]


def quota_fields(op: QuotaOp) -> dict[str, object]:
    """A quota op as the fields of its message on the quota-ops hop."""
    match op:
        case ReleaseSlot():
            return {"kind": "release", "request_id": op.request_id}
        case ScheduleRelease():
            return {"kind": "schedule", "request_id": op.request_id, "at": op.at}
        case TakeSlot():
            return {"kind": "take", "request_id": op.request_id}


def grant_json(grant: Grant) -> dict[str, object]:
    return {
        "request_id": grant.request_id,
        "granted": grant.granted,
        "used": grant.used,
        "limit": grant.limit,
        "exceeded": grant.exceeded,
        "duplicate": grant.duplicate,
    }


def grant_from(d: dict[str, object]) -> Grant:
    return Grant(**d)  # type: ignore[arg-type]


def encode_holder(holder: Holder) -> bytes:
    slot = None if holder.slot is None else [holder.slot.request_id, holder.slot.release_at]
    return orjson.dumps({"slot": slot, "answers": [grant_json(g) for g in holder.answers]})


def decode_holder(raw: bytes | None) -> Holder:
    if raw is None:
        return Holder()
    d = orjson.loads(raw)
    slot = None if d["slot"] is None else Slot(*d["slot"])
    return Holder(slot, tuple(grant_from(g) for g in d["answers"]))


class QuotaIndex:
    """Per tenant: how many slots are used and when held ones are released (SPEC §5 quota view)."""

    def __init__(self) -> None:
        self._holders: dict[str, dict[str, int | None]] = {}

    def used(self, tenant_id: str) -> int:
        return len(self._holders.get(tenant_id, {}))

    def releases(self, tenant_id: str) -> list[tuple[int, str]]:
        """(time, contact id) of every held slot with a scheduled release, earliest first."""
        held = self._holders.get(tenant_id, {})
        return sorted((at, cid) for cid, at in held.items() if at is not None)

    def update(self, key: str, holder: Holder) -> None:
        tenant_id, contact_id = key.split("|", 1)
        held = self._holders.setdefault(tenant_id, {})
        if holder.slot is None:
            held.pop(contact_id, None)
        else:
            held[contact_id] = holder.slot.release_at

    def rebuild(self, entries: Iterable[tuple[str, Holder]]) -> None:
        self._holders.clear()
        for key, holder in entries:
            self.update(key, holder)


quota_index = QuotaIndex()

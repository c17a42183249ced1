"""Byte codecs of table values: versionless JSON, decoded into domain state.

New keys are read with a default, so values written by an older worker decode.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.domain.contact import Contact, TimedValue
from stream.domain.engagement import Engagement
from stream.domain.marketing import Marketing


def _timed(tv: TimedValue | None) -> list[Any] | None:
    return None if tv is None else [tv.value, tv.at, tv.event_id]


def _untimed(raw: list[Any] | None) -> TimedValue | None:
    return None if raw is None else TimedValue(raw[0], raw[1], raw[2])


def encode_contact(contact: Contact) -> bytes:
    return orjson.dumps(
        {
            "tenant_id": contact.tenant_id,
            "contact_id": contact.contact_id,
            "source": contact.source,
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
            "version": contact.version,
            "state": contact.state,
            "emails": contact.emails,
            "phones": contact.phones,
            "fields": [[name, _timed(tv)] for name, tv in contact.fields],
            "tags": contact.tags,
            "owner": _timed(contact.owner),
            "lists": contact.lists,
            "suspended": contact.suspended,
            "deleted_at": contact.deleted_at,
            "merged_into": contact.merged_into,
            "purge_after": contact.purge_after,
            "engagement": _encode_engagement(contact.engagement),
            "marketing": _encode_marketing(contact.marketing),
        }
    )


def _encode_marketing(m: Marketing) -> list[Any] | None:
    if m == Marketing():
        return None  # a sales contact that never held a slot
    return [m.active, m.activated_at, m.slot_held_until, m.slot_request]


def _decode_marketing(raw: list[Any] | None) -> Marketing:
    return Marketing() if raw is None else Marketing(*raw)


def _encode_engagement(e: Engagement) -> dict[str, Any] | None:
    if e == Engagement():
        return None  # most contacts: nothing to store
    return {
        "score": e.score,
        "score_at": e.score_at,
        "last_engagement_at": e.last_engagement_at,
        "last_activity_at": e.last_activity_at,
        "activity": e.activity,
        "campaign_status": e.campaign_status,
        "status_reason": e.status_reason,
        "status_since": e.status_since,
        "sends": e.sends,
        "reactivation_cycle": e.reactivation_cycle,
        "suppressed_for_good": e.suppressed_for_good,
        "activated_at_latest": e.activated_at_latest,
        "tier": e.tier,
    }


def _decode_engagement(d: dict[str, Any] | None) -> Engagement:
    if d is None:
        return Engagement()
    return Engagement(
        **{
            **d,
            "activity": tuple((kind, at) for kind, at in d["activity"]),
            "sends": tuple(d["sends"]),
        }
    )


def decode_contact(raw: bytes) -> Contact:
    d = orjson.loads(raw)
    return Contact(
        tenant_id=d["tenant_id"],
        contact_id=d["contact_id"],
        source=d["source"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        version=d["version"],
        state=d["state"],
        emails=tuple(d["emails"]),
        phones=tuple(d["phones"]),
        fields=tuple((name, TimedValue(*tv)) for name, tv in d["fields"]),
        tags=tuple(d["tags"]),
        owner=_untimed(d["owner"]),
        lists=tuple(d["lists"]),
        suspended=d["suspended"],
        deleted_at=d["deleted_at"],
        merged_into=d["merged_into"],
        # Values written before `purge_after` existed have no such key.
        purge_after=d.get("purge_after"),
        engagement=_decode_engagement(d.get("engagement")),
        marketing=_decode_marketing(d.get("marketing")),
    )

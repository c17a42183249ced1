"""Byte codecs of table values: versionless JSON, decoded into domain state.

New keys are read with a default, so values written by an older worker decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from stream.domain.contact import Contact, TimedValue
from stream.domain.engagement import Engagement
from stream.domain.frozen import constructor
from stream.domain.marketing import Marketing

# Every input decodes its contact: built without the frozen `__init__`
# (stream/domain/frozen.py); type checkers see the classes themselves.
if TYPE_CHECKING:
    _contact, _engagement, _marketing, _timed_value = Contact, Engagement, Marketing, TimedValue
else:
    _contact, _engagement, _marketing, _timed_value = map(
        constructor, (Contact, Engagement, Marketing, TimedValue)
    )
# Shared, as the records are frozen: most contacts have one or both.
_NO_ENGAGEMENT = Engagement()
_NO_MARKETING = Marketing()


def _timed(tv: TimedValue | None) -> list[Any] | None:
    return None if tv is None else [tv.value, tv.at, tv.event_id]


def _untimed(raw: list[Any] | None) -> TimedValue | None:
    return None if raw is None else _timed_value(raw[0], raw[1], raw[2])


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
    if m is _NO_MARKETING or m == _NO_MARKETING:
        return None  # a sales contact that never held a slot
    return [m.active, m.activated_at, m.slot_held_until, m.slot_request]


def _decode_marketing(raw: list[Any] | None) -> Marketing:
    return _NO_MARKETING if raw is None else _marketing(*raw)


def _encode_engagement(e: Engagement) -> dict[str, Any] | None:
    if e is _NO_ENGAGEMENT or e == _NO_ENGAGEMENT:
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
        return _NO_ENGAGEMENT
    return _engagement(
        **{
            **d,
            "activity": tuple((kind, at) for kind, at in d["activity"]),
            "sends": tuple(d["sends"]),
        }
    )


def decode_contact(raw: bytes) -> Contact:
    d = orjson.loads(raw)
    return _contact(
        tenant_id=d["tenant_id"],
        contact_id=d["contact_id"],
        source=d["source"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        version=d["version"],
        state=d["state"],
        emails=tuple(d["emails"]),
        phones=tuple(d["phones"]),
        fields=tuple((name, _timed_value(*tv)) for name, tv in d["fields"]),
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

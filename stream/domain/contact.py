"""Contact state, its change events and its snapshot (SPEC §2.6, §2.6.1)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stream.domain.timefmt import format_ms, format_optional_ms

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Cause:
    """What made a change: `kind` is intake, engagement, command or timer."""

    kind: str
    event_id: str | None
    clamped: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "event_id": self.event_id}
        if self.clamped:
            out["clamped"] = True
        return out


@dataclass(frozen=True, slots=True)
class Change:
    """One change event of SPEC §2.6, before encoding."""

    change_id: str
    tenant_id: str
    contact_id: str
    version: int
    type: str
    at: int
    cause: Cause
    data: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "tenant_id": self.tenant_id,
            "contact_id": self.contact_id,
            "version": self.version,
            "type": self.type,
            "at": format_ms(self.at),
            "cause": self.cause.as_json(),
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class TimedValue:
    """A field value with the time that wrote it: last writer wins (SPEC §3.2.5)."""

    value: Scalar
    at: int
    event_id: str

    def loses_to(self, at: int, event_id: str) -> bool:
        return (at, event_id.encode()) > (self.at, self.event_id.encode())


@dataclass(frozen=True, slots=True)
class Contact:
    tenant_id: str
    contact_id: str
    source: str
    created_at: int
    updated_at: int
    version: int = 0
    state: str = "live"
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    fields: tuple[tuple[str, TimedValue], ...] = ()
    tags: tuple[str, ...] = ()
    owner: TimedValue | None = None
    lists: tuple[str, ...] = ()
    suspended: bool = False
    deleted_at: int | None = None
    merged_into: str | None = None

    @property
    def field_map(self) -> dict[str, TimedValue]:
        return dict(self.fields)


def derive_contact_id(
    tenant_id: str, event_id: str, topic: str, partition: int, offset: int
) -> str:
    """SPEC §3.2.10: the same creating input always yields the same id."""
    digest = hashlib.blake2b(
        f"{tenant_id}\x1f{event_id}\x1f{topic}\x1f{partition}\x1f{offset}".encode(),
        digest_size=16,
    ).digest()
    return str(uuid.UUID(bytes=digest))


def derive_change_id(contact: Contact, version: int, change_type: str, cause: Cause) -> str:
    """Deterministic and unique per (contact, version): a replay reproduces it exactly."""
    digest = hashlib.blake2b(
        f"{contact.tenant_id}\x1f{contact.contact_id}\x1f{version}\x1f{change_type}"
        f"\x1f{cause.kind}\x1f{cause.event_id}".encode(),
        digest_size=16,
    ).digest()
    return str(uuid.UUID(bytes=digest))


class ChangeLog:
    """Accumulates one input's changes of one contact with consecutive versions."""

    def __init__(self, contact: Contact, cause: Cause, at: int) -> None:
        self.contact = contact
        self.cause = cause
        # `at` never decreases along a contact's versions (SPEC §2.6).
        self.at = max(at, contact.updated_at) if contact.version else at
        self.changes: list[Change] = []

    def emit(self, change_type: str, data: Mapping[str, Any]) -> None:
        version = self.contact.version + 1
        self.contact = replace(self.contact, version=version, updated_at=self.at)
        self.changes.append(
            Change(
                change_id=derive_change_id(self.contact, version, change_type, self.cause),
                tenant_id=self.contact.tenant_id,
                contact_id=self.contact.contact_id,
                version=version,
                type=change_type,
                at=self.at,
                cause=self.cause,
                data=data,
            )
        )


def snapshot(contact: Contact) -> dict[str, Any]:
    """The contact as SPEC §2.6.1 shows it (Redis value, HTTP view, `contact.created`)."""
    return {
        "contact_id": contact.contact_id,
        "tenant_id": contact.tenant_id,
        "version": contact.version,
        "created_at": format_ms(contact.created_at),
        "updated_at": format_ms(contact.updated_at),
        "state": contact.state,
        "source": contact.source,
        "emails": list(contact.emails),
        "phones": list(contact.phones),
        "fields": {name: tv.value for name, tv in contact.fields},
        "tags": list(contact.tags),
        "owner": None if contact.owner is None else contact.owner.value,
        "lists": list(contact.lists),
        "suspended": contact.suspended,
        "deleted_at": format_optional_ms(contact.deleted_at),
        "merged_into": contact.merged_into,
        # Marketing and engagement state arrive with their issues; until then every
        # contact is the SPEC's new sales contact: not marketing, no activity.
        "marketing": {"active": False, "activated_at": None, "slot_held_until": None},
        "engagement": {
            "score": 0.0,
            "score_at": None,
            "last_engagement_at": None,
            "last_activity_at": None,
            "campaign_status": None,
            "sends_since_engagement": 0,
            "reactivation_cycle": 0,
            "tier": "inactive",
        },
        "activity": {},
    }

"""apply_intakes: resolve identity and apply intakes on the tenant's partition.

Identity here is the walking skeleton's: every intake of a tenant is on one
partition, so a lookup in the identity table is stable while the decision is
taken. The per-identifier locking protocol of SPEC §3.2.9 replaces it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from faust.types import StreamT

from stream.agents.output import publish
from stream.app import app
from stream.domain.identity import (
    IdentityConfig,
    Intake,
    Origin,
    apply_intake,
    find_match,
)
from stream.domain.normalize import Identifier, Kind, Normalized, RejectedIdentifier, Rejection
from stream.domain.timefmt import MS_PER_DAY
from stream.models import TenantConfig
from stream.tables.codec import decode_contact, encode_contact
from stream.tables.contacts import (
    contact_key,
    contacts,
    identities,
    identity_key,
    seen_events,
    seen_key,
)
from stream.topics import intake_by_tenant_topic

log = logging.getLogger(__name__)
DEDUP_MS = TenantConfig().dedup_days * MS_PER_DAY


def intake_from_payload(p: dict[str, Any]) -> Intake:
    return Intake(
        tenant_id=p["tenant_id"],
        event_id=p["event_id"],
        source=p["source"],
        identifiers=Normalized(
            emails=tuple(p["emails"]),
            phones=tuple(p["phones"]),
            rejected=tuple(
                RejectedIdentifier(Kind(kind), value, Rejection(reason))
                for kind, value, reason in p["rejected"]
            ),
        ),
        at=p["at"],
        clamped=p["clamped"],
        origin=Origin(*p["origin"]),
        fields=p["fields"],
        tags=tuple(p["tags"]),
        owner=p["owner"],
        on_match=p["on_match"],
        marketing=p["marketing"],
    )


def _already_applied(intake: Intake) -> bool:
    """An `event_id` applied within `dedup_days` has no effect at all (SPEC §2.1)."""
    seen = seen_events.get(seen_key(intake.tenant_id, intake.event_id))
    return seen is not None and intake.at - int(seen) < DEDUP_MS


def _owners(tenant: str, intake: Intake) -> dict[Identifier, str]:
    """The owner of each identifier of the intake, as the identity table says.

    An owner whose contact is missing is taken as no owner: its contact write
    was lost in a crash while the identity write survived (separate changelog
    topics), and the contact is created again by the input that replays it.
    """
    owners: dict[Identifier, str] = {}
    for ident in intake.identifiers.identifiers:
        owner = identities.get(identity_key(tenant, ident.kind.value, ident.value))
        if owner is None:
            continue
        if contacts.get(contact_key(tenant, owner.decode())) is None:
            log.warning("identity owner without contact in tenant %s: treated as unowned", tenant)
            continue
        owners[ident] = owner.decode()
    return owners


@app.agent(intake_by_tenant_topic, name="apply-intakes")
async def apply_intakes(stream: StreamT[bytes]) -> None:
    async for payload_raw in stream:
        payload = orjson.loads(payload_raw)
        intake = intake_from_payload(payload)
        if _already_applied(intake):
            continue
        tenant = intake.tenant_id
        owners = _owners(tenant, intake)
        match = find_match(intake.identifiers, owners)
        matched = None
        if match is not None:
            matched = decode_contact(contacts[contact_key(tenant, match.contact_id)])
        config = IdentityConfig(payload["alt_email_limit"], payload["alt_phone_limit"])
        decision = apply_intake(intake, owners, matched, config)
        contact = decision.contact
        contacts[contact_key(tenant, contact.contact_id)] = encode_contact(contact)
        for ident in decision.claimed:
            identities[identity_key(tenant, ident.kind.value, ident.value)] = (
                contact.contact_id.encode()
            )
        seen_events[seen_key(tenant, intake.event_id)] = str(intake.at).encode()
        await publish(decision.changes, contact)

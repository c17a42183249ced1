"""apply_contact_ops: apply an intake on its contact's partition, then unlock.

The intake arrives holding the locks of all its identifiers, with the owner
each had when locked (stream/agents/identity.py). Here the contact is loaded,
the identity rules decide (stream/domain/identity.py), the tables are
written, the change events published, and only after the producer has
flushed all of that are the unlocks sent: no identifier names a contact
whose state is not yet durable.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from faust.types import StreamT

from stream.agents.identity import send_identity_op
from stream.agents.output import publish
from stream.app import app
from stream.domain.identity import IdentityConfig, Intake, Origin, apply_intake
from stream.domain.normalize import Identifier, Kind, Normalized, RejectedIdentifier, Rejection
from stream.domain.timefmt import MS_PER_DAY
from stream.models import TenantConfig
from stream.tables.codec import decode_contact, encode_contact
from stream.tables.contacts import applied_events, applied_key, contact_key, contacts
from stream.topics import contact_ops_topic

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


def owners_by_identifier(owners: dict[str, str | None]) -> dict[Identifier, str]:
    """Identity keys (`tenant|kind|value`) back to domain identifiers, owned ones only."""
    out: dict[Identifier, str] = {}
    for key, owner in owners.items():
        if owner is not None:
            _, kind, value = key.split("|", 2)
            out[Identifier(Kind(kind), value)] = owner
    return out


def unlocks_for(
    keys: list[str], tenant: str, contact_id: str, claimed: tuple[Identifier, ...]
) -> list[list[Any]]:
    """One unlock per locked key: [key, set_owner, owner]."""
    claimed_keys = {f"{tenant}|{i.kind.value}|{i.value}" for i in claimed}
    return [[key, key in claimed_keys, contact_id if key in claimed_keys else None] for key in keys]


@app.agent(contact_ops_topic, name="apply-contact-ops")
async def apply_contact_ops(stream: StreamT[bytes]) -> None:
    async for raw in stream:
        operation = orjson.loads(raw)
        unlocks = await _apply_intake(operation)
        # Everything above (tables, changes, snapshot) is durable before any
        # identifier is released to the next operation.
        await app.producer.flush()
        for key, set_owner, owner in unlocks:
            await send_identity_op(
                key, {"kind": "unlock", "op": operation["op"], "set": set_owner, "owner": owner}
            )


async def _apply_intake(operation: dict[str, Any]) -> list[list[Any]]:
    intake = intake_from_payload(operation["intake"])
    tenant, op_id = intake.tenant_id, operation["op"]
    seen_key = applied_key(tenant, intake.event_id)
    seen_raw = applied_events.get(seen_key)
    if seen_raw is not None:
        seen = orjson.loads(seen_raw)
        if intake.at - seen["at"] < DEDUP_MS:
            if seen["op"] != op_id:
                # The same event_id from another record: a producer's retry. No effect.
                return [[key, False, None] for key in operation["keys"]]
            # This very record again (a crash before its offset was committed):
            # send its effects again; the ids are the same, nothing is applied twice.
            stored = decode_contact(contacts[contact_key(tenant, seen["contact"])])
            await publish(seen["changes"], stored)
            return list(seen["unlocks"])
    target = operation["target"]
    matched = None
    if target != op_id:
        matched = decode_contact(contacts[contact_key(tenant, target)])
    config = IdentityConfig(
        operation["intake"]["alt_email_limit"], operation["intake"]["alt_phone_limit"]
    )
    decision = apply_intake(intake, owners_by_identifier(operation["owners"]), matched, config)
    contact = decision.contact
    contacts[contact_key(tenant, contact.contact_id)] = encode_contact(contact)
    unlocks = unlocks_for(operation["keys"], tenant, contact.contact_id, decision.claimed)
    encoded = [orjson.dumps(change.as_json()).decode() for change in decision.changes]
    applied_events[seen_key] = orjson.dumps(
        {
            "at": intake.at,
            "op": op_id,
            "contact": contact.contact_id,
            "changes": encoded,
            "unlocks": unlocks,
        }
    )
    await publish(encoded, contact)
    return unlocks

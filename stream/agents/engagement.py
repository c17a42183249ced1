"""route_engagements: validate engagement events and send each to its contact.

An event names its contact by `contact_id` (straight to the contact's
partition) or by `email` / `phone`: then it first asks the identifier's
entry for its owner (`lookup` on identity-ops), waiting behind an in-flight
operation that holds the identifier's lock, so it reaches the contact that
operation leaves in place (SPEC §3.5.1, DESIGN.md). An identifier nobody
owns, or an unknown or purged contact id, gives a dead letter
`unknown_contact` carrying the original record, so it can be replayed.
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT

from stream import metrics
from stream.agents import batches
from stream.agents.identity import send_contact_op, send_engagement
from stream.agents.output import origin_of, send_dead_letter
from stream.app import app
from stream.domain.contact import derive_contact_id
from stream.domain.normalize import Kind, is_blocked, normalize_email, normalize_phone
from stream.domain.timefmt import logical_time, to_ms
from stream.models import EngagementEvent, InputRejected, decode_input
from stream.tables.identities import identity_key
from stream.tables.tenant_configs import tenant_configs
from stream.topics import engagement_topic


def routed_engagement(
    event: EngagementEvent, topic: str, partition: int, offset: int, broker_ms: int
) -> dict[str, Any]:
    """The payload the identity and contact hops carry."""
    occurred = None if event.occurred_at is None else to_ms(event.occurred_at)
    at, clamped = logical_time(occurred, broker_ms)
    return {
        "tenant_id": event.tenant_id,
        "event_id": event.event_id,
        "type": event.type,
        "machine_open": event.machine_open,
        # A clamped time stands for the event's time in every rule.
        "occurred_at": at,
        "at": at,
        "clamped": clamped,
        "op": derive_contact_id(event.tenant_id, event.event_id, topic, partition, offset),
    }


def identifier_key(event: EngagementEvent) -> str | None:
    """The identity key of the email or phone the event names; None if invalid or blocked.

    `normalize_identifiers` for the one identifier an engagement names (its
    model requires exactly one of contact_id, email, phone), without the lists.
    """
    config = tenant_configs.get(event.tenant_id)
    if event.email is not None:
        kind, value = Kind.EMAIL, normalize_email(event.email)
    elif event.phone is not None:
        kind, value = Kind.PHONE, normalize_phone(event.phone, config.default_region)
    else:
        return None
    if value is None or is_blocked(value, config.blocked_values):
        return None
    return identity_key(event.tenant_id, kind.value, value)


@app.agent(engagement_topic, name="route-engagements")
async def route_engagements(stream: StreamT[bytes]) -> None:
    await tenant_configs.ready()
    async for event in batches.events(stream, "route-engagements"):
        message = event.message
        metrics.child(metrics.INPUTS, message.topic).inc()
        try:
            engagement = decode_input("engagement", message.value)
        except InputRejected as rejected:
            await send_dead_letter(event, rejected.reason, rejected.detail)
            continue
        payload = routed_engagement(
            engagement,
            message.topic,
            message.partition,
            message.offset,
            int(message.timestamp * 1000),
        )
        operation = {
            "kind": "engagement",
            "op": payload["op"],
            "keys": [],
            "engagement": payload,
            "origin": origin_of(event),
        }
        if engagement.contact_id is not None:
            await send_contact_op({**operation, "target": engagement.contact_id})
            continue
        key = identifier_key(engagement)
        if key is None:
            await send_dead_letter(
                event, "no_valid_identifier", "the email or phone is invalid or blocked"
            )
            continue
        await send_engagement(key, operation)

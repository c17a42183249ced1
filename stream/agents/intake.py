"""route_intakes: validate and normalize raw intakes, then start their identity visit.

The input key is never trusted (SPEC §2): a valid intake is sent to the
partition of its first identifier in lock order (stream/domain/locking.py).
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT

from stream import metrics
from stream.agents import batches
from stream.agents.identity import start_visit
from stream.agents.output import send_dead_letter
from stream.app import app
from stream.domain.normalize import normalize_identifiers
from stream.domain.timefmt import logical_time, to_ms
from stream.models import ContactIntake, CreateContact, InputRejected, decode_input
from stream.tables.tenant_configs import tenant_configs
from stream.topics import intake_topic


def routed_intake(
    intake: ContactIntake | CreateContact,
    topic: str,
    partition: int,
    offset: int,
    broker_ms: int,
) -> dict[str, Any] | None:
    """The tenant-keyed hop's payload; None when no identifier is valid.

    `create_contact` takes this path as an intake from source `manual` whose
    changes name a command as their cause (SPEC §2.4, §3.2.6).
    """
    config = tenant_configs.get(intake.tenant_id)
    ids = normalize_identifiers(
        intake.emails,
        intake.phones,
        intake.phone_region or config.default_region,
        config.blocked_values,
    )
    if not ids.emails and not ids.phones:
        return None
    occurred_ms = None if intake.occurred_at is None else to_ms(intake.occurred_at)
    at, clamped = logical_time(occurred_ms, broker_ms)
    return {
        "tenant_id": intake.tenant_id,
        "event_id": intake.event_id,
        "source": intake.source if isinstance(intake, ContactIntake) else "manual",
        "cause_kind": "intake" if isinstance(intake, ContactIntake) else "command",
        "emails": ids.emails,
        "phones": ids.phones,
        "rejected": [r.as_row() for r in ids.rejected],
        "fields": intake.fields,
        "tags": intake.tags,
        "owner": intake.owner,
        "on_match": intake.on_match,
        "marketing": intake.marketing,
        "at": at,
        "clamped": clamped,
        "origin": [topic, partition, offset],
    }


@app.agent(intake_topic, name="route-intakes")
async def route_intakes(stream: StreamT[bytes]) -> None:
    await tenant_configs.ready()
    async for event in batches.events(stream, "route-intakes"):
        message = event.message
        metrics.child(metrics.INPUTS, message.topic).inc()
        try:
            intake = decode_input("intake", message.value)
        except InputRejected as rejected:
            await send_dead_letter(event, rejected.reason, rejected.detail)
            continue
        payload = routed_intake(
            intake, message.topic, message.partition, message.offset, int(message.timestamp * 1000)
        )
        if payload is None:
            await send_dead_letter(event, "no_valid_identifier", "no valid email or phone")
            continue
        await start_visit(payload)

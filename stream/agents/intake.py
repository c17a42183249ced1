"""route_intakes: validate and normalize raw intakes, then repartition them by tenant.

The input key is never trusted (SPEC §2): the tenant-keyed hop puts every
intake of a tenant on one partition, where identity is resolved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from faust.types import StreamT

from stream.agents.output import send_dead_letter
from stream.app import app
from stream.domain.normalize import normalize_identifiers
from stream.domain.timefmt import to_ms
from stream.models import ContactIntake, InputRejected, TenantConfig, decode_input
from stream.topics import intake_by_tenant_topic, intake_topic

# Clock skew a producer may have before its `occurred_at` is distrusted (SPEC §2.1).
MAX_FUTURE_MS = 5 * 60 * 1000
DEFAULT_CONFIG = TenantConfig()


def effective_time(occurred_at: datetime | None, broker_ms: int) -> tuple[int, bool]:
    """The input's logical time and whether it was clamped to the broker timestamp."""
    if occurred_at is None:
        return broker_ms, False
    at = to_ms(occurred_at)
    if at > broker_ms + MAX_FUTURE_MS:
        return broker_ms, True
    return at, False


def routed_intake(
    intake: ContactIntake, topic: str, partition: int, offset: int, broker_ms: int
) -> dict[str, Any] | None:
    """The tenant-keyed hop's payload; None when no identifier is valid."""
    # Tenant configuration arrives with the marketing issue; until then every
    # tenant has the SPEC defaults.
    config = DEFAULT_CONFIG
    ids = normalize_identifiers(
        intake.emails,
        intake.phones,
        intake.phone_region or config.default_region,
        config.blocked_values,
    )
    if not ids.emails and not ids.phones:
        return None
    at, clamped = effective_time(intake.occurred_at, broker_ms)
    return {
        "tenant_id": intake.tenant_id,
        "event_id": intake.event_id,
        "source": intake.source,
        "emails": ids.emails,
        "phones": ids.phones,
        "rejected": [[r.kind.value, r.value, r.reason.value] for r in ids.rejected],
        "fields": intake.fields,
        "tags": intake.tags,
        "owner": intake.owner,
        "on_match": intake.on_match,
        "marketing": intake.marketing,
        "at": at,
        "clamped": clamped,
        "origin": [topic, partition, offset],
        "alt_email_limit": config.alt_email_limit,
        "alt_phone_limit": config.alt_phone_limit,
    }


@app.agent(intake_topic, name="route-intakes")
async def route_intakes(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
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
        await intake_by_tenant_topic.send(
            key=intake.tenant_id.encode(), value=orjson.dumps(payload)
        )

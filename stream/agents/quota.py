"""keep_quota: the tenant's marketing quota, on the tenant's partition (SPEC §3.4.4).

The only writer of a tenant's slot count. Contact partitions send it:
`request` (a new activation: the operation travels along and comes back to
its contact with the grant attached), `release`, `schedule` (a hold's end,
for the quota view) and `take` (a merge hands a slot to its survivor).
Requests carry ids (stream/domain/quota.py), so a replayed request gets its
first answer and a stale release frees nothing: a retry or a crash never
counts twice and the count never goes negative.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from faust.types import StreamT

from stream import metrics
from stream.agents.identity import send_contact_op
from stream.app import app
from stream.domain import quota as q
from stream.tables.quota import (
    decode_holder,
    encode_holder,
    grant_json,
    holder_key,
    quota_holders,
    quota_index,
)
from stream.tables.tenant_configs import marketing_config, tenant_configs
from stream.topics import quota_ops_topic, send_raw, snapshots_topic

log = logging.getLogger(__name__)


async def request_slot(
    operation: dict[str, Any], tenant_id: str, contact_id: str, request_id: int
) -> None:
    """Ask for a new slot; the quota sends `operation` back to its contact with the grant."""
    message = {
        "kind": "request",
        "tenant_id": tenant_id,
        "contact_id": contact_id,
        "request_id": request_id,
        "then": operation,
    }
    await send_raw(quota_ops_topic, tenant_id.encode(), orjson.dumps(message))


@app.on_rebalance_complete.connect
async def _rebuild_quota_index(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    started = time.monotonic()
    entries = (
        (key.decode() if isinstance(key, bytes) else key, decode_holder(raw))
        for key, raw in quota_holders.items()
    )
    quota_index.rebuild(entries)
    log.info("quota index rebuilt (%.2fs)", time.monotonic() - started)


async def _publish_quota(tenant: str, seq: int) -> None:
    """The tenant's count for the Redis hash `cs:{t}:quota` (SPEC §4), newest `seq` wins.

    `seq` is the offset of the quota operation: it grows with each operation
    of the tenant (one partition), and a replay repeats it.
    """
    record = {
        "tenant_id": tenant,
        "seq": seq,
        "quota": {
            "used": quota_index.used(tenant),
            "limit": tenant_configs.get(tenant).marketing_limit,
        },
    }
    await send_raw(snapshots_topic, tenant.encode(), orjson.dumps(record))
    metrics.OUTPUTS.labels(snapshots_topic.get_topic_name()).inc()


@app.agent(quota_ops_topic, name="keep-quota")
async def keep_quota(stream: StreamT[bytes]) -> None:
    await tenant_configs.ready()
    async for raw in stream:
        message = orjson.loads(raw)
        offset = stream.current_event.message.offset  # type: ignore[union-attr]
        tenant, contact_id = message["tenant_id"], message["contact_id"]
        key = holder_key(tenant, contact_id)
        holder = decode_holder(quota_holders.get(key))
        kind, request_id = message["kind"], message["request_id"]
        grant = None
        if kind == "request":
            config = marketing_config(tenant_configs.get(tenant))
            new, grant = q.request_for(holder, request_id, quota_index.used(tenant), config)
        elif kind == "release":
            new = q.release_for(holder, request_id)
        elif kind == "schedule":
            new = q.schedule_for(holder, request_id, message["at"])
        elif kind == "take":
            new = q.transfer_for(holder, request_id)
        else:
            raise ValueError(f"unknown quota op {kind!r}")
        if new != holder:
            quota_holders[key] = encode_holder(new)
            used = quota_index.used(tenant)
            quota_index.update(key, new)
            if quota_index.used(tenant) != used:
                await _publish_quota(tenant, offset)
        metrics.QUOTA_OPS.labels(kind).inc()
        if grant is not None:
            if not grant.granted:
                metrics.QUOTA_REFUSED.inc()
            await send_contact_op({**message["then"], "grant": grant_json(grant)})

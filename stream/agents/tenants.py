"""check_tenant_configs: one dead letter per invalid `tenants.config.v1` record.

Every worker reads the whole topic into its replica (stream/tables/tenant_configs.py),
where an invalid record is skipped and the previous config stays. This agent,
fed by the same topic through the consumer group, is where the rejection is
reported, once.
"""

from __future__ import annotations

from faust.types import StreamT

from stream.agents.output import send_dead_letter
from stream.app import app
from stream.models import InputRejected, decode_tenant_config, is_valid_tenant_id
from stream.topics import tenant_config_topic


@app.agent(tenant_config_topic, name="check-tenant-configs")
async def check_tenant_configs(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        key = event.message.key
        tenant = (key or b"").decode("utf-8", errors="replace")
        if not is_valid_tenant_id(tenant):
            await send_dead_letter(
                event, "unknown_tenant_format", "the record key must be a tenant id"
            )
            continue
        try:
            decode_tenant_config(event.message.value)
        except InputRejected as rejected:
            await send_dead_letter(event, rejected.reason, rejected.detail)

"""The Redis read model (SPEC §4): version-checked, idempotent writes.

Every contact keeps, beside its JSON, the set of index keys it wrote
(`cs:{t}:m:{id}`), so a new snapshot removes exactly the stale entries in the
same atomic script. All of a tenant's keys share the `{t}` hash tag, so the
script touches a single Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

# KEYS[1] contact JSON, KEYS[2] the contact's own index-membership set,
# KEYS[3..] identifier keys; ARGV[1] version, ARGV[2] JSON, ARGV[3] contact id.
# An identifier key is deleted only while it still names this contact: after
# a purge, another contact may own the value already.
_APPLY_SNAPSHOT = """
local current = redis.call('GET', KEYS[1])
if current then
  local stored = cjson.decode(current)['version']
  if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
end
local wanted = {}
for i = 3, #KEYS do wanted[KEYS[i]] = true end
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not wanted[key] and redis.call('GET', key) == ARGV[3] then
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[3])
  redis.call('SADD', KEYS[2], KEYS[i])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def latest_per_contact(values: list[bytes]) -> list[dict[str, Any]]:
    """Only the newest snapshot of each contact in a batch needs writing."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in values:
        snap = orjson.loads(raw)
        key = (snap["tenant_id"], snap["contact_id"])
        if key not in latest or latest[key]["version"] < snap["version"]:
            latest[key] = snap
    return list(latest.values())


class ReadModel:
    """Writes contact snapshots to Redis under `prefix` (SPEC §4)."""

    def __init__(self, client: Redis, prefix: str = "cs") -> None:
        self.client = client
        self.prefix = prefix
        self._apply = client.register_script(_APPLY_SNAPSHOT)

    def tenant_prefix(self, tenant_id: str) -> str:
        return f"{self.prefix}:{{{tenant_id}}}"

    def contact_key(self, tenant_id: str, contact_id: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}:c:{contact_id}"

    def identifier_key(self, tenant_id: str, kind: str, value: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}:{kind}:{value}"

    async def apply_snapshots(self, snapshots: list[dict[str, Any]]) -> int:
        """Write snapshots in one pipelined round trip; returns how many were newer."""
        async with self.client.pipeline(transaction=False) as pipe:
            for snap in snapshots:
                keys, args = self._apply_arguments(snap)
                await self._apply(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return sum(1 for r in results if r)

    def _apply_arguments(self, snap: dict[str, Any]) -> tuple[list[str], list[Any]]:
        tenant, contact_id = snap["tenant_id"], snap["contact_id"]
        identifier_keys = [
            self.identifier_key(tenant, kind, value)
            for kind, values in (
                ("email", snap.get("emails", [])),
                ("phone", snap.get("phones", [])),
            )
            for value in values
        ]
        keys = [
            self.contact_key(tenant, contact_id),
            f"{self.tenant_prefix(tenant)}:m:{contact_id}",
            *identifier_keys,
        ]
        return keys, [snap["version"], orjson.dumps(snap), contact_id]

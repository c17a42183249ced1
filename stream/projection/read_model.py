"""The Redis read model (SPEC §4): version-checked, idempotent writes.

Every contact keeps, beside its JSON, the set of index keys it wrote
(`cs:{t}:m:{id}`): identifier keys (email/phone → id) and the segment sets it
is a member of (marketing, status, tier, lists, trash). A new snapshot
removes exactly the stale entries in the same atomic script. All of a
tenant's keys share the `{t}` hash tag, so the script touches a single Redis
Cluster slot.

The tenant's quota hash (`cs:{t}:quota`: used, limit) comes from the quota's
owner as a record of its own, guarded by a sequence number that grows with
each quota operation of the tenant.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

# KEYS[1] contact JSON, KEYS[2] the contact's own index-membership set,
# KEYS[3 .. 2+n] identifier keys, KEYS[3+n ..] segment sets; ARGV[1] version,
# ARGV[2] JSON, ARGV[3] contact id, ARGV[4] n, ARGV[5] the tenant's prefix.
#
# Identifier keys: snapshots of different contacts reach Redis in any order
# (other partitions), so an identifier handed from one contact to another
# (a purge, a removal, a merge) may be claimed by the new owner before the old
# owner's older snapshots arrive. Each identifier key therefore has a claims
# set (`{prefix}:claims:{kind}:{value}`) of the contacts whose stored snapshot
# lists it: a claim never takes the key from a contact that still claims it,
# and a contact dropping the key hands it to a remaining claimant. Once every
# contact's latest snapshot is in, one contact claims each identifier (SPEC
# §3.2.2) and the key names it, whatever the order.
_APPLY_SNAPSHOT = """
local current = redis.call('GET', KEYS[1])
if current then
  local stored = cjson.decode(current)['version']
  if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
end
local id = ARGV[3]
local prefix = ARGV[5]
local function claims(key) return prefix .. ':claims:' .. string.sub(key, #prefix + 2) end
local identifiers = 2 + tonumber(ARGV[4])
local wanted = {}
for i = 3, #KEYS do wanted[KEYS[i]] = true end
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not wanted[key] then
    if redis.call('TYPE', key)['ok'] == 'set' then
      redis.call('SREM', key, id)
    else
      local c = claims(key)
      redis.call('SREM', c, id)
      if redis.call('GET', key) == id then
        local heir = redis.call('SRANDMEMBER', c)
        if heir then redis.call('SET', key, heir) else redis.call('DEL', key) end
      end
    end
  end
end
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  if i <= identifiers then
    local c = claims(KEYS[i])
    redis.call('SADD', c, id)
    local owner = redis.call('GET', KEYS[i])
    if not owner or owner == id or redis.call('SISMEMBER', c, owner) == 0 then
      redis.call('SET', KEYS[i], id)
    end
  else
    redis.call('SADD', KEYS[i], id)
  end
  redis.call('SADD', KEYS[2], KEYS[i])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] the quota hash; ARGV[1] seq, ARGV[2] used, ARGV[3] limit ('' = none).
_APPLY_QUOTA = """
local stored = redis.call('HGET', KEYS[1], 'seq')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'used', ARGV[2], 'limit', ARGV[3])
return 1
"""


def latest_per_contact(values: list[bytes]) -> list[dict[str, Any]]:
    """Only the newest snapshot of each contact (and quota of each tenant) needs writing."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in values:
        snap = orjson.loads(raw)
        if "quota" in snap:
            key, order = (snap["tenant_id"], ""), "seq"
        else:
            key, order = (snap["tenant_id"], snap["contact_id"]), "version"
        if key not in latest or latest[key][order] < snap[order]:
            latest[key] = snap
    return list(latest.values())


def segment_names(snap: dict[str, Any]) -> list[str]:
    """The segment sets a contact belongs to (SPEC §4): live ones only, trashed in `trash`."""
    state = snap.get("state")
    if state == "trashed":
        return ["trash"]
    if state != "live":
        return []
    names = []
    if snap.get("marketing", {}).get("active"):
        names.append("marketing")
    engagement = snap.get("engagement", {})
    if engagement.get("campaign_status"):
        names.append(f"status:{engagement['campaign_status']}")
    if engagement.get("tier"):
        names.append(f"tier:{engagement['tier']}")
    names += [f"list:{list_id}" for list_id in snap.get("lists", [])]
    return names


class ReadModel:
    """Writes contact snapshots to Redis under `prefix` (SPEC §4)."""

    def __init__(self, client: Redis, prefix: str = "cs") -> None:
        self.client = client
        self.prefix = prefix
        self._apply = client.register_script(_APPLY_SNAPSHOT)
        self._apply_quota = client.register_script(_APPLY_QUOTA)

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
                if "quota" in snap:
                    quota = snap["quota"]
                    limit = "" if quota["limit"] is None else quota["limit"]
                    await self._apply_quota(
                        keys=[f"{self.tenant_prefix(snap['tenant_id'])}:quota"],
                        args=[snap["seq"], quota["used"], limit],
                        client=pipe,
                    )
                    continue
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
        segments = [f"{self.tenant_prefix(tenant)}:{name}" for name in segment_names(snap)]
        keys = [
            self.contact_key(tenant, contact_id),
            f"{self.tenant_prefix(tenant)}:m:{contact_id}",
            *identifier_keys,
            *segments,
        ]
        args = [snap["version"], orjson.dumps(snap), contact_id, len(identifier_keys)]
        return keys, [*args, self.tenant_prefix(tenant)]

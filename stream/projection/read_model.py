"""The Redis read model (SPEC §4): version-checked, idempotent writes.

Every contact keeps, beside its JSON, the set of index keys it wrote
(`cs:{t}:m:{id}`): identifier keys (email/phone → id), the segment sets
(marketing, status, tier, lists, trash), the filter sets (source, owner,
tags, filterable fields) and the sorted set `created`
(stream/projection/index.py says which). A new snapshot removes exactly the
stale entries in the same atomic script, so a tag removed, an owner changed,
a field edited, a trash, restore, purge or merge leaves no entry behind.
The registry sets `cs:{t}:lists` and `cs:{t}:sources` name the list and
source sets that have members: a name enters with its set's first member
and leaves with its last. All of a tenant's keys share the `{t}` hash tag,
so the script touches a single Redis Cluster slot.

History (`cs:{t}:h:{id}`, newest first, capped) takes a contact's change
events once each: an event enters only if its version is greater than the
list's head, so a replayed changes topic adds nothing. A purged contact's
history is deleted, both by its `contact.purged` event and by its purged
snapshot, whichever arrives first (they come from two topics), and is not
started again afterwards: a purged contact has no later versions.

The tenant's quota hash (`cs:{t}:quota`: used, limit) comes from the quota's
owner as a record of its own, guarded by a sequence number that grows with
each quota operation of the tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from stream.projection import scripts
from stream.projection.index import (
    CREATED,
    DEFAULT_FILTERABLE_FIELDS,
    created_ms,
    index_names,
    segment_names,
    tenant_prefix,
)

__all__ = ["ReadModel", "latest_per_contact", "segment_names"]

# One snapshot (scripts.Batched runs it over many): KEYS[1] contact JSON,
# KEYS[2] the contact's own index-membership set,
# KEYS[3 .. 2+n] identifier keys, then the index sets, and last the sorted set
# `created` when ARGV[6] (its score) is not empty; ARGV[1] version, ARGV[2]
# JSON, ARGV[3] contact id, ARGV[4] n, ARGV[5] the tenant's prefix, ARGV[6]
# the `created` score or '', ARGV[7] '1' when the contact is purged (its
# history goes).
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
-- The registry set and name of a list or source set, nil for any other key.
local function registry(key)
  local rest = string.sub(key, #prefix + 2)
  if string.sub(rest, 1, 5) == 'list:' then return prefix .. ':lists', string.sub(rest, 6) end
  if string.sub(rest, 1, 7) == 'source:' then return prefix .. ':sources', string.sub(rest, 8) end
  return nil, nil
end
local identifiers = 2 + tonumber(ARGV[4])
local scored = ARGV[6] ~= ''
local wanted = {}
for i = 3, #KEYS do wanted[KEYS[i]] = true end
-- Entries the contact keeps need no write: it is a member already.
local kept = {}
local stale = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if wanted[key] then
    kept[key] = true
  else
    stale[#stale + 1] = key
    local kind = redis.call('TYPE', key)['ok']
    if kind == 'set' then
      redis.call('SREM', key, id)
      local reg, name = registry(key)
      if reg and redis.call('SCARD', key) == 0 then redis.call('SREM', reg, name) end
    elseif kind == 'zset' then
      redis.call('ZREM', key, id)
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
if #stale > 0 then redis.call('SREM', KEYS[2], unpack(stale)) end
local added = {}
for i = 3, #KEYS do
  local key = KEYS[i]
  if i <= identifiers then
    local c = claims(key)
    redis.call('SADD', c, id)
    local owner = redis.call('GET', key)
    if not owner or owner == id or redis.call('SISMEMBER', c, owner) == 0 then
      redis.call('SET', key, id)
    end
  elseif kept[key] then
    -- already a member
  elseif scored and i == #KEYS then
    redis.call('ZADD', key, ARGV[6], id)
  else
    redis.call('SADD', key, id)
    local reg, name = registry(key)
    if reg then redis.call('SADD', reg, name) end
  end
  if not kept[key] then added[#added + 1] = key end
end
if #added > 0 then redis.call('SADD', KEYS[2], unpack(added)) end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[7] == '1' then redis.call('DEL', prefix .. ':h:' .. id) end
return 1
"""

# One contact's events (scripts.Batched runs it over many): KEYS[1] the
# contact's history list, KEYS[2] its contact JSON; ARGV[1] the
# cap, ARGV[2] '1' when the events include `contact.purged`, ARGV[3] n, then
# n versions and the n events, in version order.
_APPEND_HISTORY = """
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  return 0
end
local top = 0
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  top = tonumber(cjson.decode(head)['version'])
else
  -- An empty history of a purged contact stays empty: its snapshot (the
  -- other topic) was written first and deleted the list.
  local current = redis.call('GET', KEYS[2])
  if current and cjson.decode(current)['state'] == 'purged' then return 0 end
end
local n = tonumber(ARGV[3])
local added = 0
for i = 1, n do
  local version = tonumber(ARGV[3 + i])
  if version > top then
    redis.call('LPUSH', KEYS[1], ARGV[3 + n + i])
    top = version
    added = added + 1
  end
end
if added > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1) end
return added
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


FieldsOf = Callable[[str], Sequence[str]]

# Contacts per script call. A call holds Redis while it runs (~60 µs per
# snapshot here), so other clients (the search views) wait at most ~6 ms.
CALL_ITEMS = 100


def _count(reply: Any, of: Callable[[Any], Any]) -> int:
    """A call's reply summed: a list of the items' replies, or one reply."""
    if isinstance(reply, list):
        return sum(int(of(r)) for r in reply)
    return int(of(reply))


def default_fields(tenant_id: str) -> Sequence[str]:
    """The filterable fields of a tenant never configured (SPEC §2.5)."""
    return DEFAULT_FILTERABLE_FIELDS


class ReadModel:
    """Writes contact snapshots and change events to Redis under `prefix` (SPEC §4).

    `filterable_fields` gives a tenant's `filterable_fields` (its config);
    `filter_indexes=False` writes no filter sets and no `created` (for the
    benchmark that measures what they cost); `history_cap` bounds each history.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str = "cs",
        filterable_fields: FieldsOf = default_fields,
        filter_indexes: bool = True,
        history_cap: int = 500,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.filterable_fields = filterable_fields
        self.filter_indexes = filter_indexes
        self.history_cap = history_cap
        self._apply = scripts.Batched(_APPLY_SNAPSHOT)
        self._apply_quota = scripts.Script(_APPLY_QUOTA)
        self._append_history = scripts.Batched(_APPEND_HISTORY)

    def tenant_prefix(self, tenant_id: str) -> str:
        return tenant_prefix(self.prefix, tenant_id)

    def contact_key(self, tenant_id: str, contact_id: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}:c:{contact_id}"

    def history_key(self, tenant_id: str, contact_id: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}:h:{contact_id}"

    def identifier_key(self, tenant_id: str, kind: str, value: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}:{kind}:{value}"

    async def apply_snapshots(self, snapshots: list[dict[str, Any]]) -> int:
        """Write snapshots in one round trip; returns how many were newer."""
        calls = []
        per_tenant: dict[str, list[scripts.Item]] = {}
        for snap in snapshots:
            if "quota" in snap:
                quota = snap["quota"]
                limit = "" if quota["limit"] is None else quota["limit"]
                calls.append(
                    self._apply_quota.call(
                        [f"{self.tenant_prefix(snap['tenant_id'])}:quota"],
                        [snap["seq"], quota["used"], limit],
                    )
                )
            else:
                per_tenant.setdefault(snap["tenant_id"], []).append(self._apply_arguments(snap))
        calls += self._calls(self._apply, per_tenant)
        results = await scripts.run(self.client, (self._apply, self._apply_quota), calls)
        return sum(_count(r, bool) for r in results)

    async def apply_changes(self, values: Sequence[bytes]) -> int:
        """Append change events (as read, in topic order) to their contacts' histories.

        One script call per tenant (and `CALL_ITEMS` contacts), in one round
        trip; returns how many events were new. Version-0 events belong to
        no history.
        """
        per_contact: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        for raw in values:
            change = orjson.loads(raw)
            if not change["version"]:
                continue
            key = (change["tenant_id"], change["contact_id"])
            per_contact.setdefault(key, []).append((change["version"], change["type"], raw))
        per_tenant: dict[str, list[scripts.Item]] = {}
        for (tenant, contact_id), events in per_contact.items():
            purged = any(kind == "contact.purged" for _, kind, _ in events)
            per_tenant.setdefault(tenant, []).append(
                (
                    [self.history_key(tenant, contact_id), self.contact_key(tenant, contact_id)],
                    [
                        self.history_cap,
                        "1" if purged else "0",
                        len(events),
                        *(version for version, _, _ in events),
                        *(raw for _, _, raw in events),
                    ],
                )
            )
        calls = self._calls(self._append_history, per_tenant)
        results = await scripts.run(self.client, (self._append_history,), calls)
        return sum(_count(r, int) for r in results)

    @staticmethod
    def _calls(script: scripts.Batched, per_tenant: dict[str, list[scripts.Item]]) -> list[bytes]:
        """A tenant's items in calls of at most CALL_ITEMS (one Redis Cluster slot each)."""
        return [
            script.call_items(items[start : start + CALL_ITEMS])
            for items in per_tenant.values()
            for start in range(0, len(items), CALL_ITEMS)
        ]

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
        names = index_names(snap, self.filterable_fields(tenant), self.filter_indexes)
        score = created_ms(snap) if CREATED in names else ""
        keys = [
            self.contact_key(tenant, contact_id),
            f"{self.tenant_prefix(tenant)}:m:{contact_id}",
            *identifier_keys,
            *(f"{self.tenant_prefix(tenant)}:{name}" for name in names),
        ]
        args = [snap["version"], orjson.dumps(snap), contact_id, len(identifier_keys)]
        purged = "1" if snap.get("state") == "purged" else "0"
        return keys, [*args, self.tenant_prefix(tenant), score, purged]

"""Finding contacts in the Redis read model (SPEC §4, §5): search, history, filters, segments.

Any worker answers from Redis alone, in one Lua script per page: the page,
the count and the snapshots come back in one round trip. Results follow the
sorted set `cs:{t}:created` (score: `created_at` in epoch ms; Redis orders
equal scores by member), so they are in (`created_at`, `contact_id`) order.
The script either reads `created` in order and keeps the members of every
criterion's set, or intersects them into a temporary sorted set, whichever
reads less (see `_SEARCH`). `marketing=false` leaves out the members of
`marketing`. The cursor names the last contact returned (its score and id):
the next page starts at the first entry after that position, whether or not
that contact still matches, so a walk never shows a contact twice.

Functions take a Redis client, the key prefix and the tenant, so the HTTP
views, the CLI and the demo's dashboard share them.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast, get_args
from urllib.parse import parse_qsl

import orjson
from redis.asyncio import Redis

from stream.models import SOURCES, CampaignStatus, Tier, parse_ts, to_epoch_ms
from stream.projection.index import field_index_value, tenant_prefix

STATUSES: Final[tuple[str, ...]] = get_args(CampaignStatus)
TIERS: Final[tuple[str, ...]] = get_args(Tier)
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
DEFAULT_HISTORY_LIMIT = 50
# Criteria naming one set: query parameter → (set name prefix, longest value).
SET_CRITERIA: Final[dict[str, tuple[str, int]]] = {
    "tag": ("tag", 256),
    "owner": ("owner", 128),
    "list": ("list", 128),
    "source": ("source", 32),
    "status": ("status", 32),
    "tier": ("tier", 32),
}
ENUMS: Final[dict[str, tuple[str, ...]]] = {"source": SOURCES, "status": STATUSES, "tier": TIERS}
PAGING: Final = ("limit", "cursor")
FILTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadQuery(ValueError):
    """A search parameter that cannot be answered; `parameter` names it (HTTP 400)."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Query:
    """The criteria of a search: every one must hold (SPEC §5)."""

    sets: tuple[str, ...] = ()
    not_marketing: bool = False
    # Criteria no contact meets (marketing both true and false, a field value
    # too long to be indexed): the answer is empty without asking Redis.
    impossible: bool = False
    created_from: int | None = None
    created_to: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = DEFAULT_LIMIT
    after: tuple[int, str] | None = None


def parse_date(parameter: str, text: str) -> int:
    """RFC 3339 with an offset, or YYYY-MM-DD (UTC midnight), as epoch ms."""
    try:
        if _DATE.fullmatch(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return to_epoch_ms(day)
        return to_epoch_ms(parse_ts(text))
    except ValueError:
        raise BadQuery(parameter, "not an RFC 3339 time or YYYY-MM-DD date") from None


def encode_cursor(score: int, contact_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score}:{contact_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        score, contact_id = raw.split(":", 1)
        if not contact_id or not score.isdigit():
            raise ValueError(raw)
        return int(score), contact_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery("cursor", "not a cursor this API returned") from None


def parse_query(
    pairs: Iterable[tuple[str, str]], filterable_fields: Sequence[str], paging: bool = True
) -> tuple[Query, Page]:
    """Validate a search's parameters (a query string's pairs, repeats included).

    `paging=False` is a saved filter's text: `limit` and `cursor` are refused.
    """
    sets: list[str] = []
    marketing: set[bool] = set()
    impossible = False
    froms: list[int] = []
    tos: list[int] = []
    page: dict[str, str] = {}
    for name, value in pairs:
        if name in SET_CRITERIA:
            prefix, longest = SET_CRITERIA[name]
            if not 1 <= len(value) <= longest:
                raise BadQuery(name, f"1 to {longest} characters")
            if name in ENUMS and value not in ENUMS[name]:
                raise BadQuery(name, f"one of {', '.join(ENUMS[name])}")
            sets.append(f"{prefix}:{value}")
        elif name == "marketing":
            if value not in ("true", "false"):
                raise BadQuery(name, "true or false")
            marketing.add(value == "true")
        elif name.startswith("field."):
            field = name.removeprefix("field.")
            if field not in filterable_fields:
                raise BadQuery(name, "not one of the tenant's filterable_fields")
            folded = field_index_value(value)
            if folded is None:
                impossible = True  # longer than any indexed value
            else:
                sets.append(f"field:{field}:{folded}")
        elif name in ("created_from", "created_to"):
            (froms if name == "created_from" else tos).append(parse_date(name, value))
        elif name in PAGING:
            if not paging:
                raise BadQuery(name, "a saved filter holds no limit or cursor")
            if name in page:
                raise BadQuery(name, "given twice")
            page[name] = value
        else:
            raise BadQuery(name, "unknown criterion")
    if True in marketing:
        sets.append("marketing")
    query = Query(
        sets=tuple(dict.fromkeys(sets)),
        not_marketing=False in marketing,
        impossible=impossible or len(marketing) == 2,
        created_from=max(froms) if froms else None,
        created_to=min(tos) if tos else None,
    )
    return query, _page(page)


def _page(given: dict[str, str]) -> Page:
    limit = DEFAULT_LIMIT
    if "limit" in given:
        text = given["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise BadQuery("limit", f"an integer from 1 to {MAX_LIMIT}")
        limit = int(text)
    after = decode_cursor(given["cursor"]) if "cursor" in given else None
    return Page(limit=limit, after=after)


def query_pairs(text: str) -> list[tuple[str, str]]:
    """A query string's pairs, in order, repeats and empty values kept."""
    return parse_qsl(text.removeprefix("?"), keep_blank_values=True)


# KEYS[1] created, KEYS[2] marketing, KEYS[3] the result (temporary), KEYS[4]
# scratch (temporary), KEYS[5..] the sets that must all hold; ARGV[1] '1' to
# leave out marketing contacts, ARGV[2] lowest score ('-inf' or ms), ARGV[3]
# score bound, exclusive ('+inf' or ms), ARGV[4] limit, ARGV[5] the cursor's
# score ('' for none), ARGV[6] its contact id, ARGV[7] the contact key prefix,
# ARGV[8] the scan factor. Returns count, 1 when there is more, ids, scores,
# snapshots.
#
# Two ways to a page. Scan: read `created` in order from the start rank and
# keep the entries that are members of every set (SMISMEMBER per chunk),
# until the page is full; without dates the count is SCARD or SINTERCARD,
# with dates the scan reads the whole range to count it. Materialize:
# ZINTERSTORE `created` with the sets into a temporary sorted set and page
# through that. A scan costs about the entries it reads (limit x range /
# count, or the range), a materialization about the smallest set, so the
# script scans when that is at most `factor` times the smallest set.
_SEARCH = """
local created, marketing, result = KEYS[1], KEYS[2], KEYS[3]
local exclude = ARGV[1] == '1'
local limit = tonumber(ARGV[4])
local factor = tonumber(ARGV[8])
local sets = {}
for i = 5, #KEYS do sets[#sets + 1] = {KEYS[i], redis.call('SCARD', KEYS[i])} end
table.sort(sets, function(a, b) return a[2] < b[2] end)
local names = {}
for i, set in ipairs(sets) do names[i] = set[1] end
local total = redis.call('ZCARD', created)
local smallest = total
if sets[1] then smallest = sets[1][2] end
local dated = ARGV[2] ~= '-inf' or ARGV[3] ~= '+inf'

-- The ranks [lo, hi) of the date range in sorted set z.
local function range(z)
  local lo, hi = 0, redis.call('ZCARD', z)
  if ARGV[2] ~= '-inf' then lo = redis.call('ZCOUNT', z, '-inf', '(' .. ARGV[2]) end
  if ARGV[3] ~= '+inf' then hi = redis.call('ZCOUNT', z, '-inf', '(' .. ARGV[3]) end
  return lo, hi
end

-- The first rank of a page in z: after the cursor's (score, id), whether or
-- not that id is in z (Redis itself orders it among equal scores), and not
-- before lo.
local function first(z, lo)
  if ARGV[5] == '' then return lo end
  local score, id = ARGV[5], ARGV[6]
  local rank
  local stored = redis.call('ZSCORE', z, id)
  if stored and tonumber(stored) == tonumber(score) then
    rank = redis.call('ZRANK', z, id) + 1
  else
    redis.call('ZRANGESTORE', KEYS[4], z, score, score, 'BYSCORE')
    redis.call('ZADD', KEYS[4], score, id)
    rank = redis.call('ZCOUNT', z, '-inf', '(' .. score) + redis.call('ZRANK', KEYS[4], id)
    redis.call('DEL', KEYS[4])
  end
  return math.max(lo, rank)
end

-- Reads `created` over ranks [from, to): the matches at or after rank
-- `page_from`, up to limit + 1 of them, and the number of matches read. It
-- stops when the page is full unless `counting`.
local function scan(from, to, page_from, counting)
  local ids, scores, matched = {}, {}, 0
  local pos, chunk = from, math.max(limit + 1, 128)
  while pos < to and (counting or #ids <= limit) do
    local last = math.min(pos + chunk, to) - 1
    local entries = redis.call('ZRANGE', created, pos, last, 'WITHSCORES')
    local members, ok = {}, {}
    for i = 1, #entries, 2 do
      members[#members + 1] = entries[i]
      ok[#members] = true
    end
    for _, name in ipairs(names) do
      local flags = redis.call('SMISMEMBER', name, unpack(members))
      for i = 1, #members do if flags[i] == 0 then ok[i] = false end end
    end
    if exclude then
      local flags = redis.call('SMISMEMBER', marketing, unpack(members))
      for i = 1, #members do if flags[i] == 1 then ok[i] = false end end
    end
    for i = 1, #members do
      if ok[i] then
        matched = matched + 1
        if pos + i - 1 >= page_from and #ids <= limit then
          ids[#ids + 1] = members[i]
          scores[#scores + 1] = entries[2 * i]
        end
      end
    end
    pos = last + 1
    chunk = math.min(chunk * 2, 2048)
  end
  return ids, scores, matched
end

-- limit + 1 entries of z from rank `from`, below rank `to`.
local function slice(z, from, to)
  local ids, scores = {}, {}
  if from < to then
    local entries = redis.call('ZRANGE', z, from, math.min(from + limit, to - 1), 'WITHSCORES')
    for i = 1, #entries, 2 do
      ids[#ids + 1] = entries[i]
      scores[#scores + 1] = entries[i + 1]
    end
  end
  return ids, scores
end

local function materialize()
  local z = created
  if #names > 0 then
    local args = {'ZINTERSTORE', result, #names + 1, created}
    for _, name in ipairs(names) do args[#args + 1] = name end
    args[#args + 1] = 'WEIGHTS'
    args[#args + 1] = 1
    for _ = 1, #names do args[#args + 1] = 0 end
    redis.call(unpack(args))
    z = result
  end
  if exclude then
    redis.call('ZDIFFSTORE', result, 2, z, marketing)
    z = result
  end
  redis.call('PEXPIRE', result, 60000)
  return z
end

local count, ids, scores
if #names == 0 and not exclude then
  local lo, hi = range(created)
  count = hi - lo
  ids, scores = slice(created, first(created, lo), hi)
elseif not dated then
  if #names == 0 then
    count = total - redis.call('SCARD', marketing)
  else
    count = smallest
    if #names > 1 then count = redis.call('SINTERCARD', #names, unpack(names)) end
    if exclude then
      local both = {unpack(names)}
      both[#both + 1] = marketing
      count = count - redis.call('SINTERCARD', #both, unpack(both))
    end
  end
  if count == 0 then
    ids, scores = {}, {}
  elseif (limit + 1) * total / count <= factor * smallest then
    ids, scores = scan(first(created, 0), total, 0, false)
  else
    local z = materialize()
    ids, scores = slice(z, first(z, 0), redis.call('ZCARD', z))
  end
else
  local lo, hi = range(created)
  if hi - lo <= factor * smallest then
    ids, scores, count = scan(lo, hi, first(created, lo), true)
  else
    local z = materialize()
    local zlo, zhi = range(z)
    count = zhi - zlo
    ids, scores = slice(z, first(z, zlo), zhi)
  end
end
local more = 0
if #ids > limit then
  more = 1
  ids[#ids] = nil
  scores[#scores] = nil
end
local docs = {}
if #ids > 0 then
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = ARGV[7] .. id end
  docs = redis.call('MGET', unpack(keys))
end
redis.call('DEL', result)
return {count, more, ids, scores, docs}
"""
# A scan may read this many times the smallest set's size before a
# materialization is preferred: per entry, a materialization (a sorted-set
# insert) costs more than a scan (a ZRANGE entry and an SMISMEMBER per set)
# but scans read more entries; on 100,000 contacts 0.25 and 1 gave about the
# same latencies, 0 (always materialize) and 4 were slower (bench/README.md).
SCAN_FACTOR = 0.5


async def search(
    client: Redis,
    prefix: str,
    tenant: str,
    query: Query,
    page: Page | None = None,
    scan_factor: float = SCAN_FACTOR,
) -> dict[str, Any]:
    """`{"count", "contacts", "next_cursor"}`: one page of the live contacts matching `query`.

    `scan_factor` chooses between the script's two ways (0: always
    materialize; a huge one: scan whenever possible); the answer is the same.
    """
    page = page or Page()
    if query.impossible or (
        query.created_from is not None
        and query.created_to is not None
        and query.created_from >= query.created_to
    ):
        return {"count": 0, "contacts": [], "next_cursor": None}
    tp = tenant_prefix(prefix, tenant)
    scratch = f"{tp}:tmp:{uuid.uuid4().hex}"
    keys = [
        f"{tp}:created",
        f"{tp}:marketing",
        scratch,
        f"{scratch}:at",
        *(f"{tp}:{name}" for name in query.sets),
    ]
    after_score, after_id = ("", "") if page.after is None else page.after
    args = [
        "1" if query.not_marketing else "0",
        "-inf" if query.created_from is None else query.created_from,
        "+inf" if query.created_to is None else query.created_to,
        page.limit,
        after_score,
        after_id,
        f"{tp}:c:",
        scan_factor,
    ]
    count, more, ids, scores, docs = await client.register_script(_SEARCH)(keys=keys, args=args)
    contacts = [orjson.loads(doc) for doc in docs if doc]
    cursor = None
    if more and ids:
        cursor = encode_cursor(int(float(scores[-1])), ids[-1].decode())
    return {"count": count, "contacts": contacts, "next_cursor": cursor}


async def contact_history(
    client: Redis, prefix: str, tenant: str, contact_id: str, limit: int
) -> list[dict[str, Any]] | None:
    """The contact's latest `limit` change events, newest first; None for no such contact.

    A purged contact has none (SPEC §4); a merged one keeps its history.
    """
    tp = tenant_prefix(prefix, tenant)
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(f"{tp}:c:{contact_id}")
        pipe.lrange(f"{tp}:h:{contact_id}", 0, limit - 1)
        raw, events = await pipe.execute()
    if raw is not None and orjson.loads(raw).get("state") == "purged":
        return None
    if raw is None and not events:
        return None
    return [orjson.loads(event) for event in events]


def filters_key(prefix: str, tenant: str) -> str:
    return f"{tenant_prefix(prefix, tenant)}:filters"


# redis-py types a command's result as "awaitable or value" (one client class
# serves sync and async); the asyncio client always returns an awaitable.
async def save_filter(client: Redis, prefix: str, tenant: str, name: str, text: str) -> None:
    await cast("Awaitable[int]", client.hset(filters_key(prefix, tenant), name, text))


async def saved_filter(client: Redis, prefix: str, tenant: str, name: str) -> str | None:
    raw = await cast("Awaitable[bytes | None]", client.hget(filters_key(prefix, tenant), name))
    return None if raw is None else raw.decode()


async def saved_filters(client: Redis, prefix: str, tenant: str) -> dict[str, str]:
    found = cast("Awaitable[dict[bytes, bytes]]", client.hgetall(filters_key(prefix, tenant)))
    return {k.decode(): v.decode() for k, v in sorted((await found).items())}


async def delete_filter(client: Redis, prefix: str, tenant: str, name: str) -> bool:
    return bool(await cast("Awaitable[int]", client.hdel(filters_key(prefix, tenant), name)))


# KEYS[1] the lists registry, KEYS[2] the sources registry, KEYS[3] created;
# ARGV[1] the tenant's prefix, ARGV[2..] the fixed sets (marketing, trash,
# status:…, tier:…). Returns the fixed sizes, list names and sizes, source
# names and sizes, the number of live contacts.
_SEGMENTS = """
local prefix = ARGV[1]
local function sizes(names, set_prefix)
  local out = {}
  for _, name in ipairs(names) do
    out[#out + 1] = name
    out[#out + 1] = redis.call('SCARD', prefix .. ':' .. set_prefix .. name)
  end
  return out
end
local fixed = {}
for i = 2, #ARGV do fixed[#fixed + 1] = redis.call('SCARD', prefix .. ':' .. ARGV[i]) end
return {
  fixed,
  sizes(redis.call('SMEMBERS', KEYS[1]), 'list:'),
  sizes(redis.call('SMEMBERS', KEYS[2]), 'source:'),
  redis.call('ZCARD', KEYS[3]),
}
"""


async def segment_counts(client: Redis, prefix: str, tenant: str) -> dict[str, Any]:
    """The size of every marketing, status, tier, list, source and trash set, in one round trip.

    `contacts` is the number of live contacts (the size of `created`).
    """
    tp = tenant_prefix(prefix, tenant)
    fixed = ["marketing", "trash", *(f"status:{s}" for s in STATUSES)]
    fixed += [f"tier:{t}" for t in TIERS]
    sizes, lists, sources, live = await client.register_script(_SEGMENTS)(
        keys=[f"{tp}:lists", f"{tp}:sources", f"{tp}:created"], args=[tp, *fixed]
    )
    by_name = dict(zip(fixed, sizes, strict=True))

    def pairs(flat: list[Any]) -> dict[str, int]:
        return dict(
            sorted((bytes(flat[i]).decode(), int(flat[i + 1])) for i in range(0, len(flat), 2))
        )

    return {
        "tenant_id": tenant,
        "contacts": int(live),
        "marketing": by_name["marketing"],
        "trash": by_name["trash"],
        "status": {s: by_name[f"status:{s}"] for s in STATUSES},
        "tier": {t: by_name[f"tier:{t}"] for t in TIERS},
        "lists": pairs(lists),
        "sources": pairs(sources),
    }

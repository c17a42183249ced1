"""Finding contacts (SPEC §4, §5) on real workers, Kafka and Redis.

The big test makes 2,000 contacts with random sources, tags, owners and
fields, edits them at random (tags, owners, fields, engagement, lists,
marketing, suspension, trash, restore, purge, merge), then checks the read
model against brute force over the contact snapshots Redis holds: every
filter index and the `created` sorted set hold exactly what the snapshots
say, and 50 random searches, walked page by page on two workers, answer
exactly the brute-force filter in (created_at, contact_id) order. Replaying
the snapshots and changes topics twice (`rebuild-projection`) changes no
key, and each history holds each of its contact's change events once.

Times: every input's `occurred_at` is a whole number of days plus 12 hours
(and some minutes) before the test starts, so no timer of the product (all
whole days after an input) falls due while the test looks.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import aiohttp
import orjson
import pytest

from stream.domain.timefmt import MS_PER_DAY, format_ms
from stream.projection import search
from stream.projection.read_model import ReadModel
from stream.tools import FIND_COLUMNS
from tests.integration.conftest import (
    ROOT,
    Env,
    Servers,
    Worker,
    send_json,
    wait_for,
    wait_quiet,
)
from tests.integration.test_commands import command
from tests.integration.test_engagement import engagement
from tests.integration.test_identity_races import HOPS
from tests.integration.test_intake_path import intake, of_type
from tests.integration.test_tenant_config import configure

pytestmark = pytest.mark.integration

TENANT = "acme"
TOKEN = "search-token-1"  # noqa: S105 (a test value)
INPUTS = ("contacts.intake.v1", "contacts.commands.v1", "contacts.engagement.v1")
SOURCES = ["form", "landing_page", "import", "api", "inbox", "ecommerce", "manual"]
TAGS = ["webinar", "vip", "Promo", "trial", "b2b"]
OWNERS = ["olga", "pablo", "Eva"]
CITIES = ["Madrid", "MADRID", "madrid", "Sevilla", "Bilbao", 28001, None]
COMPANIES = ["ACME", "Initech", "x" * 300, None]
LISTS = ["l1", "l2", "l3"]
HALF_DAY = MS_PER_DAY // 2


def ago(now: int, days: int, minutes: int = 0) -> str:
    """`days` days, 12 hours and `minutes` minutes before `now`: far from any due time."""
    return format_ms(now - days * MS_PER_DAY - HALF_DAY - minutes * 60_000)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def fold(value: Any) -> str | None:
    """The SPEC's field index value, written out independently of the product's."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text.casefold() if len(text) <= 256 else None


# ----------------------------------------------------------------- brute force


def expected_indexes(snaps: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, Any]:
    """Every index key's members as the snapshots say (SPEC §4), `created` with scores."""
    out: dict[str, Any] = defaultdict(set)
    created: dict[str, float] = {}
    for s in snaps:
        cid = s["contact_id"]
        if s["state"] == "trashed":
            out["trash"].add(cid)
            continue
        if s["state"] != "live":
            continue
        created[cid] = float(ms(s["created_at"]))
        out[f"source:{s['source']}"].add(cid)
        out["sources"].add(s["source"])
        if s["owner"] is not None:
            out[f"owner:{s['owner']}"].add(cid)
        for tag in s["tags"]:
            out[f"tag:{tag}"].add(cid)
        for name in fields:
            value = fold(s["fields"].get(name))
            if value is not None:
                out[f"field:{name}:{value}"].add(cid)
        if s["marketing"]["active"]:
            out["marketing"].add(cid)
        if s["engagement"]["campaign_status"]:
            out[f"status:{s['engagement']['campaign_status']}"].add(cid)
        out[f"tier:{s['engagement']['tier']}"].add(cid)
        for list_id in s["lists"]:
            out[f"list:{list_id}"].add(cid)
            out["lists"].add(list_id)
    result: dict[str, Any] = {k: sorted(v) for k, v in out.items()}
    if created:
        result["created"] = sorted(created.items(), key=lambda kv: (kv[1], kv[0]))
    return result


INDEX_PREFIXES = ("source:", "owner:", "tag:", "field:", "status:", "tier:", "list:")
INDEX_NAMES = ("marketing", "trash", "created", "lists", "sources")


async def dump(client: Any, tp: str, only_indexes: bool = False) -> dict[str, Any]:
    """Every key of the tenant (or only its indexes) with its value, whatever its type."""
    out: dict[str, Any] = {}
    async for raw in client.scan_iter(f"{tp}:*", count=2000):
        key = raw.decode()
        name = key[len(tp) + 1 :]
        if only_indexes and not (name.startswith(INDEX_PREFIXES) or name in INDEX_NAMES):
            continue
        kind = (await client.type(key)).decode()
        if kind == "set":
            out[name] = sorted(m.decode() for m in await client.smembers(key))
        elif kind == "zset":
            out[name] = [
                (m.decode(), s) for m, s in await client.zrange(key, 0, -1, withscores=True)
            ]
        elif kind == "list":
            out[name] = [v.decode() for v in await client.lrange(key, 0, -1)]
        elif kind == "hash":
            out[name] = {k.decode(): v.decode() for k, v in (await client.hgetall(key)).items()}
        else:
            out[name] = (await client.get(key)).decode()
    return out


async def snapshots(client: Any, tp: str) -> list[dict[str, Any]]:
    keys = [k async for k in client.scan_iter(f"{tp}:c:*", count=2000)]
    found = []
    for start in range(0, len(keys), 500):
        found += [orjson.loads(v) for v in await client.mget(keys[start : start + 500])]
    return found


def matches(s: dict[str, Any], criteria: list[tuple[str, str]]) -> bool:
    """One contact against a search's criteria, every one of them (SPEC §5)."""
    if s["state"] != "live":
        return False
    created = ms(s["created_at"])
    for name, value in criteria:
        ok = {
            "tag": lambda v: v in s["tags"],
            "owner": lambda v: s["owner"] == v,
            "source": lambda v: s["source"] == v,
            "status": lambda v: s["engagement"]["campaign_status"] == v,
            "tier": lambda v: s["engagement"]["tier"] == v,
            "list": lambda v: v in s["lists"],
            "marketing": lambda v: s["marketing"]["active"] == (v == "true"),
            "created_from": lambda v: created >= bound(v),
            "created_to": lambda v: created < bound(v),
        }.get(name)
        if ok is None:
            field = name.removeprefix("field.")
            indexed = fold(s["fields"].get(field))
            if indexed is None or indexed != fold(value):
                return False
        elif not ok(value):
            return False
    return True


def bound(text: str) -> int:
    return ms(text if "T" in text else f"{text}T00:00:00+00:00")


def random_query(rng: random.Random, live: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """1 to 3 criteria, values mostly taken from the contacts (so that answers are not empty)."""
    pick = rng.choice(live)
    makers = {
        "tag": lambda: rng.choice(TAGS),
        "owner": lambda: rng.choice(OWNERS),
        "source": lambda: pick["source"],
        "status": lambda: rng.choice(["active", "inactive", "engaged"]),
        "tier": lambda: rng.choice(["inactive", "new", "discarded"]),
        "list": lambda: rng.choice(LISTS),
        "marketing": lambda: rng.choice(["true", "false"]),
        "field.city": lambda: rng.choice(["madrid", "MADRID", "Sevilla", "bilbao", "28001"]),
        "field.company": lambda: rng.choice(["acme", "INITECH"]),
        "created_from": lambda: rng.choice([pick["created_at"], pick["created_at"][:10]]),
        "created_to": lambda: rng.choice([rng.choice(live)["created_at"], "2026-11-01"]),
    }
    names = rng.sample(sorted(makers), rng.randint(1, 3))
    if rng.random() < 0.2:
        names.append("tag")  # a repeated criterion: each value must hold
    return [(name, makers[name]()) for name in names]


# ----------------------------------------------------------------- HTTP


async def get(
    session: aiohttp.ClientSession,
    worker: Worker,
    path: str,
    params: list[tuple[str, str]] | None = None,
    token: str | None = TOKEN,
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}{path}"
    async with session.get(url, params=params or [], headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def walk(
    session: aiohttp.ClientSession,
    workers: list[Worker],
    path: str,
    criteria: list[tuple[str, str]],
    limit: int | None,
) -> tuple[list[str], set[int]]:
    """Every page of a search, each asked of the next worker: the ids, and the counts seen."""
    ids: list[str] = []
    counts: set[int] = set()
    cursor = None
    for n in range(10_000):
        params = list(criteria)
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor is not None:
            params.append(("cursor", cursor))
        status, body = await get(session, workers[n % len(workers)], path, params)
        assert status == 200, (criteria, body)
        assert len(body["contacts"]) <= (limit or 50)
        ids += [c["contact_id"] for c in body["contacts"]]
        counts.add(body["count"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, counts
    raise AssertionError("the walk did not end")


# ----------------------------------------------------------------- waiting


async def caught_up(
    env: Env, servers: Servers, reader: Any, redis_client: Any, tp: str
) -> list[dict[str, Any]]:
    """Wait until every input is processed and Redis shows every contact's last version.

    Returns the change events.
    """
    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(t) for t in (*INPUTS, *HOPS[1:])])
    changes = await reader(env.topic("contacts.changes.v1"))
    values = await changes.read_to_end()
    latest: dict[str, int] = {}
    purged = set()
    for c in values:
        if c["version"]:
            latest[c["contact_id"]] = max(latest.get(c["contact_id"], 0), c["version"])
        if c["type"] == "contact.purged":
            purged.add(c["contact_id"])
    ids = sorted(latest)

    async def in_redis() -> bool:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with redis_client.pipeline(transaction=False) as pipe:
                for cid in chunk:
                    pipe.get(f"{tp}:c:{cid}")
                    pipe.lindex(f"{tp}:h:{cid}", 0)
                found = await pipe.execute()
            for i, cid in enumerate(chunk):
                raw, head = found[2 * i], found[2 * i + 1]
                if raw is None or orjson.loads(raw)["version"] != latest[cid]:
                    return False
                if cid not in purged and (
                    head is None or orjson.loads(head)["version"] != latest[cid]
                ):
                    return False
        return True

    await wait_for(
        in_redis, 90, interval=0.5, what="the projection of every contact's last version"
    )
    return values


def history_by_contact(values: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each contact's change ids, newest first, each version once."""
    by_version: dict[str, dict[int, str]] = defaultdict(dict)
    for c in values:
        if c["version"]:
            by_version[c["contact_id"]][c["version"]] = c["change_id"]
    return {cid: [v[k] for k in sorted(v, reverse=True)] for cid, v in by_version.items()}


# ----------------------------------------------------------------- the tests


async def test_searches_equal_brute_force_and_replays_change_no_index_or_history(
    env: Env, servers: Servers, producer, reader, redis_client
) -> None:
    started = time.monotonic()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    workers = await env.started_workers("a", "b", CS_PARTITIONS="4", CS_HTTP_TOKEN=TOKEN)
    tp = f"{env.redis_prefix}:{{{TENANT}}}"
    changes_reader = await reader(env.topic("contacts.changes.v1"))

    # 1. 2,000 contacts; creation times from 400 distinct instants (ties in created_at).
    instants = [ago(now, rng.randint(16, 60), rng.randint(0, 59)) for _ in range(400)]
    intakes = []
    for n in range(2000):
        source = rng.choice(SOURCES)
        extra: dict[str, Any] = {
            "source": source,
            "occurred_at": rng.choice(instants),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "fields": {
                k: v
                for k, v in {
                    "first_name": f"N{n}",
                    "city": rng.choice(CITIES),
                    "company": rng.choice(COMPANIES),
                }.items()
                if v is not None
            },
        }
        if rng.random() < 0.7:
            extra["owner"] = rng.choice(OWNERS)
        if source in ("inbox", "ecommerce", "import") and rng.random() < 0.5:
            extra["marketing"] = True
        intakes.append(intake(TENANT, [f"s{n}@example.com"], **extra))
    by_event = {i["event_id"]: i for i in intakes}
    await send_inputs(producer, env.topic("contacts.intake.v1"), intakes)
    created = await changes_reader.wait_until(
        lambda v: len(of_type(v, "contact.created")) >= 2000, timeout=180
    )
    ids = [c["contact_id"] for c in of_type(created, "contact.created")]
    source_of = {
        c["contact_id"]: by_event[c["cause"]["event_id"]]["source"]
        for c in of_type(created, "contact.created")
    }
    creating = time.monotonic() - started

    # 2. Edits, engagement, lists, marketing off, suspension and trash, per contact in order.
    rng.shuffle(ids)
    merging, trashing, rest = ids[:60], ids[60:210], ids[210:]
    commands: list[dict[str, Any]] = []
    for cid in rng.sample(rest, 700):
        edit = rng.choice(["tag+", "tag-", "owner", "city", "company"])
        at = ago(now, 0, rng.randint(0, 59))
        if edit == "tag+":
            commands.append(
                command(TENANT, "update_contact", contact_id=cid, tags_add=[rng.choice(TAGS)])
            )
        elif edit == "tag-":
            commands.append(
                command(TENANT, "update_contact", contact_id=cid, tags_remove=rng.sample(TAGS, 2))
            )
        elif edit == "owner":
            owner = rng.choice([*OWNERS, None])
            commands.append(
                command(TENANT, "update_contact", contact_id=cid, owner=owner, occurred_at=at)
            )
        else:
            value = rng.choice(CITIES if edit == "city" else COMPANIES)
            commands.append(
                command(
                    TENANT, "update_contact", contact_id=cid, fields={edit: value}, occurred_at=at
                )
            )
    for cid in rng.sample(rest, 150):
        commands.append(
            command(TENANT, "add_to_list", list_id=rng.choice(LISTS), contact_ids=[cid])
        )
    for cid in rng.sample(rest, 60):
        commands.append(
            command(TENANT, "set_marketing", contact_ids=[cid], marketing=False, via="profile")
        )
    for cid in rng.sample(rest, 40):
        commands.append(command(TENANT, "suspend_contact", contact_ids=[cid]))
    for cid in trashing:
        commands.append(command(TENANT, "delete_contact", contact_ids=[cid]))
    engaged = rng.sample(rest, 300)
    events = [
        engagement(
            TENANT,
            rng.choice(["sent", "open", "page_visit"]),
            contact_id=cid,
            occurred_at=ago(now, rng.randint(0, 15), rng.randint(0, 59)),
        )
        for cid in engaged
        for _ in range(rng.randint(1, 2))
    ]
    await send_inputs(producer, env.topic("contacts.commands.v1"), commands)
    await send_inputs(producer, env.topic("contacts.engagement.v1"), events)
    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(t) for t in (*INPUTS, *HOPS[1:])])

    # 3. Restore and purge some of the trashed; merge pairs of live contacts.
    later = [command(TENANT, "restore_contact", contact_ids=[cid]) for cid in trashing[:50]]
    later += [command(TENANT, "purge_contact", contact_ids=[cid]) for cid in trashing[50:90]]
    later += [
        command(TENANT, "merge_contacts", survivor_id=merging[i], merged_ids=[merging[i + 1]])
        for i in range(0, len(merging), 2)
    ]
    await send_inputs(producer, env.topic("contacts.commands.v1"), later)
    values = await caught_up(env, servers, reader, redis_client, tp)
    processing = time.monotonic() - started

    snaps = await snapshots(redis_client, tp)
    by_id = {s["contact_id"]: s for s in snaps}
    states = defaultdict(int)
    for s in snaps:
        states[s["state"]] += 1
    # The edits reached every kind of state the indexes care about.
    assert states["live"] > 1500 and states["trashed"] > 50, states
    assert states["merged"] == 30 and 0 < states["purged"] <= 40, states

    # Snapshot: `source` of the creating intake, never rewritten; `activity` the latest
    # occurred_at per engagement type (contacts that took part in no merge).
    for s in snaps:
        if s["state"] in ("live", "trashed"):
            assert s["source"] == source_of[s["contact_id"]], s["contact_id"]
    latest_activity: dict[str, dict[str, str]] = defaultdict(dict)
    for e in events:
        seen = latest_activity[e["contact_id"]]
        seen[e["type"]] = max(seen.get(e["type"], ""), e["occurred_at"])
    checked = 0
    for cid in set(engaged) - set(merging):
        assert by_id[cid]["activity"] == latest_activity[cid], cid
        checked += 1
    assert checked >= 250

    # Every filter index and `created` hold exactly the live contacts the snapshots say.
    assert await dump(redis_client, tp, only_indexes=True) == expected_indexes(
        snaps, ("city", "company")
    )

    # 50 random searches, each walked to its end on both workers, equal brute force.
    live = [s for s in snaps if s["state"] == "live"]
    path = f"/v1/tenants/{TENANT}/contacts"
    non_empty = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            criteria = random_query(rng, live)
            expected = [
                s["contact_id"]
                for s in sorted(snaps, key=lambda s: (ms(s["created_at"]), s["contact_id"]))
                if matches(s, criteria)
            ]
            limit = rng.choice([None, 50, 200, 500] + ([7] if len(expected) < 150 else []))
            got, counts = await walk(session, workers, path, criteria, limit)
            assert got == expected, (seed, criteria, limit)
            assert counts == {len(expected)}, (seed, criteria)
            non_empty += bool(expected)
        assert non_empty >= 20, seed  # the queries were not vacuous

        # No criteria: every live contact, in (created_at, contact_id) order.
        got, counts = await walk(session, workers, path, [], 500)
        assert got == [cid for cid, _ in expected_indexes(snaps, ())["created"]]
        assert counts == {states["live"]}

        # The HTTP view shows the same source and activity as Redis.
        for cid in rng.sample(sorted(set(engaged) - set(merging)), 5):
            status, body = await get(session, workers[0], f"{path}/{cid}")
            assert status == 200
            assert (body["source"], body["activity"]) == (
                by_id[cid]["source"],
                by_id[cid]["activity"],
            )

        # A merged contact's history stays readable; a purged one's is gone.
        merged_id = merging[1]
        status, body = await get(session, workers[1], f"{path}/{merged_id}/history")
        assert status == 200 and body["changes"][0]["type"] == "contact.merged"
        purged_id = next(s["contact_id"] for s in snaps if s["state"] == "purged")
        status, body = await get(session, workers[1], f"{path}/{purged_id}/history")
        assert status == 404, body
    searching = time.monotonic() - started

    # History: each change event of a contact once, newest first; none for a purged one.
    expected_history = history_by_contact(values)
    before = await dump(redis_client, tp)
    for cid, change_ids in expected_history.items():
        if by_id[cid]["state"] == "purged":
            assert f"h:{cid}" not in before
        else:
            assert [orjson.loads(e)["change_id"] for e in before[f"h:{cid}"]] == change_ids

    # Replaying both topics twice into the read model changes no key.
    for _ in range(2):
        done = await asyncio.to_thread(run_cli, env, "rebuild-projection", "--tenant", TENANT)
        assert done.returncode == 0, done.stderr
        assert "0 keys' records written" in done.stdout, done.stdout
        assert "0 history entries added" in done.stdout, done.stdout
    assert await dump(redis_client, tp) == before
    print(
        f"seed {seed}: created in {creating:.0f}s, all processed at {processing:.0f}s,"
        f" searched by {searching:.0f}s, done at {time.monotonic() - started:.0f}s"
    )


def random_snapshot(rng: random.Random, cid: str, instants: list[str]) -> dict[str, Any]:
    """A contact snapshot as the projection receives it, with random index-relevant parts."""
    marketing = rng.random() < 0.5
    city, company = rng.choice(CITIES), rng.choice(COMPANIES)
    return {
        "contact_id": cid,
        "tenant_id": TENANT,
        "version": 1,
        "created_at": rng.choice(instants),
        "state": "live",
        "source": rng.choice(SOURCES),
        "emails": [f"{cid}@example.com"],
        "phones": [],
        "fields": {k: v for k, v in {"city": city, "company": company}.items() if v is not None},
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "owner": rng.choice([*OWNERS, None]),
        "lists": rng.sample(LISTS, rng.randint(0, 2)) if marketing else [],
        "marketing": {"active": marketing},
        "engagement": {
            "campaign_status": rng.choice(["active", "inactive", "engaged"]) if marketing else None,
            "tier": rng.choice(["inactive", "new", "discarded"]),
        },
    }


def random_edit(rng: random.Random, snap: dict[str, Any]) -> dict[str, Any]:
    """The next version: tags, owner, city, lists, marketing, or the state changed."""
    edit = rng.choice(["tags", "owner", "city", "marketing", "trash", "restore", "purge", "merge"])
    new = {**snap, "version": snap["version"] + 1}
    if edit == "tags":
        new["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    elif edit == "owner":
        new["owner"] = rng.choice([*OWNERS, None])
    elif edit == "city":
        new["fields"] = {**snap["fields"], "city": rng.choice(["Madrid", "Sevilla", "León"])}
    elif edit == "marketing":
        active = not snap["marketing"]["active"]
        new["marketing"] = {"active": active}
        new["lists"] = rng.sample(LISTS, rng.randint(0, 2)) if active else []
        status = rng.choice(["active", "engaged"]) if active else None
        new["engagement"] = {**snap["engagement"], "campaign_status": status}
    elif edit == "trash":
        new["state"] = "trashed"
    elif edit == "restore":
        new["state"] = "live" if snap["state"] == "trashed" else snap["state"]
    else:  # purged and merged contacts are tombstones: no data left
        new.update(
            state="purged" if edit == "purge" else "merged",
            source=None,
            emails=[],
            fields={},
            tags=[],
            owner=None,
            lists=[],
            marketing={"active": False},
        )
    return new


async def test_both_search_ways_equal_brute_force_over_random_edits(redis_client) -> None:
    """Redis only (snapshots written through the read model): many queries, both ways."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    prefix = f"cs-srch{uuid.uuid4().hex[:8]}"
    tp = f"{prefix}:{{{TENANT}}}"
    model = ReadModel(redis_client, prefix)
    instants = [format_ms(1_790_000_000_000 + rng.randrange(10**9)) for _ in range(300)]
    latest = {f"c{n:04d}": random_snapshot(rng, f"c{n:04d}", instants) for n in range(1500)}
    try:
        await model.apply_snapshots(list(latest.values()))
        for _ in range(3):  # edits in batches, some contacts edited many times
            edits = []
            for cid in rng.sample(sorted(latest), 400):
                if latest[cid]["state"] in ("live", "trashed"):
                    latest[cid] = random_edit(rng, latest[cid])
                    edits.append(latest[cid])
            await model.apply_snapshots(edits)
        snaps = list(latest.values())
        assert await dump(redis_client, tp, only_indexes=True) == expected_indexes(
            snaps, ("city", "company")
        ), seed
        live = [s for s in snaps if s["state"] == "live"]
        ordered = sorted(snaps, key=lambda s: (ms(s["created_at"]), s["contact_id"]))
        for _ in range(60):
            criteria = random_query(rng, live)
            expected = [s["contact_id"] for s in ordered if matches(s, criteria)]
            query, _ = search.parse_query(criteria, ("city", "company"))
            limit = rng.choice([1, 7, 50, 500]) if len(expected) < 100 else rng.choice([50, 500])
            for factor in (0, search.SCAN_FACTOR, 1e9):  # materialize, either, scan
                got: list[str] = []
                page = search.Page(limit=limit)
                for _ in range(len(expected) + 2):  # a page that does not move on fails below
                    found = await search.search(redis_client, prefix, TENANT, query, page, factor)
                    assert found["count"] == len(expected), (seed, criteria, factor)
                    got += [c["contact_id"] for c in found["contacts"]]
                    if found["next_cursor"] is None:
                        break
                    page = search.Page(limit, search.decode_cursor(found["next_cursor"]))
                assert got == expected, (seed, criteria, factor, limit)

        # A contact leaving the result between pages: the walk goes on after it.
        query, _ = search.parse_query([("marketing", "true")], ())
        for factor in (0, 1e9):
            seen: list[str] = []
            page = search.Page(limit=25)
            for _ in range(len(latest)):
                found = await search.search(redis_client, prefix, TENANT, query, page, factor)
                seen += [c["contact_id"] for c in found["contacts"]]
                if found["next_cursor"] is None:
                    break
                last = latest[seen[-1]]
                latest[last["contact_id"]] = random_edit(rng, last) | {
                    "marketing": {"active": not last["marketing"]["active"]},
                    "lists": [],
                    "version": last["version"] + 1,
                }
                await model.apply_snapshots([latest[last["contact_id"]]])
                page = search.Page(25, search.decode_cursor(found["next_cursor"]))
            assert len(seen) == len(set(seen)), seed
            created = {cid: (ms(latest[cid]["created_at"]), cid) for cid in seen}
            assert [created[cid] for cid in seen] == sorted(created.values()), seed
            # Unseen contacts were not edited: every live marketing one was seen.
            still = {
                c for c, s in latest.items() if s["state"] == "live" and s["marketing"]["active"]
            }
            assert still <= set(seen), seed
    finally:
        keys = [k async for k in redis_client.scan_iter(f"{prefix}*", count=2000)]
        if keys:
            await redis_client.delete(*keys)


async def send_inputs(producer: Any, topic: str, values: list[dict[str, Any]]) -> None:
    """Keyed by the contact a command or event names, so that one contact's inputs keep order."""
    futures = [
        await producer.send(
            topic,
            orjson.dumps(v),
            key=str(v.get("contact_id") or v.get("contact_ids") or v["event_id"]).encode(),
        )
        for v in values
    ]
    await asyncio.gather(*futures)


async def test_saved_filters_segments_history_find_and_bad_parameters(
    env: Env, servers: Servers, producer, reader, redis_client
) -> None:
    # A tenant whose filterable fields are city and plan (not company).
    await configure(env, servers, producer, {"filterable_fields": ["city", "plan"]})
    worker = await env.started_worker(CS_HTTP_TOKEN=TOKEN)
    tp = f"{env.redis_prefix}:{{{TENANT}}}"
    changes = await reader(env.topic("contacts.changes.v1"))
    people = [
        ("ana", "form", ["webinar"], {"city": "Madrid", "plan": "Pro", "company": "ACME"}),
        ("bea", "form", ["webinar", "vip"], {"city": "madrid", "plan": "free"}),
        ("cai", "import", ["webinar"], {"city": "Sevilla", "plan": "PRO"}),
        ("dan", "import", [], {"plan": "pro"}),
        ("eva", "api", ["vip", "a&b c+d%=é"], {"city": "Bilbao"}),
        ("fer", "landing_page", ["webinar"], {"city": "Madrid"}),
    ]
    for name, source, tags, fields in people:
        await send_json(
            producer,
            env.topic("contacts.intake.v1"),
            intake(TENANT, [f"{name}@example.com"], source=source, tags=tags, fields=fields),
        )
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 6)
    ids = {
        c["data"]["contact"]["emails"][0].split("@")[0]: c["contact_id"]
        for c in of_type(created, "contact.created")
    }
    for cmd in [
        command(TENANT, "update_contact", contact_id=ids["ana"], tags_add=["vip"]),
        command(TENANT, "merge_contacts", survivor_id=ids["bea"], merged_ids=[ids["fer"]]),
        command(TENANT, "delete_contact", contact_ids=[ids["dan"]]),
        command(TENANT, "delete_contact", contact_ids=[ids["cai"]]),
        command(TENANT, "purge_contact", contact_ids=[ids["cai"]]),
        command(TENANT, "restore_contact", contact_ids=["no-such-contact"]),  # version 0
    ]:
        await send_json(producer, env.topic("contacts.commands.v1"), cmd, key=b"one-partition")
    values = await caught_up(env, servers, reader, redis_client, tp)
    assert of_type(values, "command.rejected")[0]["version"] == 0

    base = f"/v1/tenants/{TENANT}"
    async with aiohttp.ClientSession() as session:

        async def ids_of(path: str, params: list[tuple[str, str]]) -> list[str]:
            status, body = await get(session, worker, path, params)
            assert status == 200, body
            return [c["contact_id"] for c in body["contacts"]]

        # The tenant's own filterable field, folded; merged and purged contacts are gone.
        pro = await ids_of(f"{base}/contacts", [("field.plan", "pRo")])
        assert sorted(pro) == sorted([ids["ana"]])
        # Equal created_at (one occurred_at for all): in contact_id order.
        both = sorted([ids["ana"], ids["bea"]])
        assert await ids_of(f"{base}/contacts", [("tag", "webinar"), ("tag", "vip")]) == both

        # Any character in a value, percent-encoded in the query string.
        assert await ids_of(f"{base}/contacts", [("tag", "a&b c+d%=é")]) == [ids["eva"]]

        # Saved filters: validated at PUT, run with paging, listed, deleted.
        url = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}{base}/filters"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.put(f"{url}/madrid", data="tag=webinar&field.city=MADRID") as r:
            assert r.status == 401  # no token
        async with session.put(
            f"{url}/madrid", data="tag=webinar&field.city=MADRID", headers=headers
        ) as r:
            assert r.status == 200, await r.text()
        for bad, parameter in [
            ("tag=webinar&limit=5", "limit"),
            ("cursor=abc", "cursor"),
            ("color=red", "color"),
            ("field.company=ACME", "field.company"),
            ("created_from=2026-02-30", "created_from"),
        ]:
            async with session.put(f"{url}/bad", data=bad, headers=headers) as r:
                body = await r.json(content_type=None)
                assert (r.status, body.get("parameter")) == (400, parameter), (bad, body)
        assert (await get(session, worker, f"{base}/filters/bad"))[0] == 404
        status, body = await get(session, worker, f"{base}/filters/madrid")
        assert (status, body) == (200, {"name": "madrid", "query": "tag=webinar&field.city=MADRID"})
        assert await ids_of(f"{base}/filters/madrid/contacts", []) == both
        first = await get(session, worker, f"{base}/filters/madrid/contacts", [("limit", "1")])
        assert [c["contact_id"] for c in first[1]["contacts"]] == both[:1]
        second = await ids_of(
            f"{base}/filters/madrid/contacts", [("limit", "1"), ("cursor", first[1]["next_cursor"])]
        )
        assert second == both[1:]
        status, body = await get(session, worker, f"{base}/filters")
        assert body == {"filters": {"madrid": "tag=webinar&field.city=MADRID"}}
        async with session.delete(f"{url}/madrid", headers=headers) as r:
            assert r.status == 200
        assert (await get(session, worker, f"{base}/filters/madrid"))[0] == 404

        # Segment sizes equal the sets' sizes the snapshots imply.
        snaps = await snapshots(redis_client, tp)
        expected = expected_indexes(snaps, ("city", "plan"))
        status, segments = await get(session, worker, f"{base}/segments")
        assert status == 200
        assert segments["contacts"] == len(expected["created"]) == 3
        assert segments["trash"] == len(expected["trash"]) == 1
        assert segments["marketing"] == len(expected.get("marketing", []))
        assert segments["sources"] == {
            k.split(":", 1)[1]: len(v) for k, v in expected.items() if k.startswith("source:")
        }
        assert segments["tier"]["inactive"] == 3
        assert sum(segments["status"].values()) == len(expected.get("marketing", []))

        # History: newest first, `limit`; merged stays, purged and unknown ids are 404.
        status, body = await get(session, worker, f"{base}/contacts/{ids['ana']}/history")
        versions = [c["version"] for c in body["changes"]]
        assert status == 200 and versions == sorted(versions, reverse=True) and versions[-1] == 1
        status, body = await get(
            session, worker, f"{base}/contacts/{ids['ana']}/history", [("limit", "1")]
        )
        assert [c["version"] for c in body["changes"]] == versions[:1]
        status, body = await get(session, worker, f"{base}/contacts/{ids['fer']}/history")
        assert status == 200 and body["changes"][0]["type"] == "contact.merged"
        for gone in (ids["cai"], "no-such-contact"):
            status, body = await get(session, worker, f"{base}/contacts/{gone}/history")
            assert (status, body["error"]) == (404, "unknown_contact")
        assert not await redis_client.exists(f"{tp}:h:no-such-contact", f"{tp}:h:{ids['cai']}")

        # Bad parameters: a 400 naming the parameter.
        for params, parameter in [
            ([("color", "red")], "color"),
            ([("created_from", "2026-13-01")], "created_from"),
            ([("created_to", "yesterday")], "created_to"),
            ([("created_to", "2026-11-22T10:00:00")], "created_to"),  # no offset
            ([("limit", "0")], "limit"),
            ([("limit", "501")], "limit"),
            ([("limit", "ten")], "limit"),
            ([("cursor", "%%%")], "cursor"),
            ([("marketing", "yes")], "marketing"),
            ([("tier", "gold")], "tier"),
            ([("status", "")], "status"),
            ([("field.company", "ACME")], "field.company"),
            ([("field.first_name", "Ana")], "field.first_name"),
        ]:
            status, body = await get(session, worker, f"{base}/contacts", params)
            assert (status, body.get("parameter")) == (400, parameter), (params, body)
            assert parameter in body["detail"]
        status, body = await get(
            session, worker, f"{base}/contacts/{ids['ana']}/history", [("limit", "0")]
        )
        assert (status, body["parameter"]) == (400, "limit")
        assert (await get(session, worker, f"{base}/segments", token=None))[0] == 401
        assert (await get(session, worker, f"{base}/contacts", token=None))[0] == 401

    # The CLI's `find` prints the matches as a table.
    found = await asyncio.to_thread(
        run_cli,
        env,
        "find",
        "--tenant",
        TENANT,
        "--tag",
        "vip",
        "--field",
        "city=MADRID",
        "--url",
        f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}",
        token=TOKEN,
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0].split() == list(FIND_COLUMNS)
    assert [line.split()[0] for line in lines[1:-1]] == sorted([ids["ana"], ids["bea"]])
    assert lines[-1] == "2 of 2 contacts"
    assert any("ana@example.com" in line for line in lines[1:-1])


def run_cli(env: Env, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m stream.cli ARGS` with the test's settings (and the HTTP token, if given)."""
    extra = {} if token is None else {"CS_HTTP_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=ROOT,
        env={**env.worker_env(), **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

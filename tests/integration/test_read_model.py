"""SPEC §4 against a real Redis: the projection is idempotent and never goes back.

Snapshots of contacts moving through segments (marketing, status, tier,
lists, trash, purge, an identifier handed to another contact) and quota
records are written in order once, then replayed twice in a shuffled order,
and delivered from an empty Redis with the contacts' streams interleaved at
random (an identifier handed from a purged contact to a new one included):
the keys Redis holds must be identical.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from redis.exceptions import ResponseError

from stream.projection import scripts
from stream.projection.read_model import ReadModel, latest_per_contact, segment_names

pytestmark = pytest.mark.integration


def snap(contact_id: str, version: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "contact_id": contact_id,
        "tenant_id": "acme",
        "version": version,
        "state": "live",
        "emails": [f"{contact_id}@example.com"],
        "phones": [],
        "lists": [],
        "marketing": {"active": False, "activated_at": None, "slot_held_until": None},
        "engagement": {"campaign_status": None, "tier": "inactive"},
    }
    return {**base, **over}


def history() -> list[dict[str, Any]]:
    active = {"active": True, "activated_at": "x", "slot_held_until": None}
    return [
        snap("ana", 1),
        snap("ana", 2, marketing=active, engagement={"campaign_status": "active", "tier": "new"}),
        snap(
            "ana",
            3,
            marketing=active,
            lists=["vip", "news"],
            engagement={"campaign_status": "engaged", "tier": "new"},
        ),
        snap("ana", 4, lists=["news"], engagement={"campaign_status": None, "tier": "frequent"}),
        snap("bob", 1, emails=["shared@example.com"]),
        snap("bob", 2, state="trashed", emails=["shared@example.com"]),
        snap("bob", 3, state="purged", emails=[]),
        snap("cid", 1, emails=["shared@example.com"]),  # the freed email, owned anew
        {"tenant_id": "acme", "seq": 5, "quota": {"used": 1, "limit": 10}},
        {"tenant_id": "acme", "seq": 9, "quota": {"used": 2, "limit": 10}},
    ]


async def dump(client: Any, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async for raw in client.scan_iter(f"{prefix}*", count=1000):
        key = raw.decode()
        kind = (await client.type(key)).decode()
        if kind == "set":
            out[key] = sorted(m.decode() for m in await client.smembers(key))
        elif kind == "hash":
            out[key] = {k.decode(): v.decode() for k, v in (await client.hgetall(key)).items()}
        elif kind == "zset":
            pairs = await client.zrange(key, 0, -1, withscores=True)
            out[key] = [(m.decode(), s) for m, s in pairs]
        elif kind == "list":
            out[key] = [v.decode() for v in await client.lrange(key, 0, -1)]
        else:
            out[key] = (await client.get(key)).decode()
    return out


async def test_replaying_snapshots_twice_and_shuffled_leaves_redis_identical(
    redis_client: Any,
) -> None:
    model = ReadModel(redis_client, prefix=f"cs-rm{random.getrandbits(32):x}")
    prefix = model.prefix
    try:
        for item in history():  # in order, one at a time
            await model.apply_snapshots([item])
        ordered = await dump(redis_client, prefix)
        t = f"{prefix}:{{acme}}"
        assert ordered[f"{t}:email:shared@example.com"] == "cid"
        assert ordered[f"{t}:list:news"] == ["ana"] and f"{t}:list:vip" not in ordered
        assert ordered[f"{t}:tier:frequent"] == ["ana"]
        assert f"{t}:trash" not in ordered and f"{t}:marketing" not in ordered
        assert ordered[f"{t}:tier:inactive"] == ["cid"]
        assert ordered[f"{t}:quota"] == {"seq": "9", "used": "2", "limit": "10"}

        for seed in (1, 2):  # everything again, shuffled: nothing changes
            shuffled = history() * 2
            random.Random(seed).shuffle(shuffled)
            for start in range(0, len(shuffled), 3):  # in small batches, newest per key
                await model.apply_snapshots(latest_per_contact_of(shuffled[start : start + 3]))
            assert await dump(redis_client, prefix) == ordered

        # From an empty Redis, the contacts' streams interleaved at random (each
        # contact's snapshots keep their order: one key, one partition) and
        # every item delivered twice: the same keys as the ordered run.
        for seed in (3, 4, 5):
            keys = [k async for k in redis_client.scan_iter(f"{prefix}*")]
            await redis_client.delete(*keys)
            for batch in interleaved(history(), random.Random(seed)):
                await model.apply_snapshots(latest_per_contact_of(batch))
            assert await dump(redis_client, prefix) == ordered
    finally:
        keys = [k async for k in redis_client.scan_iter(f"{prefix}*")]
        if keys:
            await redis_client.delete(*keys)


def interleaved(items: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Batches of a random merge of the per-contact (and quota) streams, each item twice."""
    streams: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        streams.setdefault(item.get("contact_id", "quota"), []).extend([item, item])
    merged = []
    while streams:
        name = rng.choice(sorted(streams))
        merged.append(streams[name].pop(0))
        if not streams[name]:
            del streams[name]
    batches = []
    while merged:
        size = rng.randint(1, 4)
        batches.append(merged[:size])
        merged = merged[size:]
    return batches


def latest_per_contact_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return latest_per_contact([orjson.dumps(i) for i in items])


def test_segments_of_a_snapshot() -> None:
    marketing = {"active": True}
    live = snap("a", 1, marketing=marketing, lists=["l1"])
    live["engagement"] = {"campaign_status": "engaged", "tier": "dormant"}
    assert segment_names(live) == ["marketing", "status:engaged", "tier:dormant", "list:l1"]
    assert segment_names({**live, "state": "trashed"}) == ["trash"]
    assert segment_names({**live, "state": "merged"}) == []
    # Suspended contacts stay in their sets (SPEC §4).
    assert segment_names({**live, "suspended": True}) == segment_names(live)


async def test_writes_go_on_after_redis_forgets_its_scripts_and_a_script_error_is_raised(
    redis_client: Any,
) -> None:
    """A restarted Redis has no scripts cached; a failing script leaves the connection usable."""
    model = ReadModel(redis_client, prefix=f"cs-rm{random.getrandbits(32):x}")
    try:
        await redis_client.script_flush()
        assert await model.apply_snapshots([snap("ana", 1)]) == 1
        await redis_client.script_flush()
        change = {"tenant_id": "acme", "contact_id": "ana", "version": 1, "type": "x"}
        assert await model.apply_changes([orjson.dumps(change)]) == 1

        failing = scripts.Script("return redis.error_reply('boom')")
        fine = scripts.Script("return 7")
        calls = [fine.call([], []), failing.call([], []), fine.call([], [])]
        with pytest.raises(ResponseError, match="boom"):
            await scripts.run(redis_client, (fine, failing), calls)
        # Every reply was read: the pooled connection answers the next call in step.
        assert await scripts.run(redis_client, (fine,), [fine.call([], [])]) == [7]
        assert await redis_client.ping()
        stored = orjson.loads(await redis_client.get(model.contact_key("acme", "ana")))
        assert stored["version"] == 1
    finally:
        keys = [k async for k in redis_client.scan_iter(f"{model.prefix}*")]
        if keys:
            await redis_client.delete(*keys)


async def test_a_batched_script_runs_once_per_item_with_its_own_keys_and_arguments(
    redis_client: Any,
) -> None:
    echo = scripts.Batched("return {#KEYS, #ARGV, KEYS[1] or '', ARGV[#ARGV] or ''}")
    items: list[scripts.Item] = [
        (["k1"], [b"a", 1]),
        ([], ["only"]),
        (["k2", "k3", "k4"], []),
        (["k5"], [b"x" * 1000, "y", 3]),
    ]
    replies = await scripts.run(
        redis_client, (echo,), [echo.call_items(items), echo.call_items([])]
    )
    assert replies == [
        [[1, 2, b"k1", b"1"], [0, 1, b"", b"only"], [3, 0, b"k2", b""], [1, 3, b"k5", b"3"]],
        [],
    ]

"""Finding contacts at 100,000 contacts: search latency, and what the indexes cost the projection.

Usage (a Redis must answer: `scripts/stack up`, or CS_REDIS_URL naming another):

    .venv/bin/python bench/search.py                      # 100,000 contacts
    .venv/bin/python bench/search.py --contacts 20000 --queries 100   # quick

No Kafka and no worker: N contact snapshots (random sources, owners, tags,
cities, companies, marketing, statuses, tiers, lists; `created_at` over a
year) go straight through `ReadModel.apply_snapshots` in batches of 500 (the
projection's batch), under a prefix of the run's own.

1. Write rate, indexes off then on, `--rounds` times each (alternating, as
   the machine is shared): snapshots/s for the N creations, then for N/5
   edits (a version up: a tag swapped, the owner and city changed, some
   trashed, which is what removes index entries). "Off" is the read model
   without the filter sets and `created` (`filter_indexes=False`): identifier
   keys and segment sets only, as before the indexes existed.
2. Search latency on the indexed data: `--queries` random queries each of 1,
   2 and 3 criteria (drawn from tag, owner, source, city, status, tier,
   marketing, list, created_from), one page of 50, through
   `stream.projection.search.search` (one Lua call, snapshots decoded), timed
   in this process: p50, p99, max, and the median count. Also: the first page
   with no criteria, a page 10 cursors deep, and `segment_counts`.
3. A table, and bench/results/search-<UTC time>.json with every figure and
   the git commit; the run's keys are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.domain.timefmt import MS_PER_DAY, format_ms  # noqa: E402
from stream.projection import search  # noqa: E402
from stream.projection.read_model import ReadModel, latest_per_contact  # noqa: E402

TENANT = "bench"
BATCH = 500
SOURCES = ["form", "landing_page", "import", "api", "inbox", "ecommerce", "manual"]
TAGS = [f"tag{n}" for n in range(20)]
OWNERS = [f"owner{n}" for n in range(10)]
CITIES = [f"City{n}" for n in range(50)]
COMPANIES = [f"Company{n}" for n in range(200)]
STATUSES = ["active", "engaged", "inactive", "reactivated", "suppressed"]
TIERS = ["new", "frequent", "dormant", "expired", "inactive"]
LISTS = [f"list{n}" for n in range(10)]
START_MS = 1_764_547_200_000  # 2025-12-01


def contact(rng: random.Random, n: int) -> dict[str, Any]:
    marketing = rng.random() < 0.5
    created = START_MS + rng.randrange(365 * MS_PER_DAY)
    return {
        "contact_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "tenant_id": TENANT,
        "version": 1,
        "created_at": format_ms(created),
        "updated_at": format_ms(created),
        "state": "live",
        "source": rng.choice(SOURCES),
        "emails": [f"c{n}@example.com"],
        "phones": [],
        "fields": {
            "first_name": f"N{n}",
            "city": rng.choice(CITIES),
            "company": rng.choice(COMPANIES),
        },
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "owner": rng.choice([*OWNERS, None]),
        "lists": rng.sample(LISTS, rng.randint(0, 2)) if marketing else [],
        "suspended": False,
        "deleted_at": None,
        "merged_into": None,
        "marketing": {
            "active": marketing,
            "activated_at": format_ms(created) if marketing else None,
            "slot_held_until": None,
        },
        "engagement": {
            "score": 0.0,
            "score_at": None,
            "last_engagement_at": None,
            "last_activity_at": None,
            "campaign_status": rng.choice(STATUSES) if marketing else None,
            "sends_since_engagement": 0,
            "reactivation_cycle": 0,
            "tier": rng.choice(TIERS),
        },
        "activity": {},
    }


def edited(rng: random.Random, snap: dict[str, Any]) -> dict[str, Any]:
    """The next version: a tag swapped, owner and city changed, one in ten trashed."""
    tags = [t for t in snap["tags"] if rng.random() < 0.5] + [rng.choice(TAGS)]
    state = "trashed" if rng.random() < 0.1 else "live"
    return {
        **snap,
        "version": snap["version"] + 1,
        "state": state,
        "tags": list(dict.fromkeys(tags)),
        "owner": rng.choice(OWNERS),
        "fields": {**snap["fields"], "city": rng.choice(CITIES)},
    }


async def redis_cpu(client: Redis) -> float:
    """Seconds of CPU the Redis server has used (all clients: use a Redis of the bench's own)."""
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def write_all(
    client: Redis, model: ReadModel, raws: list[bytes], decode: bool
) -> dict[str, float]:
    """Snapshots written in batches of 500: per wall second, and per CPU second.

    `decode`: the projection's whole write path per batch (`latest_per_contact`
    decoding the records' bytes, then `apply_snapshots`); otherwise only
    `apply_snapshots` (arguments and the Lua script), from dicts decoded
    beforehand. CPU = this process's plus the Redis server's, which a shared
    machine disturbs less than wall time.
    """
    batches = [raws[start : start + BATCH] for start in range(0, len(raws), BATCH)]
    decoded = [] if decode else [latest_per_contact(batch) for batch in batches]
    server_before, process_before = await redis_cpu(client), time.process_time()
    started = time.perf_counter()
    for n, batch in enumerate(batches):
        await model.apply_snapshots(latest_per_contact(batch) if decode else decoded[n])
    wall = time.perf_counter() - started
    server = await redis_cpu(client) - server_before
    process = time.process_time() - process_before
    return {
        "per_s": len(raws) / wall,
        "per_cpu_s": len(raws) / (server + process),
        "redis_cpu_us": server / len(raws) * 1e6,
        "client_cpu_us": process / len(raws) * 1e6,
    }


async def delete_prefix(client: Redis, prefix: str) -> None:
    batch = []
    async for key in client.scan_iter(f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


def criterion(rng: random.Random, kind: str) -> tuple[str, str]:
    value = {
        "tag": lambda: rng.choice(TAGS),
        "owner": lambda: rng.choice(OWNERS),
        "source": lambda: rng.choice(SOURCES),
        "field.city": lambda: rng.choice(CITIES).upper(),
        "status": lambda: rng.choice(STATUSES),
        "tier": lambda: rng.choice(TIERS),
        "marketing": lambda: rng.choice(["true", "false"]),
        "list": lambda: rng.choice(LISTS),
        "created_from": lambda: format_ms(START_MS + rng.randrange(300 * MS_PER_DAY))[:10],
    }[kind]()
    return kind, value


KINDS = ["tag", "owner", "source", "field.city", "status", "tier", "marketing", "list"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_search(
    client: Redis, prefix: str, pairs: list[tuple[str, str]], page: search.Page | None = None
) -> tuple[float, dict[str, Any]]:
    query, _ = search.parse_query(pairs, ["city", "company"], paging=False)
    started = time.perf_counter()
    found = await search.search(client, prefix, TENANT, query, page)
    return (time.perf_counter() - started) * 1000, found


async def latencies(
    client: Redis, prefix: str, rng: random.Random, queries: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for size in (1, 2, 3):
        times, counts = [], []
        for _ in range(queries):
            kinds = rng.sample([*KINDS, "created_from"], size)
            ms, found = await timed_search(client, prefix, [criterion(rng, k) for k in kinds])
            times.append(ms)
            counts.append(found["count"])
        out[f"{size} criteria"] = {
            "p50_ms": percentile(times, 0.5),
            "p99_ms": percentile(times, 0.99),
            "max_ms": max(times),
            "median_count": statistics.median(counts),
        }
    # No criteria: the first page of every live contact, and one 10 cursors deep.
    times = []
    for _ in range(queries):
        ms, found = await timed_search(client, prefix, [])
        times.append(ms)
    out["no criteria, page 1"] = {
        "p50_ms": percentile(times, 0.5),
        "p99_ms": percentile(times, 0.99),
        "max_ms": max(times),
        "median_count": found["count"],
    }
    pairs = [("marketing", "true")]
    times = []
    for _ in range(max(1, queries // 10)):
        cursor = None
        for _ in range(10):
            page = search.Page(after=None if cursor is None else search.decode_cursor(cursor))
            ms, found = await timed_search(client, prefix, pairs, page)
            cursor = found["next_cursor"]
        times.append(ms)
    out["marketing=true, page 10"] = {
        "p50_ms": percentile(times, 0.5),
        "p99_ms": percentile(times, 0.99),
        "max_ms": max(times),
        "median_count": found["count"],
    }
    times = []
    for _ in range(queries):
        started = time.perf_counter()
        await search.segment_counts(client, prefix, TENANT)
        times.append((time.perf_counter() - started) * 1000)
    out["segment_counts"] = {
        "p50_ms": percentile(times, 0.5),
        "p99_ms": percentile(times, 0.99),
        "max_ms": max(times),
        "median_count": 0,
    }
    return out


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    client = Redis.from_url(os.environ.get("CS_REDIS_URL", "redis://127.0.0.1:16379/0"))
    load_before = os.getloadavg()
    rng = random.Random(args.seed)
    snaps = [contact(rng, n) for n in range(args.contacts)]
    edits = [edited(rng, s) for s in rng.sample(snaps, args.contacts // 5)]
    raw_snaps = [orjson.dumps(s) for s in snaps]
    raw_edits = [orjson.dumps(s) for s in edits]
    rates: dict[str, list[dict[str, dict[str, float]]]] = {"off": [], "on": []}
    prefix = f"bench-search-{uuid.uuid4().hex[:8]}"
    try:
        for round_ in range(args.rounds):
            for mode in ("off", "on"):
                model = ReadModel(client, prefix, filter_indexes=mode == "on")
                rate: dict[str, dict[str, float]] = {}
                for decode, name in ((True, "projection"), (False, "script")):
                    rate[f"{name}_create"] = await write_all(client, model, raw_snaps, decode)
                    rate[f"{name}_edit"] = await write_all(client, model, raw_edits, decode)
                    last = round_ == args.rounds - 1 and mode == "on" and not decode
                    if not last:
                        await delete_prefix(client, prefix)
                rates[mode].append(rate)
                summary = {k: round(v["per_s"]) for k, v in rate.items()}
                print(f"round {round_ + 1}, indexes {mode}: {summary}", file=sys.stderr)
        memory = await client.memory_usage(f"{prefix}:{{{TENANT}}}:created")
        server = await client.info("server")
        found = await latencies(client, prefix, rng, args.queries)
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()
    return {
        "contacts": args.contacts,
        "edits": len(edits),
        "rounds": args.rounds,
        "write_rates": rates,
        "created_zset_bytes": memory,
        "search": found,
        "load_average_before_after": [load_before, os.getloadavg()],
        "redis_version": server["redis_version"],
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "stream").splitlines(),
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ"),
    }


def report(result: dict[str, Any]) -> str:
    load = result["load_average_before_after"]
    lines = [
        f"{result['contacts']:,} contacts, {result['edits']:,} edits, commit {result['commit']},"
        f" Redis {result['redis_version']}, load average {load[0][0]:.1f} -> {load[1][0]:.1f}",
        "",
        "| write path | indexes | creations/s | edits/s | creations per CPU s | edits per CPU s"
        " | Redis CPU per creation |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("projection", "script"):
        for mode in ("off", "on"):
            rounds = result["write_rates"][mode]

            def figures(kind: str, key: str, rounds: list[Any] = rounds) -> str:
                return ", ".join(f"{r[kind][key]:,.0f}" for r in rounds)

            lines.append(
                f"| {name} | {mode} | {figures(f'{name}_create', 'per_s')}"
                f" | {figures(f'{name}_edit', 'per_s')}"
                f" | {figures(f'{name}_create', 'per_cpu_s')}"
                f" | {figures(f'{name}_edit', 'per_cpu_s')}"
                f" | {figures(f'{name}_create', 'redis_cpu_us')} µs |"
            )
    lines += ["", "| query | p50 | p99 | max | median count |", "|---|---|---|---|---|"]
    for name, f in result["search"].items():
        lines.append(
            f"| {name} | {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms | {f['max_ms']:.2f} ms"
            f" | {f['median_count']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="per criterion count")
    parser.add_argument("--rounds", type=int, default=2, help="write-rate rounds per mode")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(main(args))
    out = ROOT / "bench" / "results" / f"search-{result['at']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"\n{out.relative_to(ROOT)}")

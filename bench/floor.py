"""The floor of the engagement path's records: the same Kafka and Redis traffic, no Faust, no rules.

Usage (the local stack must be up: `scripts/stack up`):

    .venv/bin/python bench/floor.py --records 50000 --rounds 3

Issue 11 asks the engagement workload for >= 20 % of a raw aiokafka
consume -> produce loop. This bench asks what the records alone allow: an
engagement by email makes, in the product,

    consumed: the input, the contact op, the outbox change (relay), the
              snapshot and the change (projection)                  5
    produced: the contact op, the outbox change, the snapshot, two table
              changelog records (contact, applied), the relay's copy on
              the changes topic, the relay's mark                   7
    Redis:    one snapshot write and one history append, pipelined

(docs/architecture.md). Here one process, one event loop (like the worker's
main thread), runs four plain aiokafka stages that move exactly those
records, with the product's own bytes for each (bench/hotpath.py's steps on
the workload's records), and does the least Python a consumer of JSON does:
each consumed record is decoded with `orjson.loads`, each produced one is
pre-built or one `orjson.dumps`. No Faust, no tables, no rules:

1. router:     input -> loads -> owner looked up in a dict -> contact op;
2. contact:    op -> loads -> version + 1 -> outbox change(s), snapshot,
               two changelog records;
3. relay:      outbox (read_committed) -> loads -> per partition one
               transaction: the changes, the marks, the offsets;
4. projection: snapshots + changes (read_committed) -> loads -> one Redis
               pipeline per batch (SET the snapshot, RPUSH the change).

Each stage fetches up to 1,000 records per `getmany`, sends them, flushes
and commits once per batch, as the raw loop does. The clock runs from the
router's first record to the projection's last write. Alternating per round
with it, the raw loop of bench/intake_throughput.py (the baseline of
bench/engagement.py and `make bench`) runs on the same broker. The report
gives the floor's inputs/s as a share of raw: the most any Python
implementation of this record flow on aiokafka could reach here, before
identity, rules, state or Faust.

Writes bench/results/floor-<UTC time>.json with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from common import (
    BOOTSTRAP,
    REDIS_URL,
    ROOT,
    BatchWriter,
    big_producer,
    cleanup,
    create_topics,
    git,
    say,
)
from engagement import TENANT, TYPES, contact_id_of, cpu_between, cpu_times, email_of, engagement
from hotpath import steps
from intake_throughput import raw_passthrough

BATCH = 1000  # records per getmany, as the raw loop
SAMPLES = 1000  # distinct product records whose bytes the stages send
# name, relay and projection run, router and contact stages send produce batches,
# the per-record producer's max_batch_size (aiokafka's and Faust's default: 16 KiB)
VARIANTS = (
    ("floor", True, False, 16384),
    ("floor-512k", True, False, 512 * 1024),
    ("floor-batched", True, True, 0),
    ("core", False, False, 16384),
)
ROLES = ("input", "ops", "outbox", "snapshots", "changelog", "changes", "marks")


@dataclass
class Samples:
    """The product's bytes for each record an engagement makes (bench/hotpath.py)."""

    snapshots: list[bytes]
    contacts: list[bytes]
    applied: list[bytes]
    changes: list[list[dict[str, Any]]]  # per input, its change events (decoded)

    @property
    def changes_per_input(self) -> float:
        return sum(len(c) for c in self.changes) / len(self.changes)


def product_samples(now_ms: int) -> Samples:
    timed, _, state = steps(now_ms, SAMPLES)
    out = Samples([], [], [], [])
    for i in range(SAMPLES):
        for _, step in timed:
            step(i)
        out.snapshots.append(state["snapshot"])
        out.contacts.append(state["contact_record"])
        out.applied.append(state["record"])
        out.changes.append([orjson.loads(c) for c in state["encoded_changes"]])
    return out


@dataclass
class Floor:
    inputs: int
    seconds: float = 0.0
    cpu_s: float = 0.0
    produced: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    redis_commands: int = 0
    cores: dict[str, float] = field(default_factory=dict)  # this process, broker, Redis, machine

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds

    @property
    def cpu_us_per_input(self) -> float:
        return self.cpu_s / self.inputs * 1e6


def consumer(group: str, *, committed_reads: bool = False) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_reads else "read_uncommitted",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def assigned(c: AIOKafkaConsumer, topics: list[str], partitions: int) -> None:
    await c.start()
    c.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])
    await c.seek_to_beginning()


Stage = Callable[[list[Any]], Awaitable[None]]


async def run_stage(c: AIOKafkaConsumer, handle: Stage, done: asyncio.Event) -> None:
    """getmany -> handle the batch -> commit, until the run is done."""
    while not done.is_set():
        batches = await c.getmany(timeout_ms=100, max_records=BATCH)
        records = [r for rs in batches.values() for r in rs]
        if records:
            await handle(records)
            await c.commit()


async def floor_run(
    records: int,
    contacts: int,
    partitions: int,
    samples: Samples,
    relayed: bool = True,
    batched: bool = False,
    batch_bytes: int = 16384,
) -> Floor:
    """One run of the stages.

    `relayed=False`: the router and contact stages only. `batched`: those two
    stages send each batch's records as ready-made produce batches
    (`create_batch` / `send_batch`, bench/common.py `BatchWriter`) instead of
    one `send` per record.
    """
    run = f"floor{uuid.uuid4().hex[:8]}"
    # Named as the other benches name a run's topics and keys: cleanup(run) deletes them.
    t = {role: f"{run}.{role}" for role in ROLES}
    await create_topics(t.values(), partitions)
    rng_types = [kind for kind, weight in TYPES for _ in range(weight)]
    now_ms = int(time.time() * 1000)
    producer = (
        big_producer()
        if batched
        else AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=batch_bytes)
    )
    await producer.start()
    writers = {stage: BatchWriter(producer, partitions) for stage in ("router", "contact")}
    for i in range(records):
        await producer.send(
            t["input"],
            engagement(f"f{run}-{i}", i % contacts, rng_types[i % len(rng_types)], now_ms),
            key=email_of(i % contacts).encode(),
        )
    await producer.flush()
    say(f"floor: {records:,} engagement inputs written")

    result = Floor(records)
    owner = {email_of(i): contact_id_of(i) for i in range(contacts)}
    versions: dict[str, int] = {}
    expected_changes = sum(len(samples.changes[i % SAMPLES]) for i in range(records))
    done = asyncio.Event()
    clock: dict[str, float] = {}
    machine: dict[str, dict[str, float]] = {}
    seen = {"snapshots": 0, "changes": 0}
    count = result.consumed
    sent = result.produced

    async def send(stage: str, role: str, value: bytes, key: bytes) -> None:
        sent[role] = sent.get(role, 0) + 1
        if batched:
            writer = writers[stage]
            await writer.put(t[role], key, value, writer.partition_of(key))
        else:
            await producer.send(t[role], value, key=key)

    async def flush(stage: str) -> None:
        """Every record the stage sent is acknowledged."""
        if batched:
            await writers[stage].close()
            writers[stage] = BatchWriter(producer, partitions)
        else:
            await producer.flush()

    async def router(batch: list[Any]) -> None:
        if "start" not in clock:
            clock["start"], clock["cpu"] = time.monotonic(), time.process_time()
            machine["start"] = cpu_times(None)
        count["input"] = count.get("input", 0) + len(batch)
        for r in batch:
            event = orjson.loads(r.value)
            target = owner[event["email"]]  # the identity table's read, as a dict
            op = {"kind": "engagement", "target": target, "engagement": event, "offset": r.offset}
            await send("router", "ops", orjson.dumps(op), target.encode())
        await flush("router")

    async def contact(batch: list[Any]) -> None:
        count["ops"] = count.get("ops", 0) + len(batch)
        for r in batch:
            op = orjson.loads(r.value)
            cid = op["target"]
            n = int(op["engagement"]["event_id"].rsplit("-", 1)[1]) % SAMPLES
            key = f"{TENANT}:{cid}".encode()
            for change in samples.changes[n]:
                version = versions[cid] = versions.get(cid, 4) + 1
                event = {**change, "contact_id": cid, "version": version}
                event["change_id"] = f"{cid}:{version}"
                await send("contact", "outbox", orjson.dumps(event), key)
            await send("contact", "snapshots", samples.snapshots[n], key)
            await send("contact", "changelog", samples.contacts[n], f"c|{TENANT}|{cid}".encode())
            applied = f"a|{TENANT}|{op['offset']}".encode()
            await send("contact", "changelog", samples.applied[n], applied)
        await flush("contact")
        if not relayed and count["ops"] >= records:
            finish()

    def finish() -> None:
        clock["end"], clock["cpu_end"] = time.monotonic(), time.process_time()
        machine["end"] = cpu_times(None)
        done.set()

    txn = {
        p: AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP,
            transactional_id=f"bench-floor-{run}-{p}",
            enable_idempotence=True,
            linger_ms=5,
        )
        for p in range(partitions if relayed else 0)  # the relay's, one per outbox partition
    }
    await asyncio.gather(*(p.start() for p in txn.values()))
    published: dict[bytes, int] = {}
    relay_group = f"bench-floor-relay-{run}"

    async def relay_partition(tp: TopicPartition, batch: list[Any]) -> None:
        out = txn[tp.partition]
        async with out.transaction():
            marks: dict[bytes, int] = {}
            acks = []
            for r in batch:
                change = orjson.loads(r.value)
                version = int(change["version"])
                if published.get(r.key, 0) >= version:
                    continue
                marks[r.key] = version
                acks.append(await out.send(t["changes"], r.value, key=r.key))
            for key, version in marks.items():
                acks.append(await out.send(t["marks"], b"%d" % version, key=key))
            sent["changes"] = sent.get("changes", 0) + len(acks) - len(marks)
            sent["marks"] = sent.get("marks", 0) + len(marks)
            await asyncio.gather(*acks)
            await out.send_offsets_to_transaction({tp: batch[-1].offset + 1}, relay_group)
        published.update(marks)

    async def relay(c: AIOKafkaConsumer) -> None:
        while not done.is_set():
            batches = await c.getmany(timeout_ms=100, max_records=2 * BATCH)
            for rs in batches.values():
                count["outbox"] = count.get("outbox", 0) + len(rs)
            await asyncio.gather(*(relay_partition(tp, rs) for tp, rs in batches.items() if rs))

    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"cs-{run}"

    async def projection(batch: list[Any]) -> None:
        latest: dict[bytes, bytes] = {}
        history: list[tuple[bytes, bytes]] = []
        for r in batch:
            orjson.loads(r.value)  # parsed, as the product's projection parses each record
            if r.topic == t["snapshots"]:
                seen["snapshots"] += 1
                latest[r.key] = r.value
            else:
                seen["changes"] += 1
                history.append((r.key, r.value))
        async with client.pipeline(transaction=False) as pipe:
            for key, value in latest.items():
                pipe.set(f"{prefix}:c:{key.decode()}", value)
            for key, value in history:
                pipe.rpush(f"{prefix}:h:{key.decode()}", value)
            await pipe.execute()
        result.redis_commands += len(latest) + len(history)
        count["snapshots"], count["changes"] = seen["snapshots"], seen["changes"]
        if seen["snapshots"] >= records and seen["changes"] >= expected_changes:
            finish()

    consumers = {
        "router": consumer(f"bench-floor-router-{run}"),
        "contact": consumer(f"bench-floor-contact-{run}"),
    }
    await assigned(consumers["router"], [t["input"]], partitions)
    await assigned(consumers["contact"], [t["ops"]], partitions)
    tasks = [
        asyncio.create_task(run_stage(consumers["router"], router, done)),
        asyncio.create_task(run_stage(consumers["contact"], contact, done)),
    ]
    if relayed:
        # Only when relayed: an assigned consumer prefetches its partitions even unread.
        consumers["relay"] = consumer(relay_group, committed_reads=True)
        consumers["projection"] = consumer(f"bench-floor-projection-{run}", committed_reads=True)
        await assigned(consumers["relay"], [t["outbox"]], partitions)
        await assigned(consumers["projection"], [t["snapshots"], t["changes"]], partitions)
        tasks.append(asyncio.create_task(relay(consumers["relay"])))
        tasks.append(asyncio.create_task(run_stage(consumers["projection"], projection, done)))
    try:
        finished = asyncio.create_task(done.wait())
        await asyncio.wait([finished, *tasks], timeout=600, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if not done.is_set():
            raise SystemExit(f"floor: not done in 600 s: {count}")
        await asyncio.gather(*tasks)
    finally:
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in consumers.values():
            await c.stop()
        await asyncio.gather(*(p.stop() for p in txn.values()), producer.stop())
        await client.aclose()
        await cleanup(run)
    result.seconds = clock["end"] - clock["start"]
    result.cpu_s = clock["cpu_end"] - clock["cpu"]
    result.cores = cpu_between(machine["start"], machine["end"])
    if not relayed:
        if count["ops"] != records or sent["outbox"] != expected_changes:
            raise SystemExit(f"floor: records lost or doubled: {sent} {count}")
    elif sent.get("changes", 0) != expected_changes or seen["snapshots"] != records:
        raise SystemExit(f"floor: records lost or doubled: {sent} {seen}")
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    samples = product_samples(1_780_000_000_000)
    say(f"floor: product records sampled; {samples.changes_per_input:.2f} changes per input")
    rounds = []
    for n in range(args.rounds):
        raw = await raw_passthrough(args.records)
        say(f"round {n + 1}: raw passthrough {raw:,.0f} records/s")
        row: dict[str, Any] = {"raw_records_per_s": raw}
        for name, relayed, batched, batch_bytes in VARIANTS:
            floor = await floor_run(
                args.records, args.contacts, args.partitions, samples, relayed, batched, batch_bytes
            )
            say(
                f"round {n + 1}: {name} {floor.rate:,.0f} inputs/s = {floor.rate / raw:.1%} "
                f"of raw, {floor.cpu_us_per_input:,.0f} µs CPU per input, cores {floor.cores}"
            )
            row[name] = {
                "inputs_per_s": floor.rate,
                "share_of_raw": floor.rate / raw,
                "cpu_us_per_input": floor.cpu_us_per_input,
                **asdict(floor),
            }
        rounds.append(row)
    return {
        "benchmark": "floor",
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain")),
        "records": args.records,
        "contacts": args.contacts,
        "partitions": args.partitions,
        "changes_per_input": samples.changes_per_input,
        "rounds": rounds,
        "median": {
            name: {
                "share_of_raw": median(r[name]["share_of_raw"] for r in rounds),
                "cpu_us_per_input": median(r[name]["cpu_us_per_input"] for r in rounds),
            }
            for name, *_ in VARIANTS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = args.out or ROOT / "bench" / "results" / f"floor-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    for name, m in result["median"].items():
        print(
            f"{name}: median {m['share_of_raw']:.1%} of raw, "
            f"{m['cpu_us_per_input']:,.0f} µs CPU per input"
        )
    print(f"results in {out}")


if __name__ == "__main__":
    main()

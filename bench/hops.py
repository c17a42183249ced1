"""Where a kept engagement run's latency goes, hop by hop, from the records' own timestamps.

Usage (after `bench/engagement.py ... --latency 300 400 --keep`, same stack):

    .venv/bin/python bench/hops.py <run id>      # the run id is "run" in its JSON

Every record carries the time its producer sent it (CreateTime): the bench's
for an input, the router's for the contact op it sends, the contact agent's
for the change it puts on the outbox (the changes topic keeps that time too).
For each latency phase's engagement events (event ids `<run>-l<rate>-<n>`)
this prints, in ms, percentiles of

- the router hop: contact op sent - input sent (the bench's linger, the
  broker, the worker's fetch, the hand-over to the agents' thread, queueing
  and the router's work);
- the contact hop: outbox change sent - contact op sent (the same, then the
  contact agent's work);
- the two together (bench/engagement.py's produce -> change event),

and, for the slowest 1 % of events, the mean of each hop.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from common import BOOTSTRAP


async def read_all(topic: str, partitions: int) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise SystemExit(f"no topic {topic}: was the run kept (--keep) on this stack?")
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=50_000)).values():
                out += records
        return out
    finally:
        await consumer.stop()


def pct(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(run: str, partitions: int) -> None:
    sent: dict[str, int] = {}
    for r in await read_all(f"{run}.contacts.engagement.v1", partitions):
        sent[orjson.loads(r.value)["event_id"]] = r.timestamp
    routed: dict[str, int] = {}
    for r in await read_all(f"{run}.contact-stream.contact-ops.v1", partitions):
        op: dict[str, Any] = orjson.loads(r.value)
        if op.get("kind") == "engagement":
            routed.setdefault(op["engagement"]["event_id"], r.timestamp)
    changed: dict[str, int] = {}
    for r in await read_all(f"{run}.contact-stream.change-outbox.v1", partitions):
        cause = orjson.loads(r.value).get("cause") or {}
        if cause.get("event_id"):
            changed.setdefault(cause["event_id"], r.timestamp)
    phases: dict[str, list[str]] = defaultdict(list)
    for event_id in sent:
        m = re.search(r"-(l\d+)-\d+$", event_id)
        if m and event_id in routed and event_id in changed:
            phases[m[1]].append(event_id)
    for phase, ids in sorted(phases.items(), key=lambda p: int(p[0][1:])):
        hops = {
            "router hop": [routed[e] - sent[e] for e in ids],
            "contact hop": [changed[e] - routed[e] for e in ids],
            "both": [changed[e] - sent[e] for e in ids],
        }
        print(f"{phase[1:]} events/s: {len(ids):,} events")
        for name, values in hops.items():
            print(
                f"  {name:12s} p50 {pct(values, 0.5):4d}  p95 {pct(values, 0.95):4d}"
                f"  p99 {pct(values, 0.99):4d}  max {max(values):4d} ms"
            )
        worst = sorted(ids, key=lambda e: changed[e] - sent[e])[-max(1, len(ids) // 100) :]
        router = sum(routed[e] - sent[e] for e in worst) / len(worst)
        contact = sum(changed[e] - routed[e] for e in worst) / len(worst)
        print(f"  slowest 1 %: router hop {router:.0f} ms, contact hop {contact:.0f} ms (means)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("run", help="the run id of a kept bench/engagement.py run")
    parser.add_argument("--partitions", type=int, default=4, help="the run's --partitions")
    args = parser.parse_args()
    asyncio.run(main(args.run, args.partitions))

"""Intake throughput of the product, against raw aiokafka measured in the same run.

Usage (the local stack must be up: `scripts/stack up`):

    .venv/bin/python bench/intake_throughput.py --records 3000 --workers 1 2

Three measurements, one after the other on the same broker:
1. raw: an aiokafka consume -> produce loop (getmany, batched sends) moving
   the same records from one topic to another: the ceiling on this machine;
2. the product with 1 worker, then with 2 workers (8 partitions): intakes
   with distinct emails are produced up front, and the clock runs from the
   first `contact.created` to the last (records/s end to end, through the
   route, identity and contact hops).
Ratios to raw are what to compare across runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = os.environ.get("CS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PARTITIONS = 8


def intake(prefix: str, i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{prefix}-{i}",
            "tenant_id": "bench",
            "source": "form",
            "emails": [f"person{i}@bench.example.com"],
            "fields": {"first_name": "Ana"},
        }
    )


async def create_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def produce(topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send(topic, value, key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def move(producer: AIOKafkaProducer, sink: str, batches: dict[Any, list[Any]]) -> int:
    """Send each fetched record on to `sink` under its key, then flush; how many were sent."""
    moved = 0
    for records in batches.values():
        for record in records:
            await producer.send(sink, record.value, key=record.key)
            moved += 1
    await producer.flush()
    return moved


async def raw_passthrough(records: int) -> float:
    """Records/s of a plain consume -> produce loop between two topics."""
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench-raw-in-{run}", f"bench-raw-out-{run}"
    await create_topics([source, sink])
    await produce(source, [intake(run, i) for i in range(records)])
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"raw-{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20)
    await consumer.start()
    await producer.start()
    moved, started = 0, None
    try:
        while moved < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if started is None and batches:
                started = time.monotonic()
            moved += await move(producer, sink, batches)
            await consumer.commit()
        assert started is not None
        return records / (time.monotonic() - started)
    finally:
        await consumer.stop()
        await producer.stop()


async def product(records: int, workers: int) -> float:
    """Records/s through the product, first to last `contact.created`."""
    run = f"bench{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CS_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "CS_APP_ID": run,
        "CS_TOPIC_PREFIX": f"{run}.",
        "CS_PARTITIONS": str(PARTITIONS),
        "CS_SESSION_TIMEOUT": "10",
    }
    tmp = Path(tempfile.mkdtemp(prefix=f"{run}-"))
    processes = []
    for n in range(workers):
        log = (tmp / f"worker-{n}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "-l", "info"],
                cwd=ROOT,
                env={**env, "CS_DATADIR": str(tmp / f"data-{n}"), "CS_WEB_PORT": str(17000 + n)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while any(
            "contact-stream ready" not in (tmp / f"worker-{n}.log").read_text(errors="replace")
            for n in range(workers)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready; logs in {tmp}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)  # let the last rebalance settle before the clock runs
        await produce(f"{run}.contacts.intake.v1", [intake(run, i) for i in range(records)])
        consumer = AIOKafkaConsumer(
            f"{run}.contacts.changes.v1",
            bootstrap_servers=BOOTSTRAP,
            group_id=f"{run}-bench",
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        created, first, last = 0, None, None
        deadline = time.monotonic() + 600
        try:
            while created < records and time.monotonic() < deadline:
                for tp_records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in tp_records:
                        if b'"contact.created"' in record.value:
                            created += 1
                            ts = record.timestamp / 1000
                            first = ts if first is None else min(first, ts)
                            last = ts if last is None else max(last, ts)
        finally:
            await consumer.stop()
        if created < records or first is None or last is None:
            raise RuntimeError(f"only {created} of {records} contacts created; logs in {tmp}")
        return records / max(last - first, 1e-3)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    raw = await raw_passthrough(args.records)
    print(f"raw aiokafka passthrough: {raw:8.0f} rec/s (100 %)", flush=True)
    for workers in args.workers:
        rate = await product(args.records, workers)
        print(
            f"product, {workers} worker(s):  {rate:8.0f} intakes/s ({rate / raw:.1%} of raw)",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())

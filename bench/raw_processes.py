"""Raw aiokafka passthrough in N processes of one consumer group: what a second core gives raw.

Usage (a stack must be up; CS_KAFKA_BOOTSTRAP points at it):

    .venv/bin/python bench/raw_processes.py --records 200000 --processes 1 2 1 2

For each entry of `--processes`: a fresh 8-partition topic gets `--records`
intakes (bench/intake_throughput.py's records), then N processes, each
running intake_throughput.py's consume -> produce loop (getmany of up to
1,000, one send per record, flush and commit per batch) in one consumer
group, move them to a second topic. A process stops 3 s after its last
batch. Records/s runs from the first batch any process got to the last
batch any process sent. A process joining the group late makes the group
rebalance, and records fetched but not committed before it are moved
twice (a commit the rebalance refused is skipped): the count moved is
printed, and the rate is of `--records` (docs/performance.md, session 31).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import intake_throughput as it
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError

IDLE_S = 3.0  # a process stops this long after its last batch
START_S = 30.0  # or this long after its start without any


async def passthrough(source: str, sink: str, group: str) -> tuple[int, float | None, float]:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=it.BOOTSTRAP,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=it.BOOTSTRAP, linger_ms=20)
    await consumer.start()
    await producer.start()
    moved, first, last, started = 0, None, 0.0, time.time()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batches:
                waited = time.time() - (started if first is None else last)
                if waited > (START_S if first is None else IDLE_S):
                    return moved, first, last
                continue
            if first is None:
                first = time.time()
            moved += await it.move(producer, sink, batches)
            # A member joining moves partitions: their records are moved again elsewhere.
            with contextlib.suppress(CommitFailedError):
                await consumer.commit()
            last = time.time()
    finally:
        await consumer.stop()
        await producer.stop()


def process(source: str, sink: str, group: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(passthrough(source, sink, group)))


async def topics(records: int) -> tuple[str, str, str]:
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench-rawp-in-{run}", f"bench-rawp-out-{run}"
    await it.create_topics([source, sink])
    await it.produce(source, [it.intake(run, i) for i in range(records)])
    return source, sink, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for n in args.processes:
        source, sink, run = asyncio.run(topics(args.records))
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        group = f"bench-rawp-{run}"
        workers = [
            multiprocessing.Process(target=process, args=(source, sink, group, out))
            for _ in range(n)
        ]
        for worker in workers:
            worker.start()
        results = [out.get() for _ in workers]
        for worker in workers:
            worker.join()
        moved = sum(r[0] for r in results)
        first = min(r[1] for r in results if r[1] is not None)
        last = max(r[2] for r in results if r[1] is not None)
        print(f"{n} process(es): {moved:,} moved, {args.records / (last - first):,.0f} rec/s")


if __name__ == "__main__":
    main()

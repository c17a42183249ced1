"""CPU per record of the ways a pre-serialized, keyed record reaches the broker (session 25).

On the stack's broker (`scripts/stack env`), one producer, 100,000 records of
300 bytes under keys like the product's (`t1|user123@example.com`), each way
in turn and flushed, two rounds:

- `send, stock partitioner`: aiokafka's `send` with its pure-Python murmur2;
- `send, compiled murmur2`: the same with stream/partitioner.py's;
- `add_message`: stream/produce.py's path of session 25 (the partition
  chosen by `fast_partition`, the record appended with aiokafka's
  `add_message`, a future per record);
- `produce`: stream/produce.py's `produce` itself (session 26: appended to
  the open batch's builder, one done callback per batch);
- in transactions of 500 records on a transactional producer, as the change
  relay sends (session 27): aiokafka's `send` with every record's future
  awaited (the relay before), and stream/produce.py's `append` with each
  distinct batch's future awaited once (the relay now);
- and murmur2 alone, aiokafka's and the compiled one.

Process CPU, so the producer's sender (the produce requests) is included.

    eval "$(scripts/stack env)"; .venv/bin/python bench/send_paths.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as python_murmur2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import stream.produce
from stream.partitioner import KafkaPartitioner, murmur2
from stream.produce import append, fast_partition, produce

TOPIC = "bench-send-paths"
RECORDS = 100_000


async def per_record(
    producer: AIOKafkaProducer, send: Callable[[bytes, bytes], Awaitable[Any]], keys: list[bytes]
) -> float:
    value = b"v" * 300
    start = time.process_time()
    for key in keys:
        await send(key, value)
    await producer.flush()
    return (time.process_time() - start) / len(keys) * 1e6


async def measure(bootstrap: str, name: str, partitioner: Any, keys: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, partitioner=partitioner, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        await producer.client._wait_on_metadata(TOPIC)

        async def send(key: bytes, value: bytes) -> Any:
            return await producer.send(TOPIC, value, key=key)

        async def add_message(key: bytes, value: bytes) -> Any:
            chosen = fast_partition(producer, TOPIC, key, value, None)
            assert chosen is not None
            tp = TopicPartition(TOPIC, chosen)
            return await producer._message_accumulator.add_message(tp, key, value, 30.0, headers=[])

        async def produced(key: bytes, value: bytes) -> Any:
            await produce(TOPIC, key, value)

        # `produce` sends with the app's producer: this one stands in for it.
        stream.produce.app = SimpleNamespace(producer=SimpleNamespace(_producer=producer))  # type: ignore[assignment]
        for round_ in (1, 2):
            cpu = await per_record(producer, send, keys)
            print(f"round {round_}: send, {name} partitioner {cpu:5.1f} µs per record")
            if name == "compiled":
                cpu = await per_record(producer, add_message, keys)
                print(f"round {round_}: add_message (session 25) {cpu:5.1f} µs per record")
                cpu = await per_record(producer, produced, keys)
                print(f"round {round_}: produce (stream/produce.py) {cpu:5.1f} µs per record")
    finally:
        await producer.stop()


async def transactional(bootstrap: str, keys: list[bytes]) -> None:
    """The relay's way: transactions of 500 records, every send acknowledged before the commit."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        partitioner=KafkaPartitioner(),
        transactional_id=f"bench-send-paths-{os.getpid()}",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    value = b"v" * 300
    try:
        await producer.client._wait_on_metadata(TOPIC)
        for round_ in (1, 2):
            for way in ("send", "append"):
                start = time.process_time()
                for first in range(0, len(keys), 500):
                    async with producer.transaction():
                        waits: dict[int, Any] = {}
                        for key in keys[first : first + 500]:
                            if way == "send":
                                done = await producer.send(TOPIC, value, key=key)
                            else:
                                done = await append(producer, TOPIC, key, value)
                            waits[id(done)] = done
                        await asyncio.gather(*waits.values())
                cpu = (time.process_time() - start) / len(keys) * 1e6
                print(f"round {round_}: in transactions, {way} {cpu:5.1f} µs per record")
    finally:
        await producer.stop()


async def main() -> None:
    bootstrap = os.environ.get("CS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 8, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    keys = [f"t1|user{i}@example.com".encode() for i in range(RECORDS)]
    await measure(bootstrap, "stock", DefaultPartitioner(), keys)
    await measure(bootstrap, "compiled", KafkaPartitioner(), keys)
    await transactional(bootstrap, keys)
    for label, hash_ in (("aiokafka's", python_murmur2), ("compiled", murmur2)):
        start = time.process_time()
        for key in keys:
            hash_(key)
        print(f"murmur2, {label}: {(time.process_time() - start) / RECORDS * 1e6:.2f} µs per key")


if __name__ == "__main__":
    asyncio.run(main())

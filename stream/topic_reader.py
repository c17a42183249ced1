"""Reading a whole topic with a group-less consumer: every partition, from the beginning."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


async def assign_from_beginning(
    consumer: AIOKafkaConsumer, topic: str, attempts: int = 100
) -> dict[TopicPartition, int]:
    """Assign every partition of `topic` at its beginning; returns their end offsets now.

    The topic's metadata may not be known yet (a worker creates it as it
    starts): it is asked for every 0.1 s, `attempts` times, before LookupError.
    """
    for _ in range(attempts):
        found = consumer.partitions_for_topic(topic)
        if found:
            partitions = [TopicPartition(topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            return ends
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {topic} not found")


async def reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether the consumer's position is at or past each of these end offsets."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True

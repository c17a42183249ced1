"""A pre-serialized record handed to aiokafka's accumulator: the end of `app.producer.send`.

Every record the agents send themselves (`stream.topics.send_raw`, the
changelog records of `stream.tables.changelog`) is bytes already, for a topic
whose metadata the producer has. On its way, Faust's `Producer.send` still
converts headers, fires its `on_produce_message` signal (read only by Faust's
livecheck) and wraps the call, and aiokafka's `send` awaits its metadata
check, builds the topic's partition set twice (`partitions_for_topic`,
`available_partitions_for_topic`), runs its serializers and estimates the
record's size, before it appends the record to the partition's batch with
`MessageAccumulator.add_message`. `produce` appends it there directly, on the
partition aiokafka would choose (Kafka's murmur2, stream/partitioner.py), and
returns the same future: the broker's acknowledgement, which every producer
flush waits for as before.

It takes the path only when nothing on the way could have mattered: the
producer started and not transactional, the topic's partitions known, the
partitioner ours, a key given and the record well under the request size
limit; otherwise the record goes through `app.producer.send`, which then
waits for metadata or raises as before. aiokafka's private attributes are
read here, so the project pins aiokafka below 0.15, and
tests/integration/test_produce.py holds the path equal to aiokafka's `send`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer, TopicPartition

from stream.app import app
from stream.partitioner import KafkaPartitioner, partition_for

# Room for a record's framing within `max_request_size` (aiokafka's estimate for
# a record with short headers is well under this).
_FRAMING = 256


def fast_partition(
    client: Any, topic: str, key: bytes | None, value: bytes, partition: int | None
) -> int | None:
    """The partition to append to directly, or None when the record must go aiokafka's way."""
    if not isinstance(client, AIOKafkaProducer) or key is None:
        return None
    txn = client._txn_manager
    if txn is not None and txn.transactional_id is not None:
        return None
    if not isinstance(client._partitioner, KafkaPartitioner):
        return None
    partitions = client._metadata._partitions.get(topic)
    if not partitions or len(key) + len(value) + _FRAMING > client._max_request_size:
        return None
    if partition is None:
        return partition_for(key, len(partitions))
    return partition if partition in partitions else None


async def produce(
    topic: str, key: bytes | None, value: bytes, partition: int | None = None
) -> asyncio.Future[Any]:
    """Send `value` (bytes) under `key` to `topic`; returns the acknowledgement's future."""
    client: Any = getattr(app.producer, "_producer", None)
    chosen = fast_partition(client, topic, key, value, partition)
    if chosen is None:
        sent = await app.producer.send(topic, key, value, partition, None, None)
        return cast("asyncio.Future[Any]", sent)
    future = await client._message_accumulator.add_message(
        TopicPartition(topic, chosen), key, value, client._request_timeout_ms / 1000, headers=[]
    )
    return cast("asyncio.Future[Any]", future)

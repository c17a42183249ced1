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

What the acknowledgement is for is handled here, once per produce batch
rather than once per record. A done callback on each record's future costs
~4 µs (a context copy, a loop handle and a call), paid for every record the
agents send: the engagement path had five such callbacks per input (three
logging a failed send, two storing a changelog record's acknowledged offset),
the scoring step one per event. On the direct path the callback goes on the
future of the record's batch (aiokafka resolves it before the records'
futures, from the same produce response): a failed batch is logged once, with
its record count, and a changelog batch stores the offset of its last record
as its table's persisted offset (Faust stores each record's, a RocksDB put
per record). On aiokafka's path each record keeps a callback of its own.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Protocol, cast

from aiokafka import AIOKafkaProducer, TopicPartition

from stream.app import app
from stream.metrics import UNDELIVERED
from stream.partitioner import KafkaPartitioner, partition_for
from stream.transport import note_refused

log = logging.getLogger(__name__)


class OffsetStore(Protocol):
    """Where a changelog partition's acknowledged offset is kept (Faust's `StoreT`)."""

    def set_persisted_offset(self, tp: Any, offset: int) -> None: ...


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
    topic: str,
    key: bytes | None,
    value: bytes,
    partition: int | None = None,
    offsets: OffsetStore | None = None,
) -> asyncio.Future[Any]:
    """Send `value` (bytes) under `key` to `topic`; returns the acknowledgement's future.

    A failed delivery is logged (without the record). With `offsets`, the
    store of a changelog topic: its persisted offset for the partition
    follows the acknowledgements. A partition's records always come with the
    same store (a changelog partition is one table's).
    """
    client: Any = getattr(app.producer, "_producer", None)
    chosen = fast_partition(client, topic, key, value, partition)
    if chosen is None:
        sent = cast(
            "asyncio.Future[Any]", await app.producer.send(topic, key, value, partition, None, None)
        )
        sent.add_done_callback(partial(_record_done, topic, offsets))
        return sent
    tp = TopicPartition(topic, chosen)
    accumulator = client._message_accumulator
    timeout = client._request_timeout_ms / 1000
    future = await accumulator.add_message(tp, key, value, timeout, headers=[])
    # add_message appended the record to the partition's last batch and
    # returned without waiting since: that batch is still the last one.
    batches = accumulator._batches.get(tp)
    batch = batches[-1] if batches else None
    if batch is None or not batch._msg_futures or batch._msg_futures[-1][0] is not future:
        future.add_done_callback(partial(_record_done, topic, offsets))
    elif _watched.get(tp) is not batch:
        _watched[tp] = batch
        batch.future.add_done_callback(partial(_batch_done, batch, offsets))
    return cast("asyncio.Future[Any]", future)


# The batch whose future is watched, per partition: one callback per batch.
_watched: dict[TopicPartition, Any] = {}


def _batch_done(batch: Any, offsets: OffsetStore | None, done: asyncio.Future[Any]) -> None:
    tp = batch.tp
    if _watched.get(tp) is batch:
        del _watched[tp]  # no reference kept to a delivered batch
    if done.cancelled():
        return
    failed = done.exception()
    if failed is not None:
        for record, _ in batch._msg_futures:
            if record.done() and not record.cancelled():
                record.exception()  # retrieved here: asyncio would log each one unretrieved
        _failed(tp.topic, len(batch._msg_futures), failed)
        return
    delivered = done.result()
    if offsets is not None and delivered is not None and batch._msg_futures:
        # The batch's base offset plus its last record's offset within it.
        offsets.set_persisted_offset(tp, delivered.offset + batch._msg_futures[-1][1].offset)


def _record_done(topic: str, offsets: OffsetStore | None, done: asyncio.Future[Any]) -> None:
    if done.cancelled():
        return
    failed = done.exception()
    if failed is not None:
        _failed(topic, 1, failed)
        return
    delivered = done.result()
    if offsets is not None and delivered is not None:
        offsets.set_persisted_offset(delivered.topic_partition, delivered.offset)


def _failed(topic: str, records: int, failed: BaseException) -> None:
    """Records the broker did not take: logged and counted, never with their content.

    From then on the producer's flush raises (stream/transport.py, fix 7): no
    commit passes the inputs that made them.
    """
    note_refused(records)
    UNDELIVERED.labels(topic).inc(records)
    log.error("%s: %d record(s) not delivered: %s", topic, records, type(failed).__name__)

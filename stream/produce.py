"""A pre-serialized record appended to aiokafka's open batch: the end of `app.producer.send`.

Every record the agents send themselves (`stream.topics.send_raw`, the
changelog records of `stream.tables.changelog`) is bytes already, for a topic
whose metadata the producer has. On its way, Faust's `Producer.send` still
converts headers, fires its `on_produce_message` signal (read only by Faust's
livecheck) and wraps the call, and aiokafka's `send` awaits its metadata
check, builds the topic's partition set twice (`partitions_for_topic`,
`available_partitions_for_topic`), runs its serializers and estimates the
record's size, before `MessageAccumulator.add_message` appends the record to
the partition's open batch and makes it a future of its own. `produce`
appends it to that batch's builder directly (what `MessageBatch.append`
does), on the partition aiokafka would choose (Kafka's murmur2,
stream/partitioner.py); only when the partition has no open batch, or it is
full, does it go through `add_message`, which makes one or waits for room.
Every producer flush waits for the batch as before (aiokafka's `flush` waits
for each batch's future).

It takes the path only when nothing on the way could have mattered: the
producer started and not transactional, the topic's partitions known, the
partitioner ours, a key given and the record well under the request size
limit; otherwise the record goes through `app.producer.send`, which then
waits for metadata or raises as before. aiokafka's private attributes are
read here, so the project pins aiokafka below 0.15, and
tests/integration/test_produce.py holds the path equal to aiokafka's `send`.

What the acknowledgement is for is handled once per produce batch, not once
per record: a future per record (~1 µs to make and ~1 µs to resolve) and a
done callback on it (~4 µs: a context copy, a loop handle and a call) were
paid for every record the agents send, five times per engagement input.
The callback goes on the future of the record's batch: a failed batch is
logged once, with its record count, and counted (no commit passes it:
stream/transport.py, fix 7); a changelog batch stores the offset of its last
record as its table's persisted offset (Faust stores each record's, a
RocksDB put per record). A record sent aiokafka's way keeps a future and a
callback of its own.

`append` is the same step for the change relay's transactional producers
(stream/relay.py): a record joins its partition's open batch, which this
transaction made (aiokafka adds a partition to the transaction when it makes
the partition's batch, and a commit closes every batch), and the caller
awaits each distinct batch's future once, not a future per record.
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
    client: Any, topic: str, key: bytes | None, value: bytes | None, partition: int | None
) -> int | None:
    """The partition to append to directly, or None when the record must go aiokafka's way."""
    if not isinstance(client, AIOKafkaProducer) or key is None or value is None:
        return None
    txn = client._txn_manager
    if txn is not None and txn.transactional_id is not None:
        return None
    return _direct_partition(client, topic, key, value, partition)


def _direct_partition(
    client: Any, topic: str, key: bytes, value: bytes, partition: int | None
) -> int | None:
    """`fast_partition` for any started producer, transactional or not."""
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
    value: bytes | None,
    partition: int | None = None,
    offsets: OffsetStore | None = None,
) -> None:
    """Send `value` under `key` to `topic`, to be acknowledged before the next flush ends.

    A None `value` is a tombstone (it goes aiokafka's way). A failed delivery
    is logged and counted (without the record). With `offsets`, the store of a
    changelog topic: its persisted offset for the partition follows the
    acknowledgements. A partition's records always come with the same store (a
    changelog partition is one table's).
    """
    client: Any = getattr(app.producer, "_producer", None)
    chosen = fast_partition(client, topic, key, value, partition)
    if chosen is None or value is None:  # fast_partition gave None for a tombstone already
        sent = await app.producer.send(topic, key, value, partition, None, None)
        cast("asyncio.Future[Any]", sent).add_done_callback(partial(_record_done, topic, offsets))
        return
    tp = TopicPartition(topic, chosen)
    accumulator = client._message_accumulator
    appended = _append_open(client, tp, key, value, None)
    if appended is not None:
        _watch(tp, appended[0], appended[1], offsets)
        return
    # No open batch (or it is full): aiokafka makes one, or waits for room.
    timeout = client._request_timeout_ms / 1000
    future = await accumulator.add_message(tp, key, value, timeout, headers=[])
    # add_message appended the record to the partition's last batch and
    # returned without waiting since: that batch is still the last one.
    batch = accumulator._batches[tp][-1]
    if batch._msg_futures and batch._msg_futures[-1][0] is future:
        _watch(tp, batch, batch._msg_futures[-1][1].offset, offsets)
    else:  # not where it should be: the record's own future says when it is done
        future.add_done_callback(partial(_record_done, topic, offsets))


def _append_open(
    client: Any, tp: TopicPartition, key: bytes | None, value: bytes, timestamp_ms: int | None
) -> tuple[Any, int] | None:
    """What MessageBatch.append does, without a future of the record's own.

    Returns the partition's open batch and the record's offset within it, or
    None when there is no open batch or it is full.
    """
    accumulator = client._message_accumulator
    batches = accumulator._batches.get(tp)
    if batches and not accumulator._closed and accumulator._exception is None:
        batch = batches[-1]
        appended = batch._builder.append(timestamp=timestamp_ms, key=key, value=value, headers=[])
        if appended is not None:
            return batch, appended.offset
    return None


async def append(
    client: AIOKafkaProducer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None = None,
    timestamp_ms: int | None = None,
) -> asyncio.Future[Any]:
    """Send a record on a producer of our own (the relay's); returns what says it is delivered.

    That is the future of the record's batch when the record joined an open
    one (shared by the batch's records: await each distinct one once), or
    the record's own when aiokafka's `add_message` or `send` took it. Inside
    a transaction, a record may join a batch only as aiokafka's `send` would:
    the batch was made, and its partition added to the transaction, by this
    transaction (a commit closes every batch). Falls back to `send` where
    `produce` would (partitions not known, another partitioner, a record
    near the request size limit, no key or no value: `_direct_partition`)
    and outside a transaction, where `send` raises.
    """
    raw: Any = client
    txn = raw._txn_manager
    outside = txn is not None and txn.transactional_id is not None and not txn.is_in_transaction()
    chosen = None
    if not outside and key is not None and value is not None:
        chosen = _direct_partition(raw, topic, key, value, partition)
    if chosen is None or key is None or value is None:
        return cast(
            "asyncio.Future[Any]",
            await client.send(
                topic, value, key=key, partition=partition, timestamp_ms=timestamp_ms
            ),
        )
    tp = TopicPartition(topic, chosen)
    appended = _append_open(raw, tp, key, value, timestamp_ms)
    if appended is not None:
        return cast("asyncio.Future[Any]", appended[0].future)
    timeout = raw._request_timeout_ms / 1000
    return cast(
        "asyncio.Future[Any]",
        await raw._message_accumulator.add_message(
            tp, key, value, timeout, timestamp_ms=timestamp_ms, headers=[]
        ),
    )


class _Watched:
    """A batch being filled, and what its acknowledgement is for."""

    __slots__ = ("batch", "last", "offsets", "records")

    def __init__(self, batch: Any, offsets: OffsetStore | None) -> None:
        self.batch = batch
        self.offsets = offsets
        self.records = 0
        self.last = 0  # the offset of the last record within the batch


# The batch being watched, per partition: one callback per batch.
_watched: dict[TopicPartition, _Watched] = {}


def _watch(tp: TopicPartition, batch: Any, offset: int, offsets: OffsetStore | None) -> None:
    watched = _watched.get(tp)
    if watched is None or watched.batch is not batch:
        watched = _watched[tp] = _Watched(batch, offsets)
        batch.future.add_done_callback(partial(_batch_done, tp, watched))
    watched.records += 1
    watched.last = offset


def _batch_done(tp: TopicPartition, watched: _Watched, done: asyncio.Future[Any]) -> None:
    if _watched.get(tp) is watched:
        del _watched[tp]  # no reference kept to a delivered batch
    if done.cancelled():
        return
    failed = done.exception()
    if failed is not None:
        for record, _ in watched.batch._msg_futures:
            if record.done() and not record.cancelled():
                record.exception()  # retrieved here: asyncio would log each one unretrieved
        _failed(tp.topic, watched.records, failed)
        return
    delivered = done.result()
    if watched.offsets is not None and delivered is not None:
        # The batch's base offset plus its last record's offset within it.
        watched.offsets.set_persisted_offset(tp, delivered.offset + watched.last)


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

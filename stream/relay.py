"""The change relay: the outbox's change events onto `contacts.changes.v1`, each once.

The contact partitions publish change events at least once: a worker killed
after it sent a change but before its input offsets were committed replays
the input and sends the same change again. Faust's `exactly_once` was no way
out (docs/reliability.md), so the agents send their changes to an internal
outbox topic, and this relay copies the outbox to the changes topic in Kafka
transactions, dropping the copies (stream/domain/outbox.py). A reader of the
changes topic with `isolation_level=read_committed` sees each `change_id` once.

Per outbox partition, one transaction holds:
- the partition's new change events, sent by key (the partition the agents
  used to send them to);
- the relay's marks (per contact, the highest version published) for them,
  in a compacted topic whose partition matches the outbox partition;
- the outbox offset after the batch (`send_offsets_to_transaction`).
So the changes, the marks and the position commit together or not at all.

Each outbox partition has a transactional producer of its own, with an id
derived from the partition: the worker that takes a partition over starts
its producer with that id, which fences the previous owner (a worker that
was killed or lost the group) and ends its open transaction before the new
owner reads the marks and the committed offset. This is the per-partition
producer scheme Kafka Streams used before KIP-447, which aiokafka lacks.

The relay is a service with a consumer of its own (group `{app_id}-change-relay`),
like the Redis projection (stream/projection/service.py), so a slow broker
transaction never blocks Faust's fetch loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import ConsumerRecord, TopicPartition
from mode import Service

from stream import metrics
from stream.app import app, settings
from stream.domain.outbox import Outgoing, unpublished
from stream.partitioner import KafkaPartitioner
from stream.produce import append
from stream.security import client_options
from stream.topic_reader import BROKER_FAULTS, reached, retried, start_consumer
from stream.topics import CHANGES, OUTBOX, RELAY_MARKS

log = logging.getLogger(__name__)


@dataclass
class Owned:
    """An outbox partition this worker relays: its producer and what it has published."""

    tp: TopicPartition
    producer: AIOKafkaProducer
    published: dict[bytes, int]


def outgoing(record: ConsumerRecord[bytes, bytes]) -> Outgoing:
    change = orjson.loads(record.value)
    return Outgoing(record.key or b"", int(change["version"]), str(change["change_id"]))


class ChangeRelay(Service):
    """Copies the change outbox to the changes topic in transactions, each change once."""

    batch_size = 2000

    async def on_start(self) -> None:
        self.group = f"{settings.app_id}-change-relay"
        self.owned: dict[int, Owned] = {}
        self.released: dict[int, Owned] = {}
        self.lock = asyncio.Lock()
        # Per partition, how often it was sought back to its committed offset:
        # a batch fetched across a seek is not relayed (see `_relay`).
        self.seeks: dict[int, int] = {}
        self.consumer = await start_consumer(
            self._new_consumer, "change relay", lambda: self.should_stop
        )

    def _new_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=5000,
            **client_options(settings),
        )
        consumer.subscribe([OUTBOX], listener=_Listener(self))
        return consumer

    async def on_stop(self) -> None:
        async with self.lock:
            pass  # the batch in flight is relayed; the loop sees `should_stop` next
        # Not under the lock: a rebalance in progress calls the listener as the consumer stops.
        await self.consumer.stop()
        await _close([*self.owned.values(), *self.released.values()])
        self.owned.clear()
        self.released.clear()

    @Service.task
    async def _relay(self) -> None:
        while not self.should_stop:
            seeks = dict(self.seeks)
            try:
                # Not under the lock: while the group rebalances, getmany waits
                # for the new assignment, and the rebalance listener takes the lock.
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
            except ConsumerStoppedError:
                return
            async with self.lock:
                if self.should_stop:
                    # Stopping: `on_stop` closes the producers once the lock is free,
                    # and a transaction begun now could be left open behind it.
                    return
                relays = []
                for tp, records in batches.items():
                    if not records or tp.partition not in self.owned:
                        continue  # not ours now: its owner reads from the committed offset
                    if self.seeks.get(tp.partition) != seeks.get(tp.partition):
                        # Sought back (rebalance, reopen) while this was fetched: the
                        # records may come from either side of the seek. Read again
                        # from the committed offset; the batch is not relayed.
                        await self._seek_committed(tp)
                        continue
                    relays.append(self._relay_batch(self.owned[tp.partition], records))
                await asyncio.gather(*relays)

    async def _relay_batch(
        self, owned: Owned, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        changes = [outgoing(r) for r in records]
        keep, marks = unpublished(changes, owned.published)
        producer = owned.producer
        try:
            async with producer.transaction():
                # With the outbox record's timestamp: when the contact partition
                # published the change, not when the relay copied it (readers
                # order changes across partitions by it; tests/integration/reference.py).
                # Records join their partition's open batch (stream/produce.py):
                # each distinct batch's future is awaited once.
                sent: dict[int, asyncio.Future[Any]] = {}
                for i in keep:
                    record = records[i]
                    done = await append(
                        producer,
                        CHANGES,
                        record.key,
                        record.value,
                        timestamp_ms=record.timestamp,
                    )
                    sent[id(done)] = done
                for mark, version in marks.items():
                    done = await append(
                        producer, RELAY_MARKS, mark, b"%d" % version, owned.tp.partition
                    )
                    sent[id(done)] = done
                # The offsets join the transaction while the records are in flight
                # (aiokafka sends AddOffsetsToTxn and TxnOffsetCommit beside the
                # produce requests: two round trips off each transaction), and every
                # record is acknowledged before the commit: aiokafka fails a batch
                # whose retries ran out (a broker down past the delivery timeout)
                # without failing the transaction, so a commit would have published
                # the rest and moved the offset past the lost record
                # (test_broker_restart lost one change that way). A failed send
                # raises here, and leaving the block aborts the transaction, the
                # offsets with it.
                position = producer.send_offsets_to_transaction(
                    {owned.tp: records[-1].offset + 1}, self.group
                )
                acks = await asyncio.gather(position, *sent.values(), return_exceptions=True)
                if failed := [a for a in acks if isinstance(a, BaseException)]:
                    raise failed[0]
        except BROKER_FAULTS as exc:
            # A broker fault, or ProducerFenced: another worker opened this
            # partition's producer since, so this one's assignment is stale or
            # the other's is. Either way the partition starts over from what is
            # committed; reopening fences the other, and the group settles who
            # owns it.
            log.warning(
                "change relay transaction on outbox partition %d failed (%s); reopening it",
                owned.tp.partition,
                type(exc).__name__,
            )
            await self._reopen(owned)
            return
        owned.published.update(marks)
        metrics.child(metrics.OUTPUTS, CHANGES).inc(len(keep))
        if copies := len(records) - len(keep):
            metrics.RELAY_COPIES.inc(copies)

    async def _reopen(self, owned: Owned) -> None:
        """After a failed transaction: a new producer, the marks and offset as committed."""
        self.owned.pop(owned.tp.partition, None)
        await _close([owned])
        self.owned.update(await self._open([owned.tp]))

    async def take(self, assigned: Iterable[TopicPartition]) -> None:
        """Partitions assigned: keep those this worker had, open the others."""
        async with self.lock:
            mine = [tp for tp in assigned if tp.topic == OUTBOX]
            kept = {
                tp.partition: self.released.pop(tp.partition)
                for tp in mine
                if tp.partition in self.released
            }
            await _close(self.released.values())
            self.released.clear()
            for tp in mine:
                if tp.partition in kept:
                    await self._seek_committed(tp)
            self.owned.update(kept)
            self.owned.update(await self._open([tp for tp in mine if tp.partition not in kept]))

    async def release(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions revoked: no batch of theirs runs until they are assigned again."""
        async with self.lock:
            for tp in revoked:
                owned = self.owned.pop(tp.partition, None)
                if owned is not None:
                    # Kept open: an eager rebalance revokes everything and then
                    # usually gives most of it back, and nobody else can have
                    # published on it in between.
                    self.released[tp.partition] = owned

    async def _open(self, tps: Sequence[TopicPartition]) -> dict[int, Owned]:
        """Producers started (fencing the previous owners), marks read, positions set."""
        delay = 0.1
        while tps and not self.should_stop:
            producers: list[AIOKafkaProducer] = []
            try:
                producers = [self._producer(tp.partition) for tp in tps]
                await asyncio.gather(*(p.start() for p in producers))
                marks = await self._marks([tp.partition for tp in tps])
                for tp in tps:
                    await self._seek_committed(tp)
                log.info(
                    "change relay owns outbox partitions %s (%d marks read)",
                    sorted(tp.partition for tp in tps),
                    sum(len(m) for m in marks.values()),
                )
                return {
                    tp.partition: Owned(tp, producer, marks[tp.partition])
                    for tp, producer in zip(tps, producers, strict=True)
                }
            except BROKER_FAULTS as exc:
                await _stop(producers)
                if not retried(exc):  # a refusal (stream.topic_reader.REFUSALS)
                    raise
                log.warning(
                    "change relay cannot open outbox partitions (%s); retrying in %.1fs",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return {}

    def _producer(self, partition: int) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            transactional_id=f"{self.group}-{partition}",
            enable_idempotence=True,
            # No linger: a transaction's records are all appended before its first
            # produce request can go (their partitions join the transaction first).
            linger_ms=0,
            partitioner=KafkaPartitioner(),  # the changes go where the workers' records go
            **client_options(settings),
        )

    async def _seek_committed(self, tp: TopicPartition) -> None:
        self.seeks[tp.partition] = self.seeks.get(tp.partition, 0) + 1
        committed = await self.consumer.committed(tp)
        if committed is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, committed)

    async def _marks(self, partitions: Sequence[int]) -> dict[int, dict[bytes, int]]:
        """The relay's marks of these partitions, as committed (read to the end)."""
        marks: dict[int, dict[bytes, int]] = {p: {} for p in partitions}
        reader = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **client_options(settings),
        )
        await reader.start()
        try:
            tps = [TopicPartition(RELAY_MARKS, p) for p in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            while not await reached(reader, ends):
                fetched = await reader.getmany(timeout_ms=500, max_records=20000)
                for tp, records in fetched.items():
                    into = marks[tp.partition]
                    for r in records:
                        into[r.key or b""] = int(r.value or b"0")
        finally:
            await reader.stop()
        return marks


async def _close(owned: Iterable[Owned]) -> None:
    await _stop([o.producer for o in owned])


async def _stop(producers: Iterable[AIOKafkaProducer]) -> None:
    # A producer whose broker is gone may never flush; its open transaction is
    # aborted by the next producer started with its id.
    for producer in producers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 10)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, relay: ChangeRelay) -> None:
        self.relay = relay

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.relay.release(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.relay.take(assigned)


if settings.outputs_in_worker:
    app.service(ChangeRelay)

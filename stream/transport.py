"""The project's Kafka transport: Faust's aiokafka driver with two fetch fixes.

Registered under the ``faust.transports`` entry point as ``cskafka`` and used
by default (``CS_KAFKA_TRANSPORT``); ``kafka`` selects Faust's stock driver.
docs/findings/faust-fetch-drop.md tells how the fault was found.

1. Faust hands the fetcher its *live* set of active partitions. Recovery
   empties that set (it pauses every assigned partition) while a fetch may be
   waiting, and aiokafka reads an empty set as "every partition": it returns
   the buffered records of all partitions and advances their positions, and
   Faust drops the records it did not ask for. We fetch with a copy taken when
   the fetch starts, and an empty copy fetches nothing.
2. Faust's ``getmany`` skips fetched records of a partition that is not
   active at that moment (and stops at a flow stop or a new generation),
   although aiokafka's position has moved past them; its offset bookkeeping
   then commits over the hole. A partition never committed is not even
   rewound by recovery (aiokafka's ``seek_to_committed`` only seeks to an
   offset above 0). We move the position back to the first record not handed
   over, so a later fetch returns it.

Tried and dropped: rewinding never-committed partitions to their beginning
during recovery. Recovery resumes the flow before that seek completes, and a
2,000-intake race lost the first record a surviving worker received after a
rebalance in 3 of ~17 runs (stock Faust: 0 of 8; this transport without the
rewind: 0 of 8). Fix 2 covers the case the rewind was meant for.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Set
from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, ConsumerT, Message

RecordMap = Mapping[TP, list[Any]]
log = logging.getLogger(__name__)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: Set[TP] | None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        if active_partitions is None:  # a client-only app fetches everything
            return await super()._fetch_records(
                consumer,
                active_partitions,  # type: ignore[arg-type]
                timeout=timeout,
                max_records=max_records,
            )
        partitions = set(active_partitions)
        if not partitions:
            return {}
        return await super()._fetch_records(
            consumer, partitions, timeout=timeout, max_records=max_records
        )

    async def seek_now(self, offsets: Mapping[TP, int]) -> None:
        """Seek in the consumer's own thread, between two fetches."""
        consumer = self._ensure_consumer()
        assigned = consumer.assignment()
        for tp, offset in offsets.items():
            if tp in assigned:
                consumer.seek(tp, offset)


class Consumer(driver.Consumer):
    """Faust's consumer, except that a record it does not deliver is fetched again.

    Faust's `getmany` silently skips fetched records of a partition that is no
    longer active (paused by recovery or flow control, or revoked), and stops
    delivering when the flow stops or the generation changes. aiokafka's
    position has moved past them, and the offset bookkeeping counts the hole
    as a gap to commit over: the records are lost for good (seen: the first
    intake of a partition, fetched while a second worker joined, never
    processed yet committed). Here every partition's position is moved back
    to its first record not delivered, so a later fetch returns it.
    """

    _thread: ConsumerThread

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            await self._refetch({tp: recs[0].offset for tp, recs in records.items() if recs})
            return
        delivered: dict[TP, int] = {}  # the last offset handed over, per partition
        held: set[TP] = set()  # partitions with a record held back: nothing after it goes
        try:
            for tp, record in self.scheduler.iterate(records):
                if tp in held:
                    continue
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if (
                    active_partitions is None
                    or tp in active_partitions
                    or tp in self._buffered_partitions
                ):
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    self._note_first(tp, record.offset, generation_id)
                    delivered[tp] = record.offset
                    yield tp, self._to_message(tp, record)
                else:
                    held.add(tp)
        finally:
            # Whatever ended the batch (a paused partition, the flow stopping, a
            # new generation, the caller leaving early): refetch what was not handed over.
            if not self.should_stop:
                await self._refetch(
                    {
                        tp: rest[0]
                        for tp, recs in records.items()
                        if (rest := [r.offset for r in recs if r.offset > delivered.get(tp, -1)])
                    }
                )

    def _note_first(self, tp: TP, offset: int, generation_id: int) -> None:
        # One line per partition and generation: where delivery started. A
        # record lost before delivery shows as a first offset past it.
        seen: dict[TP, int] = self.__dict__.setdefault("_first_delivered", {})
        if seen.get(tp) != generation_id:
            seen[tp] = generation_id
            log.debug(
                "generation %d: first record of %s[%d] at offset %d",
                generation_id,
                tp.topic,
                tp.partition,
                offset,
            )

    async def _refetch(self, first_offsets: Mapping[TP, int]) -> None:
        """Move positions back so these records are fetched again."""
        assigned = self.assignment()
        back = {tp: offset for tp, offset in first_offsets.items() if tp in assigned}
        if back:
            log.info("fetching %d records' partitions again: not delivered", len(back))
            await self._thread.call_thread(self._thread.seek_now, back)


class Transport(driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = Consumer

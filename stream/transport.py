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
2. Recovery rewinds stream partitions with ``seek_to_committed``, which
   aiokafka only does for a committed offset above 0. A partition whose
   previous owner died before its first commit kept its advanced position and
   its backlog was never processed. We rewind such partitions to the beginning
   (the group has processed nothing durable there yet).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, ConsumerT

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

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        never_committed = [
            tp
            for tp, offset in committed.items()
            if not offset and tp.topic not in changelogs  # None, or committed at 0
        ]
        if never_committed:
            log.info("rewinding %d never-committed partitions", len(never_committed))
            await self.seek_to_beginning(*never_committed)
        return committed


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = Consumer

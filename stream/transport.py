"""The project's Kafka transport: Faust's aiokafka driver with its fetch and flush fixed.

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

3. Faust reads the generation after a fetch, so a batch fetched under the
   previous assignment was delivered (or, by fix 2, sought back to) under the
   new one, skipping what the rebalance had dropped from the stream buffers.
   The generation is taken before the fetch, a stale batch is not delivered,
   and a partition is sought back only where this assignment fetched it.
4. The producer's changelog buffer flushes what it held when asked
   (`SnapshotFlushBuffer`), so no commit overtakes table writes.
5. A fetched batch of a changelog partition that the recovery service
   restores by batches (stream/tables/recovery.py) goes to it whole, not
   record by record through the conductor and the recovery's queue.
6. A partition whose commits have stopped is read again. Faust commits a
   partition only up to the first hole in its acknowledged offsets, so a
   hole that nothing will fill (its records not being processed, no fetch
   gap over it) stops that partition's commits for good while its records
   go on being processed (seen once after a broker outage,
   docs/reliability.md). After `CS_COMMIT_STALL_SECONDS` the worker logs it
   and asks the group to rebalance, which reads the partition again from its
   committed offset, as a restart would.
7. No commit passes a record the broker refused. aiokafka's `flush` waits for
   every batch, delivered or failed, and Faust then commits the offsets of
   the inputs that made them: a batch the broker refused (a non-retriable
   error, or retries given up after `producer_request_timeout`) was lost
   with only a log line. The records sent through `stream.produce` (every
   record the agents send themselves) are counted when refused
   (`note_refused`), and from then on the producer's `flush` raises: the
   commit that follows it does not happen, the worker stops with the error,
   and its restart processes those inputs again from the last commit.
8. The records of the app's changelog topics stay as aiokafka's record
   parser made them (offset, key, value, timestamp, headers), without the
   `ConsumerRecord` aiokafka builds per record for its callers
   (`PartitionRecords._consumer_record`): the recovery writes only each
   record's key and value (fix 5). aiokafka builds its per-partition record
   iterator from a module-level name, which the worker's consumer thread
   points at `partition_records`: a partition of any topic not registered
   as a changelog gets aiokafka's own iterator. A changelog batch that the
   recovery does not take goes record by record as before, each made a
   `ConsumerRecord` first (`full_record`). An 800-byte record cost 1.27 µs
   to unpack instead of 1.86 µs (CRCs checked, as the worker does), in the
   consumer thread, which shares the GIL with the restore's writes
   (docs/transport.md, 12; docs/performance.md, session 32).

The worker's fetch wait is `CS_FETCH_MAX_WAIT` (Faust's driver fixes
1,500 ms): aiokafka keeps one fetch in flight per broker and asks only for
partitions with nothing buffered, so while the broker holds a fetch of idle
partitions, a busy partition drained meanwhile is not fetched
(docs/performance.md, session 27).

Tried and dropped: rewinding never-committed partitions to their beginning
during recovery. Recovery resumes the flow before that seek completes, and a
2,000-intake race lost the first record a surviving worker received after a
rebalance in 3 of ~17 runs (stock Faust: 0 of 8; this transport without the
rewind: 0 of 8). Fix 2 covers the case the rewind was meant for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Mapping, Set
from typing import Any, ClassVar, cast

import aiokafka
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.structs import ConsumerRecord
from faust.exceptions import ProducerSendError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer
from faust.types import TP, ConsumerT, FutureMessage, Message, ProducerT
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree
from mode import Service, ServiceT

from stream.settings import get_settings

RecordMap = Mapping[TP, list[Any]]
log = logging.getLogger(__name__)


# aiokafka's own per-partition record iterator, kept across a reload of this module.
_StockRecords: Any = getattr(
    aiokafka_fetcher.PartitionRecords, "stock", aiokafka_fetcher.PartitionRecords
)
# The changelog topics whose records stay as parsed (fix 8): every worker's in this process.
_changelogs: set[str] = set()


class ChangelogRecords(_StockRecords):  # type: ignore[misc]
    """aiokafka's iterator over one partition's fetched records, yielding them as parsed.

    Everything but the record itself is aiokafka's: control and aborted
    batches skipped, the next fetch offset kept, CRCs checked when asked.
    """

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        return record


def partition_records(tp: Any, *args: Any, **kwargs: Any) -> Any:
    """What aiokafka's fetcher builds for a partition's fetched records (fix 8)."""
    records = ChangelogRecords if tp.topic in _changelogs else _StockRecords
    return records(tp, *args, **kwargs)


partition_records.stock = _StockRecords  # type: ignore[attr-defined]


def full_record(tp: TP, record: Any) -> ConsumerRecord[bytes, bytes]:
    """The `ConsumerRecord` aiokafka makes of a parsed record (its consumer has no deserializer)."""
    key, value = record.key, record.value
    return ConsumerRecord(
        tp.topic,
        tp.partition,
        record.offset,
        record.timestamp,
        record.timestamp_type,
        key,
        value,
        record.checksum,
        -1 if key is None else len(key),
        -1 if value is None else len(value),
        tuple(record.headers),
    )


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        # Before the consumer exists: its fetcher may build iterators from its start.
        _changelogs.update(self.app.tables.changelog_topics)
        aiokafka_fetcher.PartitionRecords = partition_records
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; the fetcher the consumer starts reads this.
        consumer._fetch_max_wait_ms = int(get_settings().fetch_max_wait * 1000)
        return consumer

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

    async def request_rejoin(self) -> None:
        """Make the consumer rejoin its group: a rebalance, every partition sought to its commit."""
        self._ensure_consumer()._coordinator.request_rejoin()

    async def rewind(self, batches: Mapping[TP, tuple[int, int]]) -> int:
        """Move a partition back to its first undelivered record if this assignment fetched it.

        `batches` maps a partition to (first offset not delivered, last offset
        fetched). The position is moved back only where it still stands right
        after that batch (`last + 1`), i.e. where the batch was fetched by the
        assignment in force now and nothing has moved it since. A batch of a
        previous assignment leaves the new one alone: it starts every partition
        at its committed offset, and a seek to the old batch would skip what
        was delivered before the rebalance and dropped from the stream buffers
        by it. Synchronous from the check to the seek: a rebalance, which runs
        in this thread's loop, cannot come in between.
        """
        consumer = self._ensure_consumer()
        subscription = consumer._subscription.subscription
        assignment = None if subscription is None else subscription.assignment
        if assignment is None:
            return 0
        moved = 0
        for tp, (first, last) in batches.items():
            state = assignment.state_value(tp)
            if state is not None and state.has_valid_position and state.position == last + 1:
                consumer.seek(tp, first)
                moved += 1
        return moved


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
        if not self.flow_active:  # what Faust's _wait_next_records waits for first
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        # Taken before the fetch (Faust takes it after): a batch fetched under
        # the previous assignment must not be delivered under the new one.
        generation_id = self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        delivered: dict[TP, int] = {}  # the last offset handed over, per partition
        held: set[TP] = set()  # partitions with a record held back: nothing after it goes
        try:
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                return
            each = self._restore_changelog_batches(
                records, active_partitions, delivered, held, generation_id
            )
            for tp, record in self.scheduler.iterate(each):
                if tp in held:
                    continue
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if (
                    active_partitions is None
                    or tp in active_partitions
                    or tp in self._buffered_partitions
                ):
                    if tp not in delivered:  # once per partition and batch, not per record
                        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                        self._note_first(tp, record.offset, generation_id)
                    delivered[tp] = record.offset
                    yield tp, _to_message(tp, record, generation_id)
                else:
                    held.add(tp)
        finally:
            # Whatever ended the batch (a paused partition, the flow stopping, a
            # new generation, the caller leaving early): refetch what was not
            # handed over, where this assignment fetched it.
            if not self.should_stop:
                await self._refetch(
                    {
                        tp: (first, recs[-1].offset)
                        for tp, recs in records.items()
                        if (first := _first_undelivered(recs, delivered.get(tp, -1))) is not None
                    }
                )

    def _restore_changelog_batches(
        self,
        records: RecordMap,
        active_partitions: Set[TP] | None,
        delivered: dict[TP, int],
        held: set[TP],
        generation_id: int,
    ) -> RecordMap:
        """Hand each changelog batch the recovery restores whole to it; the rest, per record.

        A batch goes under the same conditions as a record (its partition
        active, the flow on, the generation the fetch's); a batch that may
        not go is held back and fetched again, like a record (see `getmany`).
        Returns the batches left for the per-record path, as `ConsumerRecord`s.
        """
        recovery = getattr(self.app.tables, "_recovery", None)
        takes_batches = getattr(recovery, "takes_batches", None)
        rest: dict[TP, list[Any]] = {}
        for tp, batch in records.items():
            if not (
                batch
                and active_partitions is not None
                and recovery is not None
                and takes_batches is not None
                and takes_batches(tp)
            ):
                # A changelog's records are as parsed (fix 8); the per-record
                # path reads ConsumerRecords.
                parsed = batch and not isinstance(batch[0], ConsumerRecord)
                rest[tp] = [full_record(tp, r) for r in batch] if parsed else batch
            elif (
                self.flow_active
                and self.app.consumer_generation_id == generation_id
                and (tp in active_partitions or tp in self._buffered_partitions)
            ):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                recovery.restore_records(tp, batch)
                delivered[tp] = last = batch[-1].offset
                self._read_offset[tp] = last
            else:
                held.add(tp)
        return rest

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

    async def _refetch(self, batches: Mapping[TP, tuple[int, int]]) -> None:
        """Fetch again what was fetched but not handed over (see ConsumerThread.rewind)."""
        if batches:
            moved = await self._thread.call_thread(self._thread.rewind, batches)
            if moved:
                log.info(
                    "fetching %d partitions again from their first record not delivered", moved
                )

    async def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        """Commit what was processed of the revoked partitions before Faust forgets it.

        Faust's `on_partitions_revoked` drops a revoked partition's acked
        offsets first and only then waits for its streams and commits, so the
        records processed since the last commit (up to `broker_commit_interval`)
        are processed again by the partition's next owner: a test saw ~50 of
        1,000 records twice when a second worker joined, on either transport.
        Here the app's own revocation steps (stop the flow, pause, drop the
        buffered events, wait for the events being processed, commit) run
        first, while the offsets are still known; Faust's then find nothing
        left to wait for.
        """
        if revoked and not self.should_stop and self.assignment():
            app = self.app
            self.stop_flow()
            app.flow_control.suspend()
            self.pause_partitions(self.assignment())
            app.flow_control.clear()
            if app.conf.stream_wait_empty:
                await self.wait_empty()  # ends with a commit
            else:
                await self.commit()
        await super().on_partitions_revoked(revoked)

    # Fix 6 (module docstring): how long a hole may hold a partition's commits, and how
    # often the holes are looked for. 0 turns the watch off.
    stall_seconds: ClassVar[float] = float(os.environ.get("CS_COMMIT_STALL_SECONDS", "60"))
    stall_check_seconds: ClassVar[float] = min(5.0, stall_seconds / 2 or 5.0)

    @Service.task
    async def _watch_commit_stalls(self) -> None:
        """Rebalance when a partition's commits have been held by the same dead hole too long."""
        if self.stall_seconds <= 0:
            return
        seen: dict[TP, tuple[tuple[int, int], float]] = {}  # hole, when first seen
        while not self.should_stop:
            await self.sleep(self.stall_check_seconds)
            if self.app.rebalancing or self.should_stop:
                seen.clear()
                continue
            stalled = self._stalled(seen, time.monotonic())
            if stalled:
                for tp, (first, last) in stalled.items():
                    log.warning(
                        "%s[%d]: commits stopped at offset %d for %.0fs: offsets %d-%d are "
                        "neither acknowledged nor being processed, while later ones are; "
                        "rebalancing to read the partition again from its committed offset",
                        tp.topic,
                        tp.partition,
                        first,
                        self.stall_seconds,
                        first,
                        last,
                    )
                seen.clear()
                await self._thread.call_thread(self._thread.request_rejoin)

    def _stalled(
        self, seen: dict[TP, tuple[tuple[int, int], float]], now: float
    ) -> dict[TP, tuple[int, int]]:
        """The partitions whose dead hole (`dead_hole`) has stood unchanged for `stall_seconds`."""
        lowest: dict[TP, int] = {}  # per partition, the lowest offset still being processed
        for message in list(self._unacked_messages):
            if not message.acked and message.offset < lowest.get(message.tp, message.offset + 1):
                lowest[message.tp] = message.offset
        stalled = {}
        for tp, acked in list(self._acked.items()):
            hole = dead_hole(
                acked, self._committed_offset.get(tp), lowest.get(tp), self._gap.get(tp)
            )
            if hole is None:
                seen.pop(tp, None)
            elif tp not in seen or seen[tp][0] != hole:
                seen[tp] = (hole, now)
            elif now - seen[tp][1] >= self.stall_seconds:
                stalled[tp] = hole
        return stalled

    _pressure_waiter: tuple[TP, asyncio.Future[None]] | None = None

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        waiter = self._pressure_waiter
        if waiter is not None and waiter[0] == tp and not waiter[1].done():
            waiter[1].set_result(None)

    async def _wait_pressure_drop(self, tp: TP) -> None:
        """Wait until the stream buffer `tp` filled has drained to its low mark.

        Called after a record of `tp` had to wait for room in a full buffer.
        Without it the drain loop and the agent take turns one record at a
        time at the full mark, and every record takes the slow path (a task
        for the put, four for `wait_first`). The buffer called
        `on_buffer_full(tp)` when it passed its high mark and calls
        `on_buffer_drop(tp)` when it is down to its low mark (40 %): the
        records after this one then go in without waiting. The flow
        stopping (a rebalance), a stop or a crash ends the wait as they end
        the wait for room.
        """
        fut: asyncio.Future[None] = self.loop.create_future()
        self._pressure_waiter = (tp, fut)
        try:
            if tp in self._buffered_partitions:
                await self.wait_first(fut, self.suspend_flow.wait())
        finally:
            self._pressure_waiter = None
            fut.cancel()

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Faust's drain loop, without four asyncio tasks per message.

        Faust hands each record to the conductor with
        `wait_first(callback(message), suspend_flow.wait())`: a task for the
        callback, one each for the flow, stop and crash events, and an
        `asyncio.wait` — about half of an empty agent's time per record
        (DESIGN.md, Speed). The callback only puts the record in its agents'
        buffers, so it almost always finishes without waiting. Here it is
        started in place (`eager`): when it finishes at once, no task is
        made; when it waits (a full buffer), what is left of it goes to the
        same `wait_first` as before, so a rebalance, a stop or a crash still
        interrupts it. The offset bookkeeping (read offsets, gaps, commits
        every N acks) is Faust's, line for line.
        """
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        # The conductor's `on_message` takes its handler for the partition
        # under `_tp_to_callback_lock` and runs it outside the lock. When the
        # lock is free, taking it does not wait, so reading the map directly
        # is the same step without three coroutines per record; when it is
        # held (the map is being rebuilt), the record goes the conductor's way.
        conductor = self.app.topics
        handlers: Mapping[TP, Callable[[Message], Awaitable[None]]] | None = None
        handlers_lock: asyncio.Lock | None = None
        if callback == getattr(conductor, "on_message", None) and not self.app.client_only:
            handlers = getattr(conductor, "_tp_to_callback", None)
            handlers_lock = getattr(conductor, "_tp_to_callback_lock", None)
        yield_every, since_yield = 100, 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                batch = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in batch:
                        since_yield += 1
                        if since_yield > yield_every:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            handler = (
                                handlers.get(tp)
                                if handlers is not None
                                and handlers_lock is not None
                                and not handlers_lock.locked()
                                else None
                            )
                            coro = callback(message) if handler is None else handler(message)
                            rest = eager(cast(Coroutine[Any, Any, Any], coro))
                            if rest is not None:
                                await self.wait_first(rest, self.suspend_flow.wait())
                                set_read_offset(tp, offset)
                                if tp in self._buffered_partitions:
                                    await self._wait_pressure_drop(tp)
                            else:
                                set_read_offset(tp, offset)
                        else:
                            log.debug("dropped a record below the read offset of %s", tp)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


def dead_hole(
    acked: list[int],
    committed: int | None,
    lowest_in_process: int | None,
    gaps: IntervalTree | None,
) -> tuple[int, int] | None:
    """The offsets (first, last) holding a partition's commits that no acknowledgement will fill.

    Faust's `Consumer._new_offset` commits nothing while the lowest acked
    offset is more than one past the committed one (a committed offset of 0
    or none is not checked); the records not acked are then those from the
    committed offset (the next one to read) to the one before the lowest
    acked. Such a hole fills as its records are processed and acked, unless
    none of them is being processed (`lowest_in_process`, the lowest offset
    delivered and not yet acked, is past it) and no fetch gap covers it
    (Faust counts those offsets as acked when it commits).
    """
    if not acked or not committed:
        return None
    low = min(acked)
    if low - committed <= 1:
        return None
    if lowest_in_process is not None and lowest_in_process < low:
        return None
    if gaps and gaps.overlaps(committed + 1, low):
        return None
    return committed, low - 1


def _first_undelivered(records: list[Any], delivered: int) -> int | None:
    """The offset of the first record above `delivered`, None if there is none.

    Records are in offset order: a batch delivered whole (every changelog
    batch restored at once) is settled by its last record, without a walk.
    """
    if not records or records[-1].offset <= delivered:
        return None
    for record in records:
        if record.offset > delivered:
            return cast(int, record.offset)
    return None


def _to_message(tp: TP, record: Any, generation_id: int) -> ConsumerMessage:
    """The driver's `_to_message`, given the generation rather than reading the app's per record.

    `getmany` checks that the app's generation is still the batch's right
    before each record is made, with no wait in between: the same value.
    """
    timestamp: int | None = record.timestamp
    return ConsumerMessage(
        record.topic,
        record.partition,
        record.offset,
        cast(float, None) if timestamp is None else timestamp / 1000.0,
        record.timestamp_type,
        record.headers,
        record.key,
        record.value,
        record.checksum,
        record.serialized_key_size,
        record.serialized_value_size,
        tp,
        generation_id=generation_id,
    )


def eager(coro: Coroutine[Any, Any, Any]) -> Awaitable[Any] | None:
    """Run `coro` until it first waits: None if it finished, else an awaitable of the rest.

    Python 3.12's eager tasks do this; on 3.11 we step the coroutine by hand.
    The rest is an awaitable whose generator yields what `coro` yielded
    (the future it waits for, with its blocking flag set) to whichever task
    runs it, and passes back what that task sends or throws (a cancellation
    included), exactly as if the task had run `coro` from the start. An
    exception raised before the first wait propagates from here.
    """
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return _Rest(coro, first)


class _Rest:
    """What is left of a started coroutine, to await once (mode's wait_first wants an awaitable)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        return _resume(self.coro, self.first)


def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    step: Callable[[Any], Any]
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # thrown in by the task: pass it on
            step, arg = coro.throw, exc
        else:
            step, arg = coro.send, sent
        try:
            yielded = step(arg)
        except StopIteration as stop:
            return stop.value


class SnapshotFlushBuffer(ProducerBuffer):
    """Faust's buffer of table changelog records, whose `flush` waits for what it holds.

    Faust's `ProducerBuffer.flush` returns as soon as 0.1 s pass without a
    record handed to aiokafka, even with records still queued. The consumer's
    commit flushes the producer and then commits offsets, and a contact
    operation flushes before it unlocks its identifiers, so under load an
    offset could be committed (or a lock released) before the table writes
    of the events it covers were even handed to aiokafka: killed then, the
    worker lost them for good (the crash workload saw a contact's state and
    an unlock's write lost that way).

    Here `flush` takes the records buffered or being handed on at the moment
    it is called and returns when the broker has acknowledged every one of
    them (each record's future is resolved by aiokafka's delivery callback).
    Records buffered after the call are not waited for: a flush that emptied
    the buffer completely (tried in session 16) never returned while agents
    kept writing, which stalled the rebalance race.
    """

    sending: FutureMessage | None = None
    _threaded: bool | None = None

    @property
    def size(self) -> int:
        # The conductor awaits `wait_until_ebb` for every record, which reads
        # `size`; Faust's reads `app.conf.producer_threaded` (a settings
        # descriptor) each time. The setting does not change: read it once.
        threaded = self._threaded
        if threaded is None:
            threaded = self._threaded = bool(cast(Any, self.app).conf.producer_threaded)
        if threaded:
            return cast(int, ProducerBuffer.size.fget(self))  # type: ignore[attr-defined]
        return len(self.pending._queue)  # type: ignore[attr-defined]

    async def _send_pending(self, fut: FutureMessage) -> None:
        self.sending = fut
        try:
            await super()._send_pending(fut)
        except BaseException as exc:
            # Never handed on: a flush waiting for it must not wait for ever.
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            raise
        finally:
            self.sending = None

    def owed(self) -> list[FutureMessage]:
        """The records not yet acknowledged that were buffered before now."""
        queued: list[FutureMessage] = list(self.pending._queue)  # type: ignore[attr-defined]
        if self.sending is not None:
            queued.append(self.sending)
        return [fut for fut in queued if not fut.done()]

    async def flush(self) -> None:
        if cast(Any, self.app).conf.producer_threaded:
            await super().flush()
            return
        owed = self.owed()
        waited = 0
        while owed:
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            _, still = await asyncio.wait(owed, timeout=1.0)
            owed = list(still)
            if owed:
                waited += 1
                log.warning("producer: %d buffered records unacked after %ds", len(owed), waited)


# Records sent through stream.produce that the broker refused (fix 7): once
# any is, no flush returns, so no commit passes the inputs that made them.
_refused = 0


def note_refused(records: int) -> None:
    """`records` were refused by the broker (stream.produce counts them as their batch fails)."""
    global _refused
    _refused += records


def refused() -> int:
    """The records refused by the broker since this worker started (fix 7)."""
    return _refused


class Producer(driver.Producer):
    """Faust's aiokafka producer with a changelog buffer whose flush waits for what it holds,
    and that refuses to flush past a record the broker refused (fix 7)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = SnapshotFlushBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        if self.app.conf.producer_threaded:
            buffer.threaded_producer = self.threaded_producer
        self.buffer = buffer

    async def flush(self) -> None:
        await super().flush()
        if refused():
            raise ProducerSendError(
                f"{_refused} record(s) refused by the broker: no offset is committed past "
                "the inputs that made them; the worker stops and processes them again "
                "when it is restarted"
            )


class Transport(driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = Consumer
    Producer: ClassVar[type[ProducerT]] = Producer

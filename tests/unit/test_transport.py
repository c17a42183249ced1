"""stream/transport.py: the eager start of the conductor callback, the wait for a full
stream buffer to drain, and the producer flush."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from stream.transport import Consumer, SnapshotFlushBuffer, eager


async def test_a_callback_that_never_waits_runs_to_its_end_in_place() -> None:
    done: list[str] = []

    async def deliver() -> None:
        done.append("put")

    assert eager(deliver()) is None
    assert done == ["put"]


async def test_a_callback_that_waits_is_finished_by_a_task_with_its_result() -> None:
    room = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def deliver() -> str:
        steps.append("before")
        await room  # a full buffer
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield is passed through too
        return "delivered"

    rest = eager(deliver())
    assert rest is not None
    assert steps == ["before"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    room.set_result(None)
    assert await task == "delivered"
    assert steps == ["before", "after"]


async def test_cancelling_the_rest_cancels_the_callback_where_it_waits() -> None:
    never = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def deliver() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    rest = eager(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_errors_surface_whether_raised_before_or_after_the_wait() -> None:
    async def fails_at_once() -> None:
        raise KeyError("now")

    with pytest.raises(KeyError, match="now"):
        eager(fails_at_once())

    room = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await room
        raise ValueError("later")

    rest = eager(fails_later())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    room.set_result(None)
    with pytest.raises(ValueError, match="later"):
        await task


async def test_a_failed_future_is_raised_inside_the_callback_which_may_handle_it() -> None:
    room = asyncio.get_running_loop().create_future()

    async def deliver() -> str:
        try:
            await room
        except OSError:
            return "handled"
        return "not reached"

    rest = eager(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    room.set_exception(OSError("broken"))
    assert await task == "handled"


async def test_wait_first_interrupts_a_waiting_rest_like_a_plain_callback() -> None:
    """The drain loop's use: the flow stopping wins over a callback stuck on a full buffer."""
    from mode import Service

    class Loop(Service):
        pass

    service = Loop()
    never = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def deliver() -> None:
        try:
            await never
        finally:
            seen.append("ended")

    flow_stopped = asyncio.Event()
    flow_stopped.set()
    rest = eager(deliver())
    assert rest is not None
    results = await service.wait_first(rest, flow_stopped.wait())
    assert not results.stopped
    await asyncio.sleep(0)  # the cancelled rest runs its finally block
    assert seen == ["ended"]


class _Record(asyncio.Future[int]):
    """Stands in for Faust's FutureMessage: resolved when the broker acknowledges it."""

    def __init__(self, channel: _Channel, n: int) -> None:
        super().__init__()
        self.message = SimpleNamespace(channel=channel)
        self.n = n


class _Channel:
    """Stands in for a topic: handing a record to aiokafka takes longer than Faust's 0.1 s
    patience, the acknowledgement comes later still, and records from `held` on wait for
    `release` before they are handed on."""

    def __init__(self, held: int = 10**9) -> None:
        self.held = held
        self.release = asyncio.Event()
        self.handed: list[int] = []

    async def publish_message(self, fut: _Record, wait: bool = False) -> None:
        if fut.n >= self.held:
            await self.release.wait()
        await asyncio.sleep(0.15)
        self.handed.append(fut.n)
        asyncio.get_running_loop().call_later(0.05, fut.set_result, fut.n)


def _buffer(kind: type[ProducerBuffer]) -> ProducerBuffer:
    buffer = kind()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    return buffer


async def _stop(buffer: ProducerBuffer, records: list[_Record]) -> None:
    await asyncio.wait(records)  # Faust's own stop refuses a buffer with records in it
    await buffer.stop()


@pytest.mark.parametrize(
    ("kind", "complete"), [(ProducerBuffer, False), (SnapshotFlushBuffer, True)]
)
async def test_a_flush_returns_when_every_buffered_record_is_acknowledged(
    kind: type[ProducerBuffer], complete: bool
) -> None:
    """Faust's buffer gives up after 0.1 s without a record handed on; ours waits for the acks."""
    buffer = _buffer(kind)
    channel = _Channel()
    records = [_Record(channel, n) for n in range(4)]
    await buffer.start()
    try:
        for record in records:
            buffer.put(record)  # type: ignore[arg-type]
        await buffer.flush()
        assert all(record.done() for record in records) is complete, channel.handed
    finally:
        await _stop(buffer, records)


async def test_a_flush_does_not_wait_for_records_buffered_after_it_began() -> None:
    """Agents keep writing during a flush: waiting for those too could wait for ever."""
    buffer = _buffer(SnapshotFlushBuffer)
    channel = _Channel(held=2)
    records = [_Record(channel, n) for n in range(5)]
    await buffer.start()
    try:
        for record in records[:2]:
            buffer.put(record)  # type: ignore[arg-type]
        flush = asyncio.ensure_future(buffer.flush())
        await asyncio.sleep(0)
        for record in records[2:]:
            buffer.put(record)  # type: ignore[arg-type]
        await asyncio.wait_for(flush, timeout=10)
        assert [r.done() for r in records] == [True, True, False, False, False]
        channel.release.set()
    finally:
        channel.release.set()
        await _stop(buffer, records)


async def test_a_record_that_cannot_be_handed_on_does_not_hang_the_flush() -> None:
    buffer = _buffer(SnapshotFlushBuffer)
    channel = _Channel()
    broken = _Record(channel, 0)
    broken.message = SimpleNamespace(channel=None)  # publish_message on None: AttributeError
    await buffer.start()
    try:
        buffer.put(broken)  # type: ignore[arg-type]
        await asyncio.wait_for(buffer.flush(), timeout=10)
        assert isinstance(broken.exception(), AttributeError)
    finally:
        await buffer.stop()


def _consumer_with_buffer(maxsize: int) -> tuple[Consumer, FlowControlQueue[int], TP]:
    """Our consumer's pressure bookkeeping, fed by a stream buffer as the conductor feeds it."""
    from mode.utils.locks import Event

    consumer = Consumer.__new__(Consumer)  # no app or broker: only the flow-control state
    consumer._active_partitions = set()
    consumer._paused_partitions = set()
    consumer._buffered_partitions = set()
    consumer.suspend_flow = Event()
    consumer._stopped = Event()
    consumer._crashed = Event()
    consumer._loop = asyncio.get_running_loop()
    consumer.__dict__["app"] = SimpleNamespace(in_recovery=False)
    queue: FlowControlQueue[int] = FlowControlQueue(maxsize, flow_control=FlowControlEvent())
    return consumer, queue, TP("t", 0)


def _put(consumer: Consumer, queue: FlowControlQueue[int], tp: TP, n: int) -> None:
    queue.put_nowait_enhanced(
        n,
        on_pressure_high=lambda: consumer.on_buffer_full(tp),
        on_pressure_drop=lambda: consumer.on_buffer_drop(tp),
    )


async def test_after_a_full_buffer_the_drain_loop_waits_for_its_low_mark() -> None:
    """One wait per buffer-full, not one per record: the records after it go in without waiting."""
    consumer, queue, tp = _consumer_with_buffer(10)
    for n in range(10):
        _put(consumer, queue, tp, n)
    assert tp in consumer._buffered_partitions  # high mark (8) passed
    waiting = asyncio.ensure_future(consumer._wait_pressure_drop(tp))
    await asyncio.sleep(0.01)
    taken = 0
    while not waiting.done():
        assert queue.qsize() >= 4, "still waiting below the low mark"
        queue.get_nowait()
        taken += 1
        await asyncio.sleep(0.01)
    await waiting
    # The buffer reports the drop when a get finds it at its low mark (40 % of 10).
    assert taken == 7 and queue.qsize() == 3
    assert tp not in consumer._buffered_partitions
    assert tp in consumer._active_partitions  # fetched again, as Faust does on the drop


async def test_the_flow_stopping_ends_the_wait_for_a_full_buffer() -> None:
    """A rebalance (the flow stops) or a stop interrupts the wait as it interrupts a blocked put."""
    consumer, queue, tp = _consumer_with_buffer(10)
    for n in range(10):
        _put(consumer, queue, tp, n)
    waiting = asyncio.ensure_future(consumer._wait_pressure_drop(tp))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    consumer.suspend_flow.set()
    await asyncio.wait_for(waiting, timeout=1)
    assert consumer._pressure_waiter is None

    consumer.suspend_flow.clear()
    waiting = asyncio.ensure_future(consumer._wait_pressure_drop(tp))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    consumer._stopped.set()
    await asyncio.wait_for(waiting, timeout=1)


async def test_no_wait_for_a_partition_whose_buffer_is_not_under_pressure() -> None:
    consumer, queue, tp = _consumer_with_buffer(10)
    for n in range(5):
        _put(consumer, queue, tp, n)
    await asyncio.wait_for(consumer._wait_pressure_drop(tp), timeout=1)


# Fix 6: a partition whose commits stopped behind a hole nothing will fill.


def test_a_hole_is_dead_only_if_nothing_being_processed_or_gapped_can_fill_it() -> None:
    from intervaltree import IntervalTree

    from stream.transport import dead_hole

    # The state seen after the broker outage: committed 4, acked from 68.
    assert dead_hole([68, 69, 73, 70], 4, None, None) == (4, 67)
    assert dead_hole([68, 69], 4, 80, IntervalTree()) == (4, 67)  # what is in process is later
    assert dead_hole([68, 69], 4, 30, None) is None  # record 30 will be acked
    assert dead_hole([68, 69], 4, None, IntervalTree.from_tuples([(5, 68)])) is None
    assert dead_hole([5, 6, 9], 4, None, None) is None  # no hole at the head: Faust commits 7
    assert dead_hole([5, 6], 4, None, None) is None  # Faust lets offset 4 go (its `> 1`)
    assert dead_hole([6, 7], 4, None, None) == (4, 5)
    assert dead_hole([], 4, None, None) is None
    assert dead_hole([68], None, None, None) is None  # never committed: Faust does not wait
    assert dead_hole([68], 0, None, None) is None  # nor at 0 (falsy, its check)


def test_only_a_hole_that_stood_unchanged_for_the_stall_time_is_stalled() -> None:
    consumer = Consumer.__new__(Consumer)
    tp, other = TP("t", 0), TP("t", 1)
    consumer._acked = {tp: [68, 69], other: [12]}
    consumer._committed_offset = {tp: 4, other: 11}
    consumer._gap = {}
    in_process = SimpleNamespace(tp=other, offset=12, acked=False)
    done = SimpleNamespace(tp=tp, offset=30, acked=True)  # acked, though still referenced
    consumer._unacked_messages = [in_process, done]  # type: ignore[assignment]
    stall = consumer.stall_seconds
    seen: dict[TP, tuple[tuple[int, int], float]] = {}
    assert consumer._stalled(seen, 100.0) == {}
    assert seen == {tp: ((4, 67), 100.0)}
    assert consumer._stalled(seen, 100.0 + stall - 1) == {}
    consumer._acked[tp] = [68, 69, 70]  # later records acked: the same hole
    assert consumer._stalled(seen, 100.0 + stall) == {tp: (4, 67)}
    # A hole that moved starts its clock again; one that closed is forgotten.
    consumer._committed_offset[tp] = 10
    assert consumer._stalled(seen, 100.0 + 2 * stall) == {}
    assert seen[tp] == ((10, 67), 100.0 + 2 * stall)
    consumer._committed_offset[tp] = 67
    assert consumer._stalled(seen, 100.0 + 3 * stall) == {} and seen == {}
    # A record of the hole still being processed will be acked: not stalled.
    consumer._committed_offset[tp] = 4
    consumer._unacked_messages.append(SimpleNamespace(tp=tp, offset=40, acked=False))
    assert consumer._stalled(seen, 0.0) == {} and consumer._stalled(seen, 10 * stall) == {}


def test_the_worker_consumer_fetches_with_the_configured_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CS_FETCH_MAX_WAIT replaces the 1,500 ms that Faust's driver fixes (read at the start)."""
    from aiokafka.consumer import fetcher as aiokafka_fetcher
    from faust.transport.drivers import aiokafka as driver

    from stream import transport

    made = SimpleNamespace(_fetch_max_wait_ms=1500)
    monkeypatch.setattr(
        driver.AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, t: made
    )
    monkeypatch.setattr(transport, "get_settings", lambda: SimpleNamespace(fetch_max_wait=0.02))
    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", aiokafka_fetcher.PartitionRecords)
    thread = transport.ConsumerThread.__new__(transport.ConsumerThread)
    thread.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics=set()))
    assert thread._create_worker_consumer(None) is made
    assert made._fetch_max_wait_ms == 20

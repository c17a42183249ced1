"""stream/transport.py: the eager start of the conductor callback, and the producer flush."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.producer import ProducerBuffer

from stream.transport import SnapshotFlushBuffer, eager


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

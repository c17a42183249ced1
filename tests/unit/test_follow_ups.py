"""stream/agents/follow_ups.py: follow-ups go out in order, each behind a flush that
began after it was handed over, many behind one flush; a commit barrier waits for them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.exceptions import ProducerSendError
from faust.types import TP

from stream.agents.follow_ups import Entry, FollowUps
from stream.app import BarrierAttachments


class Producer:
    """A flush the test opens by hand, and a log of what happened in which order."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on: Entry | None = None
        self.errors: list[BaseException] = []

    async def flush(self) -> None:
        self.log.append("flush-start")
        await self.gate.wait()
        self.log.append("flush-end")

    async def send(self, entry: Entry) -> None:
        if entry == self.fail_on:
            raise RuntimeError("broker gone")
        self.log.append(entry[0])

    async def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def follow_ups(self) -> FollowUps:
        return FollowUps(self.flush, self.send, self.on_error)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_follow_ups_go_out_in_order_after_a_flush() -> None:
    producer = Producer()
    follow_ups = producer.follow_ups()
    follow_ups.put([["a"], ["b"]])
    follow_ups.put([])
    follow_ups.put([["c"]])
    await follow_ups.drain()
    assert producer.log == ["flush-start", "flush-end", "a", "b", "c"]
    assert follow_ups.backlog == 0
    await follow_ups.stop()


async def test_what_is_handed_over_during_a_flush_waits_for_the_next_one() -> None:
    producer = Producer()
    producer.gate.clear()
    follow_ups = producer.follow_ups()
    follow_ups.put([["first"]])
    await settle()
    assert producer.log == ["flush-start"]  # the pump waits for the broker
    for i in range(100):
        follow_ups.put([[f"op{i}"]])  # the actor goes on meanwhile
    producer.gate.set()
    await settle()
    # `first` went out after its flush; the 100 only after a second flush began and ended.
    assert producer.log[:4] == ["flush-start", "flush-end", "first", "flush-start"]
    assert producer.log[4] == "flush-end"
    assert producer.log[5:] == [f"op{i}" for i in range(100)]
    assert producer.log.count("flush-end") == 2  # 101 operations, two flushes
    await follow_ups.stop()


async def test_drain_returns_only_when_everything_handed_over_is_sent() -> None:
    producer = Producer()
    producer.gate.clear()
    follow_ups = producer.follow_ups()
    follow_ups.put([["a"]])
    drained = asyncio.ensure_future(follow_ups.drain())
    await settle()
    assert not drained.done()
    follow_ups.put([["b"]])
    producer.gate.set()
    await drained
    assert producer.log == ["flush-start", "flush-end", "a", "flush-start", "flush-end", "b"]
    assert follow_ups.backlog == 0
    await follow_ups.stop()


async def test_a_failed_send_keeps_it_and_what_follows_and_reports_the_error() -> None:
    producer = Producer()
    producer.fail_on = ["b"]
    follow_ups = producer.follow_ups()
    follow_ups.put([["a"], ["b"], ["c"]])
    await settle()
    assert [type(e) for e in producer.errors] == [RuntimeError]
    assert producer.log == ["flush-start", "flush-end", "a"]
    assert follow_ups.backlog == 2  # b and c: a drain (a commit) never passes them
    with pytest.raises(RuntimeError):
        await follow_ups.drain()
    producer.fail_on = None
    await follow_ups.drain()
    assert producer.log[-2:] == ["b", "c"]
    await follow_ups.stop()


async def test_a_pump_cancelled_in_its_flush_leaves_everything_for_the_next_drain() -> None:
    producer = Producer()
    producer.gate.clear()
    follow_ups = producer.follow_ups()
    follow_ups.put([["a"], ["b"]])
    await settle()
    await follow_ups.stop()  # the worker stopping while the pump waits for the broker
    assert follow_ups.backlog == 2
    producer.gate.set()
    await follow_ups.drain()  # the commit on stop
    assert producer.log[-2:] == ["a", "b"]


async def test_every_commit_waits_for_the_barriers_before_publishing() -> None:
    class App:
        conf = None

    attachments = BarrierAttachments(App())  # type: ignore[arg-type]
    steps: list[str] = []

    async def barrier() -> None:
        await asyncio.sleep(0)
        steps.append("barrier")

    attachments.barriers.append(barrier)
    assert await attachments.publish_for_tp_offset(TP("t", 0), 5) == []
    assert steps == ["barrier"]

    async def broken() -> None:
        raise RuntimeError("broker gone")

    attachments.barriers.append(broken)
    with pytest.raises(ProducerSendError):  # Faust's consumer crashes on it: no commit
        await attachments.publish_for_tp_offset(TP("t", 0), 6)

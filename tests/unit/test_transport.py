"""stream/transport.py: the eager start of the conductor callback."""

from __future__ import annotations

import asyncio

import pytest

from stream.transport import eager


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

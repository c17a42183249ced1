"""stream/diagnostics.py: what a stuck agent awaits, through async generators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from stream.diagnostics import _tasks, awaiting


async def test_the_chain_goes_down_through_an_async_generator_to_the_awaited_call() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def deepest() -> None:
        await gate

    async def events() -> AsyncIterator[int]:
        await deepest()
        yield 1

    async def agent(stream: AsyncIterator[int]) -> None:
        async for _ in stream:
            pass

    coro = agent(events())
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    frames = [line.rsplit(" ", 1)[-1] for line in awaiting(coro)]
    assert frames[:3] == ["agent", "events", "deepest"], frames
    gate.set_result(None)
    await task


async def test_every_waiting_task_is_listed_with_what_it_awaits_innermost_first() -> None:
    gate = asyncio.Event()

    async def commit() -> None:
        await gate.wait()

    async def drain_loop() -> None:
        await commit()

    task = asyncio.ensure_future(drain_loop(), loop=None)
    task.set_name("fetch-loop")
    await asyncio.sleep(0)
    [line] = [line for line in _tasks() if line.startswith("task fetch-loop:")]
    assert " <- " in line
    names = [frame.rsplit(" ", 1)[-1] for frame in line.split(": ", 1)[1].split(" <- ")]
    assert names[-2:] == ["commit", "drain_loop"], names
    gate.set()
    await task

"""stream/diagnostics.py: what a stuck agent awaits, through async generators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from stream.diagnostics import awaiting


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

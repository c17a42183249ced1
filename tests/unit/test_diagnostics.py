"""stream/diagnostics.py: what a stuck agent awaits, through async generators."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading
import time
from collections.abc import AsyncIterator

import pytest

from stream.diagnostics import LoopStats, _tasks, awaiting


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


def test_loop_stats_report_each_thread_s_iterations_cpu_and_time_in_select(
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]
    stats = LoopStats(every=0.2)
    stats.install()
    try:

        async def busy_then_idle() -> None:
            deadline = time.monotonic() + 0.3
            gc.collect()  # a full collection, in this thread
            while time.monotonic() < deadline:  # CPU, one iteration after another
                await asyncio.sleep(0)
            await asyncio.sleep(0.3)  # waiting in select
            await asyncio.sleep(0)  # one more iteration, to report

        with caplog.at_level(logging.WARNING, logger="stream.diagnostics"):
            worker = threading.Thread(target=asyncio.run, args=(busy_then_idle(),), name="busy")
            worker.start()
            worker.join()
    finally:
        stats.uninstall()
    lines = [r.getMessage() for r in caplog.records]
    lines = [line for line in lines if "loop stats of thread busy" in line]
    assert len(lines) >= 2, lines
    busy = re.search(r"([\d.]+) iterations/s.*CPU (\d+) %, in select (\d+) %", lines[0])
    idle = re.search(r"CPU (\d+) %, in select (\d+) %", lines[-1])
    assert busy is not None and idle is not None
    assert float(busy[1]) > 1000, lines[0]
    assert int(busy[2]) > 2 * int(idle[1]) and int(idle[2]) > 50, lines
    assert int(idle[2]) > int(busy[3]), lines
    collected = re.search(r"in gc \d+ ms \((\d+) full", lines[0])
    assert collected is not None and int(collected[1]) >= 1, lines[0]
    assert gc.callbacks.count(stats._on_gc) == 0
    assert asyncio.BaseEventLoop._run_once is original  # type: ignore[attr-defined]

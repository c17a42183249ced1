"""How far py-spy's samples are from the clock on this machine (session 25).

A loop calls aiokafka's `create_future` (one `asyncio.get_event_loop()`, which
checks the running loop's pid with a `getpid` system call) and then 50
iterations of pure Python, with a second thread running an event loop as
Faust's consumer thread does. The clock gives each part's share of the loop;
py-spy, run on the same loop blocking (its default: it stops the process for
each sample) and `--nonblocking`, gives its own. Here the blocking sampler
gave `create_future` 95 % of the samples against ~25 % by the clock, the
nonblocking one 40 %: stopping the process catches it at system calls, so
profiles taken that way overstate whatever makes them (RocksDB writes,
socket writes, `get_event_loop`). The benches profile with --nonblocking.

    .venv/bin/python bench/pyspy_bias.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from aiokafka.util import create_future


def python_work(n: int = 50) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def spin_other_loop() -> None:
    async def spin() -> None:
        while True:
            await asyncio.sleep(0.0005)

    asyncio.run(spin())


async def loop(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        create_future()
        python_work()


async def by_clock(rounds: int = 200_000) -> float:
    """`create_future`'s share of one loop pass, by the clock."""
    start = time.perf_counter()
    for _ in range(rounds):
        python_work()
    work = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        create_future()
        python_work()
    both = time.perf_counter() - start
    return (both - work) / both


def by_samples(extra: list[str]) -> float:
    """`create_future`'s share of py-spy's samples of the loop."""
    spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        command = [str(spy), "record", *extra, "-r", "200", "-f", "raw", "-o", str(out), "--"]
        target = [sys.executable, __file__, "--loop"]
        subprocess.run([*command, *target], check=True, capture_output=True)
        counts: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            counts["create_future" if "create_future" in stack else "rest"] += int(n)
    return counts["create_future"] / sum(counts.values())


def main() -> None:
    threading.Thread(target=spin_other_loop, daemon=True).start()
    if sys.argv[1:] == ["--loop"]:
        asyncio.run(loop(8.0))
        return
    clock = asyncio.run(by_clock())
    print(f"create_future's share of the loop by the clock:  {clock:6.1%}")
    print(f"py-spy (stops the process per sample):           {by_samples([]):6.1%}")
    print(f"py-spy --nonblocking:                            {by_samples(['--nonblocking']):6.1%}")


if __name__ == "__main__":
    main()

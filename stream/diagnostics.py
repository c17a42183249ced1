"""`kill -USR2 <worker pid>`: the worker logs where its consumer and agents stand.

For a worker that stopped making progress without an error: which partitions
the consumer may fetch (active), which are paused or held back by a full
stream buffer, whether the flow is on, how full each channel's queue is,
what each agent actor awaits (its coroutine chain walked down through
async generators, which asyncio's own task dumps cut off), per partition
where Faust has read, acked and committed and where aiokafka fetches, and
what every waiting task of the loop awaits (the fetch loop among them).
Offsets and partition numbers only: no record content reaches the log.

`CS_LOOP_STATS_SECONDS` (`LoopStats`): how busy each thread's event loop is,
logged periodically, for a worker that falls behind without being stuck.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def awaiting(coro: Any, depth: int = 40) -> Iterator[str]:
    """The frames a suspended coroutine or async generator waits in, outermost first."""
    while coro is not None and depth > 0:
        depth -= 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            frame = getattr(coro, "gi_frame", None)
        if frame is not None:
            yield f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
        nxt = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
        if nxt is None and type(coro).__name__ == "async_generator_asend":
            # `async for` awaits the generator's asend object, which names its
            # generator only to the garbage collector.
            nxt = next((r for r in gc.get_referents(coro) if inspect.isasyncgen(r)), None)
        if nxt is None:
            if frame is None:
                yield repr(coro)[:160]
            return
        coro = nxt


def _tps(tps: Any) -> str:
    if tps is None:
        return "None"
    # `<prefix>.contact-stream.identity-ops.v1` -> `contact-stream.identity-ops.v1`
    return " ".join(sorted(f"{tp.topic.split('.', 1)[-1]}[{tp.partition}]" for tp in tps)) or "-"


def state(app: Any) -> str:
    consumer = app.consumer
    lines = [
        f"flow_active={consumer.flow_active} flow_control_active={app.flow_control.is_active()}"
        f" in_recovery={app.in_recovery} rebalancing={app.rebalancing}"
        f" generation={app.consumer_generation_id}",
        f"assigned: {_tps(consumer.assignment())}",
        f"active: {_tps(consumer._active_partitions)}",
        f"paused: {_tps(consumer._paused_partitions)}",
        f"buffered (stream buffer full): {_tps(consumer._buffered_partitions)}",
        f"unacked messages: {len(consumer._unacked_messages)}",
    ]
    for topic in list(getattr(app.topics, "_topics", ())):
        queue = getattr(topic, "_queue", None)
        if queue is not None:
            pending = len(getattr(queue, "_pending_pressure_drop_callbacks", ()))
            lines.append(
                f"channel {topic}: queued {queue.qsize()}, pressure-drop callbacks {pending}"
            )
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            task = actor.actor_task
            stream = getattr(actor, "stream", None)
            event = getattr(stream, "current_event", None)
            where = (
                f"{event.message.tp.partition}@{event.message.offset}" if event is not None else "-"
            )
            lines.append(f"agent {agent.name}: current event {where}")
            done = isinstance(task, asyncio.Task) and task.done()
            lines.extend(f"    {frame}" for frame in awaiting(None if done else actor.it))
    lines.extend(_offsets(consumer))
    lines.extend(_tasks())
    return "\n".join(lines)


def _offsets(consumer: Any) -> Iterator[str]:
    """Per assigned partition: where Faust read, acked and committed, where aiokafka fetches."""
    commit_fut = getattr(consumer, "_commit_fut", None)
    yield (
        f"acks since the last commit-every: {getattr(consumer, '_n_acked', '?')};"
        f" a commit in progress: {commit_fut is not None}"
    )
    try:
        client = consumer._thread._ensure_consumer()
        assignment = client._subscription.subscription.assignment
    except Exception as exc:  # not started, or aiokafka changed
        assignment = None
        yield f"(no aiokafka assignment: {type(exc).__name__})"
    for tp in sorted(consumer.assignment() or ()):
        acked = consumer._acked.get(tp) or ()
        gaps = consumer._gap.get(tp) or ()
        fetch = "-"
        if assignment is not None:
            state = assignment.state_value(tp)
            if state is not None:
                fetch = (
                    f"position={state._position} paused={state.paused}"
                    f" awaiting_reset={state.awaiting_reset} highwater={state.highwater}"
                )
        yield (
            f"{_tps([tp])}: read={consumer._read_offset.get(tp)}"
            f" committed={consumer._committed_offset.get(tp)}"
            f" acked={len(acked)}{f' from {min(acked)}' if acked else ''} gaps={len(gaps)} {fetch}"
        )


def _tasks() -> Iterator[str]:
    """Every task of the loop that is waiting, with what it awaits (the fetch loop among them)."""
    for task in asyncio.all_tasks():
        frames = list(awaiting(task.get_coro(), depth=25))
        if frames:
            yield f"task {task.get_name()}: " + " <- ".join(
                frame.rsplit("/", 1)[-1] for frame in reversed(frames[-6:])
            )


def install(app: Any) -> None:
    """Log `state(app)` on SIGUSR2 (the worker's loop must be running)."""

    def dump() -> None:
        try:
            log.warning("state on SIGUSR2:\n%s", state(app))
        except Exception:  # a diagnostic must never take the worker down
            log.exception("state on SIGUSR2 failed")

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)


class LoopStats:
    """`CS_LOOP_STATS_SECONDS`: each thread's event loop logs how busy it is, that often.

    Per thread with a running loop (the main one, and Faust's consumer
    thread): loop iterations per second, callbacks run per iteration, the
    thread's CPU share, and the share of wall time spent inside `select`
    (waiting for I/O or a timer), and the time the garbage collector ran in
    the thread (with its full collections and the longest pause). A loop
    near 100 % CPU and ~0 % in select is the worker's bottleneck
    (docs/performance.md, session 21); full collections of 50-100 ms are what
    `CS_GC_FREEZE` removes (session 22). Opt-in: it wraps asyncio's private
    `BaseEventLoop._run_once` (~1.4 µs more per iteration, measured beside a
    test run).
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._original: Any = None
        # Per thread: [seconds collecting, full collections, longest pause] since its last report.
        self._gc: dict[int, list[float]] = {}
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        spent = self._gc.setdefault(threading.get_ident(), [0.0, 0, 0.0])
        spent[0] += took
        spent[1] += info["generation"] == 2
        spent[2] = max(spent[2], took)

    def install(self) -> None:
        if self._original is not None:
            return
        original = self._original = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]
        stats = self

        def run_once(loop: Any) -> None:
            st = stats._state(loop)
            st["iterations"] += 1
            st["callbacks"] += len(loop._ready)
            original(loop)
            now = time.monotonic()
            if now - st["since"] >= stats.every:
                stats._report(st, now)

        asyncio.BaseEventLoop._run_once = run_once  # type: ignore[attr-defined]
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._original is not None:
            asyncio.BaseEventLoop._run_once = self._original  # type: ignore[attr-defined]
            self._original = None
            gc.callbacks.remove(self._on_gc)

    def _state(self, loop: Any) -> dict[str, float]:
        """The loop's counters, kept on the loop; its selector's `select` timed from the first."""
        st: dict[str, float] | None = getattr(loop, "_cs_loop_stats", None)
        if st is None:
            st = loop._cs_loop_stats = self._fresh(time.monotonic())
            counters = st
            select = loop._selector.select

            def timed(timeout: float | None = None) -> Any:
                started = time.monotonic()
                try:
                    return select(timeout)
                finally:
                    counters["select"] += time.monotonic() - started

            loop._selector.select = timed
        return st

    @staticmethod
    def _fresh(now: float) -> dict[str, float]:
        return {
            "since": now,
            "cpu": time.thread_time(),
            "iterations": 0,
            "callbacks": 0,
            "select": 0.0,
        }

    def _report(self, st: dict[str, float], now: float) -> None:
        wall = now - st["since"]
        iterations = st["iterations"]
        collecting, full, longest = self._gc.pop(threading.get_ident(), [0.0, 0, 0.0])
        log.warning(
            "loop stats of thread %s over %.1f s: %.0f iterations/s, %.1f callbacks each,"
            " CPU %.0f %%, in select %.0f %%, in gc %.0f ms (%d full, longest %.0f ms)",
            threading.current_thread().name,
            wall,
            iterations / wall,
            st["callbacks"] / max(1, iterations),
            100 * (time.thread_time() - st["cpu"]) / wall,
            100 * st["select"] / wall,
            1000 * collecting,
            full,
            1000 * longest,
        )
        st.update(self._fresh(now))

"""Timers at scale: one worker holding N contacts that each have a deadline.

Usage (the local stack must be up: `scripts/stack up`; or point CS_KAFKA_BOOTSTRAP
and CS_REDIS_URL at another, e.g. a private stack a test suite cannot restart):

    .venv/bin/python bench/timers.py --contacts 1000000
    .venv/bin/python bench/timers.py --contacts 20000 --due 2000 --window 20   # quick
    .venv/bin/python bench/timers.py --contacts 1000000 --store csrocksdb:// --store memory://
    .venv/bin/python bench/timers.py --contacts 1000000 --ref HEAD  # committed code only

What one run (per `--store`) does and measures, on its own topics (a fresh
`CS_TOPIC_PREFIX` and `CS_APP_ID`, as the integration tests do):
1. load: N encoded contacts written straight into the `contacts` table's
   changelog (`{app_id}-contacts-changelog`), each on the partition Faust
   would use (the contact-ops partition of its key: aiokafka's murmur2
   partitioner), before any worker runs. Every contact is live, tier `new`,
   with a latest activity such that its next recency boundary (+16 days,
   `activity_tier.changed` new -> frequent) is its due time. N - D of them
   are due 1 to 15 days from now; the last D written are due evenly over
   `--window` seconds that start `--lead` seconds after the load (the time
   the worker is expected to need to restore and rebuild its index);
2. start: one worker process (`python -m stream.cli worker -l info`);
   time from the process start to its log lines `contact-stream ready` and
   `due index rebuilt: ...`, the count (must be N; the log masks 7 digits,
   so then `cs_timers_due` from /metrics), the rebuild's own seconds, and
   the worker's RSS (at both lines) and CPU seconds;
3. fire: every `activity_tier.changed` with cause `timer` on the changes
   topic; lateness = broker timestamp of the change record (the worker's
   producer sets it) - the change's `at` (its due time). p50/p95/p99/max
   over the contacts due after the rebuild (those due before it are a
   backlog, counted apart); each due contact must fire exactly once (by
   change_id and by contact), and no contact due later may fire;
4. a summary table, and `bench/results/timers-<UTC time>.json` with the
   figures and the git commit; then the worker is stopped and the run's
   topics, Redis keys and data dir are deleted.

`--ref REF` runs the worker (and encodes the contacts) from `git archive REF`
instead of the working tree, so uncommitted edits in stream/ are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from aiokafka.structs import ConsumerRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    READY,
    TopicReader,
    Worker,
    add_run_args,
    batch_writer,
    cancel_on_signals,
    cleanup,
    create_topics,
    fmt,
    launch,
    percentiles,
    proc_status,
    say,
    start_worker,
    topic_settings,
    write_report,
)

DAY_MS = 86_400_000
TIER_DAYS = 16  # new -> frequent (stream/domain/tiers.py BOUNDARY_DAYS[0])
TENANT = "bench"
# The count may be masked (`100***00`): the worker's log filter hides long digit runs.
REBUILT = re.compile(r"due index rebuilt: ([\d*]+) contacts with a due time \(([\d.]+)s\)")


@dataclass
class Plan:
    contacts: int
    due: int
    window: float
    lead: float
    partitions: int
    store: str
    grace: float


@dataclass
class Result:
    store: str
    contacts: int
    due_in_window: int
    window_s: float
    lead_s: float
    partitions: int
    load_s: float = 0.0
    load_mb: float = 0.0
    load_records_per_s: float = 0.0
    start_to_ready_s: float | None = None
    start_to_rebuilt_s: float | None = None
    rebuild_s: float | None = None
    rebuilt_count: int | None = None
    rebuilt_count_logged: str | None = None
    rebuilds: int = 0
    rss_mb_at_ready: float | None = None
    rss_mb_after_rebuild: float | None = None
    cpu_s_at_rebuild: float | None = None
    peak_rss_mb: float | None = None
    window_started_after_rebuild_s: float | None = None
    fired: int = 0
    backlog: int = 0
    missing: int = 0
    duplicate_change_ids: int = 0
    duplicate_contacts: int = 0
    unexpected: int = 0
    lateness_ms: dict[str, float] = field(default_factory=dict)
    lateness_receive_ms: dict[str, float] = field(default_factory=dict)
    backlog_lateness_max_ms: float | None = None
    # Max lateness per tenth of the window, in due order: a growing backlog or a spike.
    lateness_max_by_tenth_ms: list[float] = field(default_factory=list)
    # Fired / (last change's broker time - first due time): the drain rate of a burst.
    fired_per_s: float | None = None
    load_avg_at_start: list[float] = field(default_factory=list)
    # (seconds since the worker started, RSS MB), about every 5 s until the index is built.
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    ticks: float | None = None
    timers_due_at_end: float | None = None
    worker_exit: int | None = None
    log: str = ""


# --- the contacts ---------------------------------------------------------


def contact_encoder() -> Callable[[int, int], tuple[bytes, bytes]]:
    """(i, due_ms) -> (key, value) of a live contact whose next transition is due then."""
    # Imported here, after `--ref` has chosen which `stream` package is on the path.
    from stream.domain.contact import Contact, TimedValue
    from stream.domain.engagement import Engagement
    from stream.tables.codec import encode_contact

    def encode(i: int, due_ms: int) -> tuple[bytes, bytes]:
        contact_id = str(uuid.UUID(int=i))
        last = due_ms - TIER_DAYS * DAY_MS
        created = last - DAY_MS
        contact = Contact(
            tenant_id=TENANT,
            contact_id=contact_id,
            source="form",
            created_at=created,
            updated_at=last,
            version=3,
            emails=(f"person{i}@bench.example.com",),
            fields=(
                ("company", TimedValue("Bench Ltd", created, f"e{i}")),
                ("first_name", TimedValue("Ana", created, f"e{i}")),
            ),
            engagement=Engagement(last_activity_at=last, activity=(("open", last),), tier="new"),
        )
        return f"{TENANT}:{contact_id}".encode(), encode_contact(contact)

    return encode


def check_encoding(encode: Callable[[int, int], tuple[bytes, bytes]]) -> None:
    """The worker must read the due time we meant: same codec and rules as its index."""
    from stream.domain.commands import next_due
    from stream.tables.codec import decode_contact

    due = int(time.time() * 1000) + 3_600_000
    _, value = encode(0, due)
    found = next_due(decode_contact(value))
    if found != due:
        raise RuntimeError(f"a bench contact is due at {found}, not {due}: the domain changed")


def topic_names(run: str, partitions: int) -> dict[str, str]:
    settings = topic_settings(run, partitions)
    return {
        # Faust names a table's changelog `{app id}-{table}-changelog`.
        "changelog": f"{settings.app_id}-contacts-changelog",
        "contact_ops": settings.topic("contact-stream.contact-ops.v1"),
        "changes": settings.topic("contacts.changes.v1"),
    }


async def load(
    topic: str, plan: Plan, encode: Callable[[int, int], tuple[bytes, bytes]]
) -> tuple[float, int, float]:
    """Write the contacts; returns (seconds, bytes, the window's start in epoch seconds)."""
    async with batch_writer(plan.partitions) as writer:

        async def put(i: int, due_ms: int) -> None:
            key, value = encode(i, due_ms)
            # The partition Faust writes a table entry to: its source event's, i.e.
            # the contact-ops partition of the key (the producer's default partitioner).
            await writer.put(topic, key, value, writer.partition_of(key))

        started = time.monotonic()  # once the producer is up
        rng = random.Random(7)
        now_ms = int(time.time() * 1000)
        far = plan.contacts - plan.due
        for i in range(far):
            await put(i, now_ms + rng.randrange(DAY_MS, 15 * DAY_MS))
        # The due sample last, its window anchored once the bulk is written.
        window_start = time.time() + plan.lead
        for k in range(plan.due):
            offset = plan.window * (k + 0.5) / plan.due
            await put(far + k, int((window_start + offset) * 1000))
    return time.monotonic() - started, writer.bytes, window_start


# --- the worker -----------------------------------------------------------


async def scrape_metrics(port: int) -> dict[str, float]:
    wanted = ("cs_timer_ticks_total", "cs_timers_due")
    out: dict[str, float] = {}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            for line in (await response.text()).splitlines():
                name, _, value = line.partition(" ")
                if name in wanted:
                    out[name] = float(value)
    return out


# --- the change events ----------------------------------------------------


def parse_ms(text: str) -> int:
    """`2026-11-22T10:00:00.123Z` -> epoch ms."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class Fired:
    contact_id: str
    change_id: str
    at_ms: int
    broker_ms: int
    received_ms: int


class ChangeWatcher(TopicReader):
    """Reads the changes topic from its start, keeping the timer-caused tier changes."""

    def __init__(self, topic: str, partitions: int) -> None:
        super().__init__((topic,), partitions)
        self.fired: list[Fired] = []
        self.other = 0

    def handle(self, record: ConsumerRecord[bytes, bytes], received_ms: int) -> None:
        change = orjson.loads(record.value or b"null")
        if change["type"] != "activity_tier.changed" or change["cause"]["kind"] != "timer":
            self.other += 1
            return
        self.fired.append(
            Fired(
                change["contact_id"],
                change["change_id"],
                parse_ms(change["at"]),
                record.timestamp,
                received_ms,
            )
        )


# --- one run --------------------------------------------------------------


async def run_once(plan: Plan, keep: bool) -> Result:
    run = f"tb{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-timers-{run}-"))
    result = Result(plan.store, plan.contacts, plan.due, plan.window, plan.lead, plan.partitions)
    result.log = str(workdir / "worker.log")
    result.load_avg_at_start = list(os.getloadavg())
    names = topic_names(run, plan.partitions)
    encode = contact_encoder()
    check_encoding(encode)
    await create_topics(names.values(), plan.partitions, compacted={names["changelog"]})
    worker: Worker | None = None
    watcher = ChangeWatcher(names["changes"], plan.partitions)
    try:
        say(f"{run}: loading {plan.contacts:,} contacts into {names['changelog']}")
        seconds, size, window_start = await load(names["changelog"], plan, encode)
        result.load_s, result.load_mb = seconds, size / 1e6
        result.load_records_per_s = plan.contacts / seconds
        rate = plan.contacts / seconds
        say(f"loaded in {seconds:.1f}s ({rate:,.0f} records/s, {size / 1e6:.0f} MB)")
        await watcher.start()
        worker = start_worker(run, workdir, plan.partitions, log_level="info", store=plan.store)
        say(f"worker pid {worker.process.pid} started ({plan.store}); waiting for its index")
        rebuilt_at = await wait_rebuilt(worker, result, deadline=3600)
        result.window_started_after_rebuild_s = window_start - rebuilt_at
        say(
            f"index rebuilt {result.start_to_rebuilt_s or 0:.1f}s after start "
            f"({result.rebuilt_count} due, rebuild {result.rebuild_s:.2f}s, "
            f"RSS {result.rss_mb_after_rebuild:,.0f} MB); window starts in "
            f"{result.window_started_after_rebuild_s:.1f}s"
        )
        expected = {str(uuid.UUID(int=i)) for i in range(plan.contacts - plan.due, plan.contacts)}
        deadline = window_start + plan.window + plan.grace
        while time.time() < deadline:
            worker.check()
            if {f.contact_id for f in watcher.fired} >= expected:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(5)  # a duplicate, if any, arrives now
        status = proc_status(worker.process.pid)
        result.peak_rss_mb = status.get("VmHWM")
        metrics = await scrape_metrics(worker.port)
        result.ticks = metrics.get("cs_timer_ticks_total")
        result.timers_due_at_end = metrics.get("cs_timers_due")
        result.rebuilds = len(REBUILT.findall(worker.text()))
        summarize(result, watcher.fired, expected, rebuilt_at)
    finally:
        await watcher.stop()
        if worker is not None:
            result.worker_exit = worker.stop()
        if not keep:
            await cleanup(run)
            shutil.rmtree(workdir / "data", ignore_errors=True)
    return result


async def wait_rebuilt(worker: Worker, result: Result, deadline: float) -> float:
    """Epoch seconds when the first `due index rebuilt` line appeared; fills `result`.

    The worker logs `ready` (tables recovered), then builds the index, blocking
    its event loop meanwhile: the RSS sampled at `ready` is about the tables'.
    """
    while True:
        text = worker.text()
        elapsed = time.time() - worker.started
        if not result.rss_timeline or elapsed - result.rss_timeline[-1][0] >= 5:
            rss = proc_status(worker.process.pid).get("VmRSS")
            if rss is not None:
                result.rss_timeline.append((round(elapsed, 1), round(rss)))
        if result.rss_mb_at_ready is None and READY in text:
            result.rss_mb_at_ready = proc_status(worker.process.pid).get("VmRSS")
        found = REBUILT.search(text)
        if found:
            now = time.time()
            status = proc_status(worker.process.pid)
            result.rss_mb_after_rebuild = status.get("VmRSS")
            result.cpu_s_at_rebuild = status.get("cpu")
            result.start_to_ready_s = worker.logged_after_start(re.escape(READY))
            result.start_to_rebuilt_s = worker.logged_after_start(REBUILT)
            result.rebuilt_count_logged = found.group(1)
            result.rebuild_s = float(found.group(2))
            if "*" not in found.group(1):
                result.rebuilt_count = int(found.group(1))
            else:  # masked in the log: the index size the worker exports instead
                result.rebuilt_count = await index_size(worker.port)
            return now
        worker.check()
        if time.time() - worker.started > deadline:
            raise RuntimeError(f"no index after {deadline}s; log {worker.log}")
        await asyncio.sleep(0.2)


async def index_size(port: int) -> int | None:
    """`cs_timers_due`, which the timer sets every 0.5 s (0 until a tick after the rebuild)."""
    for _ in range(20):
        due = (await scrape_metrics(port)).get("cs_timers_due")
        if due:
            return int(due)
        await asyncio.sleep(0.25)
    return None


def summarize(result: Result, fired: list[Fired], expected: set[str], rebuilt_at: float) -> None:
    per_change = Counter(f.change_id for f in fired)
    per_contact = Counter(f.contact_id for f in fired)
    result.duplicate_change_ids = sum(n - 1 for n in per_change.values())
    result.duplicate_contacts = sum(1 for c, n in per_contact.items() if c in expected and n > 1)
    result.unexpected = sum(1 for c in per_contact if c not in expected)
    result.missing = len(expected - per_contact.keys())
    first: dict[str, Fired] = {}
    for f in fired:
        first.setdefault(f.contact_id, f)
    on_time = [f for c, f in first.items() if c in expected and f.at_ms > rebuilt_at * 1000]
    backlog = [f for c, f in first.items() if c in expected and f.at_ms <= rebuilt_at * 1000]
    result.fired = len(on_time) + len(backlog)
    result.backlog = len(backlog)
    result.lateness_ms = percentiles([f.broker_ms - f.at_ms for f in on_time])
    result.lateness_receive_ms = percentiles([f.received_ms - f.at_ms for f in on_time])
    if backlog:
        result.backlog_lateness_max_ms = max(f.broker_ms - f.at_ms for f in backlog)
    if on_time:
        on_time.sort(key=lambda f: f.at_ms)
        tenths = [on_time[len(on_time) * k // 10 : len(on_time) * (k + 1) // 10] for k in range(10)]
        result.lateness_max_by_tenth_ms = [
            max(f.broker_ms - f.at_ms for f in part) for part in tenths if part
        ]
        span = max(f.broker_ms for f in on_time) - on_time[0].at_ms
        result.fired_per_s = len(on_time) / max(span / 1000, 1e-3)


# --- report ---------------------------------------------------------------


def table(results: list[Result]) -> str:
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("contacts", lambda r: fmt(r.contacts)),
        ("due in window / window s", lambda r: f"{r.due_in_window:,} / {r.window_s:.0f}"),
        ("load s (records/s)", lambda r: f"{r.load_s:.1f} ({r.load_records_per_s:,.0f})"),
        ("load MB", lambda r: fmt(r.load_mb)),
        ("start -> tables ready s", lambda r: fmt(r.start_to_ready_s, ".1f")),
        ("start -> index rebuilt s", lambda r: fmt(r.start_to_rebuilt_s, ".1f")),
        ("  of which rebuild s", lambda r: fmt(r.rebuild_s, ".2f")),
        ("index count (rebuilds)", lambda r: f"{fmt(r.rebuilt_count)} ({r.rebuilds})"),
        ("RSS at ready MB", lambda r: fmt(r.rss_mb_at_ready)),
        ("RSS after rebuild MB", lambda r: fmt(r.rss_mb_after_rebuild)),
        ("CPU s at rebuild", lambda r: fmt(r.cpu_s_at_rebuild, ".1f")),
        ("peak RSS MB", lambda r: fmt(r.peak_rss_mb)),
        ("fired / missing", lambda r: f"{r.fired:,} / {r.missing:,}"),
        ("due before rebuild (backlog)", lambda r: fmt(r.backlog)),
        ("lateness p50 ms", lambda r: fmt(r.lateness_ms.get("p50"))),
        ("lateness p95 ms", lambda r: fmt(r.lateness_ms.get("p95"))),
        ("lateness p99 ms", lambda r: fmt(r.lateness_ms.get("p99"))),
        ("lateness max ms", lambda r: fmt(r.lateness_ms.get("max"))),
        ("  at receive p99 ms", lambda r: fmt(r.lateness_receive_ms.get("p99"))),
        ("fired per s (due -> last)", lambda r: fmt(r.fired_per_s)),
        ("dup change_ids / contacts", lambda r: f"{r.duplicate_change_ids}/{r.duplicate_contacts}"),
        ("fired but not due", lambda r: fmt(r.unexpected)),
        ("ticks (metric)", lambda r: fmt(r.ticks)),
        ("index size at end (metric)", lambda r: fmt(r.timers_due_at_end)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{r.store:>18}" for r in results)]
    for name, cell in rows:
        lines.append(f"{name:{width}}  " + "  ".join(f"{cell(r):>18}" for r in results))
    return "\n".join(lines)


def auto_lead(contacts: int) -> float:
    """Seconds from the end of the load to the window: the worker's restore and rebuild.

    Calibrated on the runs in bench/README.md (about 170 us per contact for
    restore plus rebuild on this 2-core machine) with room to spare; a run
    reports how many contacts fell due before the index was ready anyway.
    """
    return 30 + contacts * 250e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument(
        "--due", type=int, default=None, help="of them due in the window (default 20,000)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds the due ones span")
    parser.add_argument("--lead", type=float, default=None, help="seconds from load to window")
    parser.add_argument("--grace", type=float, default=120.0, help="wait after the window")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--store",
        action="append",
        help="csrocksdb:// (default, the worker's), rocksdb:// (Faust's) or memory://",
    )
    add_run_args(parser)
    launch(parser.parse_args(), bench)


async def bench(args: argparse.Namespace) -> None:
    cancel_on_signals()  # the run's `finally` then stops the worker and deletes the topics
    due = min(args.due if args.due is not None else 20_000, args.contacts)
    lead = args.lead if args.lead is not None else auto_lead(args.contacts)
    results = []
    for store in args.store or ["csrocksdb://"]:
        plan = Plan(args.contacts, due, args.window, lead, args.partitions, store, args.grace)
        results.append(await run_once(plan, args.keep))
    print(table(results), flush=True)
    write_report(args.out, __file__, datetime.now(UTC), {"runs": [asdict(r) for r in results]})
    if any(r.missing or r.duplicate_contacts or r.unexpected for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

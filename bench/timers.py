"""Timers at scale: one worker holding N contacts that each have a deadline.

Usage (the local stack must be up: `scripts/stack up`; or point CS_KAFKA_BOOTSTRAP
and CS_REDIS_URL at another, e.g. a private stack a test suite cannot restart):

    .venv/bin/python bench/timers.py --contacts 1000000
    .venv/bin/python bench/timers.py --contacts 20000 --due 2000 --window 20   # quick
    .venv/bin/python bench/timers.py --contacts 1000000 --store rocksdb:// --store memory://
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
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

ROOT = Path(__file__).resolve().parents[1]
# Where the worker's code comes from: the working tree, or a `git archive` (--ref).
SOURCE = Path(os.environ.get("CS_BENCH_SOURCE", str(ROOT)))
BOOTSTRAP = os.environ.get("CS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
REDIS_URL = os.environ.get("CS_REDIS_URL", "redis://127.0.0.1:16379/0")
DAY_MS = 86_400_000
TIER_DAYS = 16  # new -> frequent (stream/domain/tiers.py BOUNDARY_DAYS[0])
TENANT = "bench"
# The count may be masked (`100***00`): the worker's log filter hides long digit runs.
REBUILT = re.compile(r"due index rebuilt: ([\d*]+) contacts with a due time \(([\d.]+)s\)")
READY = "contact-stream ready: tables recovered"
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
BATCH_BYTES = 512 * 1024


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
    from stream.settings import Settings

    settings = Settings(app_id=f"cs-{run}", topic_prefix=f"{run}.", partitions=partitions)
    return {
        # Faust names a table's changelog `{app id}-{table}-changelog`.
        "changelog": f"{settings.app_id}-contacts-changelog",
        "contact_ops": settings.topic("contact-stream.contact-ops.v1"),
        "changes": settings.topic("contacts.changes.v1"),
    }


async def create_topics(names: dict[str, str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact"} if role == "changelog" else {},
                )
                for role, name in names.items()
            ]
        )
    finally:
        await admin.close()


async def load(
    topic: str, plan: Plan, encode: Callable[[int, int], tuple[bytes, bytes]]
) -> tuple[float, int, float]:
    """Write the contacts; returns (seconds, bytes, the window's start in epoch seconds)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        max_batch_size=BATCH_BYTES,
        max_request_size=4 * BATCH_BYTES,
        linger_ms=50,
        acks=1,
    )
    await producer.start()
    partitioner = DefaultPartitioner()
    all_partitions = list(range(plan.partitions))
    batches = {p: producer.create_batch() for p in all_partitions}
    pending: list[asyncio.Future[Any]] = []
    written = 0

    async def ship(p: int) -> None:
        pending.append(await producer.send_batch(batches[p], topic, partition=p))
        batches[p] = producer.create_batch()
        if len(pending) >= 64:
            await asyncio.gather(*pending)
            pending.clear()

    async def put(i: int, due_ms: int) -> None:
        nonlocal written
        key, value = encode(i, due_ms)
        # The partition Faust writes a table entry to: its source event's, i.e.
        # the contact-ops partition of the key (the producer's default partitioner).
        p = partitioner(key, all_partitions, all_partitions)
        while batches[p].append(key=key, value=value, timestamp=None) is None:
            await ship(p)
        written += len(key) + len(value)

    started = time.monotonic()
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    try:
        far = plan.contacts - plan.due
        for i in range(far):
            await put(i, now_ms + rng.randrange(DAY_MS, 15 * DAY_MS))
        # The due sample last, its window anchored once the bulk is written.
        window_start = time.time() + plan.lead
        for k in range(plan.due):
            offset = plan.window * (k + 0.5) / plan.due
            await put(far + k, int((window_start + offset) * 1000))
        for p in all_partitions:
            if batches[p].record_count():
                await ship(p)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started, written, window_start


# --- the worker -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB, and user+system CPU seconds, of a live process."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0]) / 1024
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu"] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return out


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    started: float  # epoch seconds

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def logged_after_start(self, pattern: str | re.Pattern[str]) -> float | None:
        """Seconds from the process start to the first log line matching, by its timestamp."""
        for line in self.text().splitlines():
            if re.search(pattern, line) and (stamp := LOG_TIME.match(line)):
                moment = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                return moment.timestamp() - self.started  # both local time
        return None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_worker(run: str, plan: Plan, workdir: Path) -> Worker:
    port = free_port()
    env = {
        **os.environ,
        "CS_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "CS_REDIS_URL": REDIS_URL,
        "CS_APP_ID": f"cs-{run}",
        "CS_TOPIC_PREFIX": f"{run}.",
        "CS_REDIS_PREFIX": f"cs-{run}",
        "CS_PARTITIONS": str(plan.partitions),
        "CS_STORE": plan.store,
        "CS_DATADIR": str(workdir / "data"),
        "CS_WEB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(SOURCE),
    }
    log = workdir / "worker.log"
    started = time.time()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "-l", "info"],
            cwd=SOURCE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(process, log, port, started)


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


class ChangeWatcher:
    """Reads the changes topic from its start, keeping the timer-caused tier changes."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.fired: list[Fired] = []
        self.other = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
        await self._consumer.seek_to_beginning()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            received = int(time.time() * 1000)
            for records in batches.values():
                for record in records:
                    change = orjson.loads(record.value)
                    if change["type"] != "activity_tier.changed" or (
                        change["cause"]["kind"] != "timer"
                    ):
                        self.other += 1
                        continue
                    self.fired.append(
                        Fired(
                            change["contact_id"],
                            change["change_id"],
                            parse_ms(change["at"]),
                            record.timestamp,
                            received,
                        )
                    )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


# --- one run --------------------------------------------------------------


async def cleanup(run: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith((f"{run}.", f"cs-{run}-"))]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"cs-{run}:*", count=10_000)]
        for start in range(0, len(keys), 10_000):
            await client.delete(*keys[start : start + 10_000])
    finally:
        await client.aclose()


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def run_once(plan: Plan, keep: bool) -> Result:
    run = f"tb{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-timers-{run}-"))
    result = Result(plan.store, plan.contacts, plan.due, plan.window, plan.lead, plan.partitions)
    result.log = str(workdir / "worker.log")
    result.load_avg_at_start = list(os.getloadavg())
    names = topic_names(run, plan.partitions)
    encode = contact_encoder()
    check_encoding(encode)
    await create_topics(names, plan.partitions)
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
        worker = start_worker(run, plan, workdir)
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
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited ({worker.process.returncode}); log {worker.log}")
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
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.process.returncode}); log {worker.log}")
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
    def fmt(value: Any, spec: str = ",.0f") -> str:
        return "-" if value is None else format(value, spec)

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


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def export(ref: str) -> tuple[Path, str]:
    """`git archive REF` into a temporary directory; returns it and the commit."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if not sha:
        raise SystemExit(f"unknown git ref {ref!r}")
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True)
    target = Path(tempfile.mkdtemp(prefix=f"bench-timers-src-{sha[:8]}-"))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target, sha


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
    parser.add_argument("--store", action="append", help="rocksdb:// (default) or memory://")
    parser.add_argument("--ref", help="run the code of this git ref, not the working tree")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep topics, Redis keys, data dir")
    args = parser.parse_args()
    if args.ref and "CS_BENCH_SOURCE" not in os.environ:
        raise SystemExit(rerun_from(args.ref))
    asyncio.run(bench(args))


def rerun_from(ref: str) -> int:
    """This script again, with `stream` (and the worker) from `git archive REF`."""
    source, sha = export(ref)
    say(f"running the code of {ref} ({sha[:12]}) from {source}")
    env = {**os.environ, "CS_BENCH_SOURCE": str(source), "CS_BENCH_SHA": sha}
    env["PYTHONPATH"] = str(source)
    child = subprocess.Popen([sys.executable, *sys.argv], env=env)
    for sig in (signal.SIGINT, signal.SIGTERM):  # the child cleans up, then we do
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    code = child.wait()
    shutil.rmtree(source, ignore_errors=True)
    return code


async def bench(args: argparse.Namespace) -> None:
    # SIGINT/SIGTERM cancel the run, so the worker is stopped and the topics deleted.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    due = min(args.due if args.due is not None else 20_000, args.contacts)
    lead = args.lead if args.lead is not None else auto_lead(args.contacts)
    results = []
    for store in args.store or ["rocksdb://"]:
        plan = Plan(args.contacts, due, args.window, lead, args.partitions, store, args.grace)
        results.append(await run_once(plan, args.keep))
    print(table(results), flush=True)
    head = os.environ.get("CS_BENCH_SHA") or git("rev-parse", "HEAD")
    dirty = [] if "CS_BENCH_SHA" in os.environ else git("status", "--porcelain").splitlines()
    stamp = datetime.now(UTC)
    out = args.out or ROOT / "bench" / "results" / f"timers-{stamp:%Y-%m-%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "bench/timers.py",
        "at": stamp.isoformat(timespec="seconds"),
        "git_head": head,
        "uncommitted": dirty,
        "argv": sys.argv[1:],
        # The worker inherits these (secrets and URLs that may carry one left out).
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("CS_") and not any(s in k for s in ("PASSWORD", "TOKEN", "URL"))
        },
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "runs": [asdict(r) for r in results],
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"results in {out}")
    if any(r.missing or r.duplicate_contacts or r.unexpected for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

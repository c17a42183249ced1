"""What the benches share: the stack, a worker process, topics, preload writes, reports.

Not a bench itself. bench/timers.py, bench/engagement.py, bench/import_burst.py
and bench/recovery.py import it (`sys.path` holds bench/ when a script runs):

- the stack's addresses (`CS_KAFKA_BOOTSTRAP`, `CS_REDIS_URL`) and where the
  worker's code comes from (`SOURCE`: the working tree, or a `git archive`
  chosen by `--ref`, see `rerun_from`);
- `start_worker`: one `python -m stream.cli worker` on a run's own topics
  (`CS_TOPIC_PREFIX`/`CS_APP_ID` from the run id, as the integration tests
  do), and `Worker` to wait on its log, read its /proc figures and stop it;
- topics: `create_topics`, `delete_topics`, `cleanup` (a run's topics and
  Redis keys), `raw_baseline` (bench/intake_throughput.py's aiokafka
  passthrough, with its topics tracked for deletion), `TopicReader` (a
  consumer of whole topics from their start, in a task of its own);
- `BatchWriter` / `batch_writer`: records straight onto a chosen partition,
  in 512 KiB batches (a preload of a table's changelog, inputs up front);
- the command line and the report: `add_run_args` (`--ref`, `--out`,
  `--keep`), `launch`, `cancel_on_signals`, `percentiles`, `fmt`,
  `print_rows`, `say`, and `write_report` (the JSON with the commit, the
  uncommitted files, the CS_ environment and the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

ROOT = Path(__file__).resolve().parents[1]
# Where the worker's code comes from: the working tree, or a `git archive` (--ref).
SOURCE = Path(os.environ.get("CS_BENCH_SOURCE", str(ROOT)))
BOOTSTRAP = os.environ.get("CS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
REDIS_URL = os.environ.get("CS_REDIS_URL", "redis://127.0.0.1:16379/0")
BATCH_BYTES = 512 * 1024
# The line tests and operators wait for (stream/app.py): partitions assigned, tables recovered.
READY = "contact-stream ready: tables recovered"
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


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


def dead_letter_event_id(letter: dict[str, Any]) -> str | None:
    """The `event_id` of the input a dead letter carries, if its raw input has one."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(orjson.loads(letter["raw"])["event_id"])
    return None


def fmt(value: Any, spec: str = ",.0f") -> str:
    """A figure for a table; `-` when there is none."""
    return "-" if value is None else format(value, spec)


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A table of two columns: what, and its figure."""
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:{width}}  {value}")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """`--ref`, `--out`, `--keep`: what every bench takes."""
    parser.add_argument("--ref", help="run the code of this git ref, not the working tree")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep topics, Redis keys, data dir")


def launch(
    args: argparse.Namespace, bench: Callable[[argparse.Namespace], Awaitable[int | None]]
) -> NoReturn:
    """`bench(args)` on this tree's code, or this script again from `git archive REF` (--ref)."""
    if args.ref and "CS_BENCH_SOURCE" not in os.environ:
        raise SystemExit(rerun_from(args.ref))
    raise SystemExit(asyncio.run(bench(args)))


def median_round(rounds: list[dict[str, Any]], ratio: Callable[[dict[str, Any]], float]) -> Any:
    """The round whose `ratio` is the median of the rounds' (the upper one of an even count)."""
    ratios = sorted(ratio(r) for r in rounds)
    return next(r for r in rounds if ratio(r) == ratios[len(ratios) // 2])


def cancel_on_signals() -> None:
    """SIGINT/SIGTERM cancel the current task, so its `finally` stops the worker and cleans up."""
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)


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

    def status(self) -> dict[str, float]:
        """`proc_status` of the worker process (empty once it has exited)."""
        return proc_status(self.process.pid)

    def logged_after_start(self, pattern: str | re.Pattern[str]) -> float | None:
        """Seconds from the process start to the first log line matching, by its timestamp."""
        for line in self.text().splitlines():
            if re.search(pattern, line) and (stamp := LOG_TIME.match(line)):
                moment = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                return moment.timestamp() - self.started  # both local time
        return None

    def check(self) -> None:
        """Raise, with the log's tail, if the worker has exited."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"worker exited ({self.process.returncode}); log {self.log}:\n{tail}"
            )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_worker(
    run: str,
    workdir: Path,
    partitions: int,
    *,
    log_level: str = "info",
    store: str | None = None,
    log_name: str = "worker.log",
    command: Sequence[str] | None = None,
) -> Worker:
    """One worker on the run's topics (`{run}.`, app id `cs-{run}`), data in `workdir/data`.

    `log_level` is the worker's `-l` (`info` logs the ready and index lines
    bench/timers.py times; the product's library loggers stay at WARNING
    either way); `store` sets `CS_STORE` (default: the worker's, RocksDB);
    `command` runs another `contact-stream` command with the same settings
    (`["outputs"]`: the relay and the projection, stream/outputs.py).
    """
    port = free_port()
    env = {
        **os.environ,
        "CS_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "CS_REDIS_URL": REDIS_URL,
        "CS_APP_ID": f"cs-{run}",
        "CS_TOPIC_PREFIX": f"{run}.",
        "CS_REDIS_PREFIX": f"cs-{run}",
        "CS_PARTITIONS": str(partitions),
        "CS_DATADIR": str(workdir / "data"),
        "CS_WEB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(SOURCE),
    }
    if store is not None:
        env["CS_STORE"] = store
    log = workdir / log_name
    started = time.time()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", *(command or ["worker", "-l", log_level])],
            cwd=SOURCE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(process, log, port, started)


# --- topics and Redis -----------------------------------------------------


def topic_settings(run: str, partitions: int) -> Any:
    """The product's Settings of a run: its topic names (`.topic(...)`) and app id."""
    from stream.settings import Settings  # after `--ref` has chosen the `stream` package

    return Settings(app_id=f"cs-{run}", topic_prefix=f"{run}.", partitions=partitions)


async def create_topics(
    topics: Iterable[str], partitions: int, compacted: Collection[str] = ()
) -> None:
    """The topics, one replica each; those named in `compacted` with `cleanup.policy=compact`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
                )
                for name in topics
            ]
        )
    finally:
        await admin.close()


async def delete_topics(topics: list[str]) -> None:
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


async def cleanup(run: str) -> None:
    """Delete a run's topics (`{run}.*`, `cs-{run}-*`) and Redis keys (`cs-{run}:*`)."""
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


async def raw_baseline(records: int) -> tuple[float, list[str]]:
    """bench/intake_throughput.py's passthrough; returns records/s and the topics it made."""
    from intake_throughput import raw_passthrough

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        before = set(await admin.list_topics())
        rate = await raw_passthrough(records)
        made = [
            t for t in await admin.list_topics() if t not in before and t.startswith("bench-raw")
        ]
    finally:
        await admin.close()
    return rate, made


class TopicReader:
    """Reads topics from their start in a task of its own, each record to `handle`."""

    def __init__(self, topics: Iterable[str], partitions: int) -> None:
        self.topics = tuple(topics)
        self.partitions = partitions
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # so that no reset can overtake the seek to the start
            # Change events are visible once the change relay's transaction commits.
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    def handle(self, record: ConsumerRecord[bytes, bytes], received_ms: int) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(
            [TopicPartition(t, p) for t in self.topics for p in range(self.partitions)]
        )
        await self._consumer.seek_to_beginning()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            received = int(time.time() * 1000)
            for records in batches.values():
                for record in records:
                    self.handle(record, received)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


# --- writing records straight to a partition -------------------------------


def big_producer() -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        max_batch_size=BATCH_BYTES,
        max_request_size=4 * BATCH_BYTES,
        linger_ms=50,
        acks=1,
    )


class BatchWriter:
    """Records into (topic, partition) batches of 512 KiB, on an explicit partition."""

    def __init__(self, producer: AIOKafkaProducer, partitions: int) -> None:
        self.producer = producer
        self.partitions = list(range(partitions))
        self.partitioner = DefaultPartitioner()
        self.batches: dict[tuple[str, int], Any] = {}
        self.pending: list[asyncio.Future[Any]] = []
        self.bytes = 0
        self.records = 0

    def partition_of(self, key: bytes) -> int:
        """Where the worker's producer sends `key` (the default partitioner, no explicit one)."""
        return int(self.partitioner(key, self.partitions, self.partitions))

    async def put(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        slot = (topic, partition)
        if slot not in self.batches:
            self.batches[slot] = self.producer.create_batch()
        while self.batches[slot].append(key=key, value=value, timestamp=None) is None:
            await self._ship(slot)
            self.batches[slot] = self.producer.create_batch()
        self.bytes += len(key) + len(value)
        self.records += 1

    async def _ship(self, slot: tuple[str, int]) -> None:
        batch = self.batches.pop(slot)
        self.pending.append(await self.producer.send_batch(batch, slot[0], partition=slot[1]))
        if len(self.pending) >= 64:
            await asyncio.gather(*self.pending)
            self.pending.clear()

    async def close(self) -> None:
        for slot in list(self.batches):
            if self.batches[slot].record_count():
                await self._ship(slot)
        await asyncio.gather(*self.pending)


@contextlib.asynccontextmanager
async def batch_writer(partitions: int) -> AsyncIterator[BatchWriter]:
    """A `BatchWriter` on a producer of its own; every record is acknowledged on exit."""
    producer = big_producer()
    await producer.start()
    try:
        writer = BatchWriter(producer, partitions)
        yield writer
        await writer.close()
    finally:
        await producer.stop()


# --- the code measured, and the report ------------------------------------


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


def report_header(benchmark: str, stamp: datetime) -> dict[str, Any]:
    """The fields every bench's JSON starts with: what ran, on which code, where."""
    return {
        "benchmark": benchmark,
        "at": stamp.isoformat(timespec="seconds"),
        "git_head": os.environ.get("CS_BENCH_SHA") or git("rev-parse", "HEAD"),
        "measured_code": "git archive of git_head" if "CS_BENCH_SHA" in os.environ else "worktree",
        "uncommitted": git("status", "--porcelain").splitlines(),
        "argv": sys.argv[1:],
        # The worker inherits these (secrets and URLs that may carry one left out).
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("CS_") and not any(s in k for s in ("PASSWORD", "TOKEN", "URL"))
        },
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
    }


def write_report(
    out: Path | None, script: str, stamp: datetime, body: dict[str, Any], name: str | None = None
) -> Path:
    """`report_header` + `body` as JSON to `out`, by default
    bench/results/<name (the script's stem)>-<UTC time>.json."""
    name = name or Path(script).stem
    path = out or ROOT / "bench" / "results" / f"{name}-{stamp:%Y-%m-%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {**report_header(f"bench/{Path(script).name}", stamp), **body}
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    say(f"results in {path}")
    return path

"""The engagement workload (issue #11): preloaded contacts, engagement events by email.

Usage (a stack must be up; a private one keeps a test suite from restarting
the broker under the bench, see bench/README.md):

    .venv/bin/python bench/engagement.py --ref HEAD                    # 100 k + 20 k
    .venv/bin/python bench/engagement.py --ref HEAD --events 100000    # the issue's 100 k
    .venv/bin/python bench/engagement.py --ref HEAD --contacts 2000 --events 2000  # check
    .venv/bin/python bench/engagement.py --ref HEAD --profile --latency 2000 50

One run, on topics of its own (a fresh `CS_TOPIC_PREFIX` / `CS_APP_ID`, as
bench/timers.py does; the worker, topic and report helpers are bench/common.py's):
1. raw: bench/intake_throughput.py's aiokafka consume -> produce loop over
   the same number of records: the ceiling on this machine, in this run;
2. preload: N contacts (one email each, marketing, campaign status `active`,
   tier `new`, nothing due for days) written straight into the changelog of
   the `contacts` table, and their emails (`tenant|email|value` -> owner) into
   the changelog of the `identities` table, each record on the partition
   Faust would write it to: a table entry goes to the partition of the event
   being processed, i.e. the contact-ops partition of `tenant:contact_id` and
   the identity-ops partition of the identity key (aiokafka's murmur2, the
   partitioner the worker uses);
3. inputs: M records (`--events`, default 20,000: 100,000 would take ~28
   min on the loaded 2-core machine, see bench/README.md) produced up front,
   90 % engagement events naming a preloaded contact by email (sent 50 %,
   open 35 %, click 15 %; `occurred_at` within the last 10 minutes), 10 %
   intakes of new emails (source `import`);
4. throughput: one worker (`python -m stream.cli worker -l warn`; `--workers
   N`: N of them sharing the partitions, their CPU summed;
   `--outputs-process`: the change relay and the Redis projection in
   `contact-stream outputs` beside them, its CPU summed too) is started
   and the clock runs from the first change event to the last (the change
   records' broker timestamps, CreateTime set by the worker): inputs/s and
   change events/s; end to end, from the first input the worker handled
   (the earliest record of its first hops) to the last change event, with
   the worker's CPU from then (the figure `make bench` judges: the router
   takes most of its topic in before the first change); then until the
   Redis projection has caught up (its consumer group's committed offsets
   reach the end of the topics it reads),
   with the Redis commands and scripts run meanwhile. Every input must come
   out as a change event: a dead letter (`unknown_contact` would mean the
   preload is not where the worker looks) fails the run;
5. `--profile`: `py-spy record --nonblocking -r 200 -f raw` (with `--gil` if
   `--profile-gil`) attached to the worker for
   `--profile-seconds` (20) once `--profile-at` (0.2) of the inputs are
   out (0: from the worker's start); the top
   functions by self and by inclusive time are printed, the raw
   collapsed stacks kept in bench/results/;
6. `--latency RATE ...`: with the worker running and caught up, engagement
   events at a fixed RATE for `--latency-seconds` (30): p50/p95/p99 of
   (change event's broker timestamp - the input's produce time) over every
   event; of (the change event in this bench's read_committed reader's
   hands - produce time), the relay's commit included; and of (snapshot
   seen in Redis - produce time) over 1 event in 20 (each sampled event
   names a contact no other event of the phase names, so its Redis key
   changes only for it; polled every 10 ms). If the worker
   cannot keep up, the backlog and the achieved rate are reported instead;
7. bench/results/engagement-<UTC time>.json (all figures, the commit, the
   uncommitted files); the run's topics, Redis keys and data dir are deleted.

`--ref REF` runs the worker (and the encoding of the preload) from
`git archive REF`, so edits in the working tree are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BOOTSTRAP,
    REDIS_URL,
    ROOT,
    SOURCE,
    BatchWriter,
    TopicReader,
    Worker,
    add_run_args,
    big_producer,
    cancel_on_signals,
    cleanup,
    create_topics,
    dead_letter_event_id,
    delete_topics,
    fmt,
    launch,
    percentiles,
    print_rows,
    proc_status,
    raw_baseline,
    say,
    start_worker,
    topic_settings,
    write_report,
)

DAY_MS = 86_400_000
TENANT = "bench"
# Engagement types of the workload, with their share (SPEC §2.3: a campaign's
# sends, and the opens and clicks they bring).
TYPES = (("sent", 50), ("open", 35), ("click", 15))
INTAKE_EVERY = 10  # every 10th input is an intake of a new email
SAMPLE_EVERY = 20  # latency mode: 1 event in 20 is followed into Redis
SAMPLES_KEPT = 20_000  # latency samples kept in the JSON per phase and kind
STACK_DIR = os.environ.get("CS_STACK_DIR")


def email_of(i: int) -> str:
    return f"person{i}@bench.example.com"


def contact_id_of(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


# --- preload ----------------------------------------------------------------


def starting_engagement(now_ms: int) -> Any:
    """The engagement every preloaded contact starts with (also bench/quix_scoring.py's state)."""
    from stream.domain.engagement import Engagement

    last = now_ms - DAY_MS
    activated = now_ms - 30 * DAY_MS
    return Engagement(
        score=5.0,
        score_at=last,
        last_engagement_at=last,
        last_activity_at=last,
        activity=(("open", last), ("sent", last - 3_600_000)),
        campaign_status="active",
        status_reason="activated",
        status_since=activated,
        activated_at_latest=activated,
        tier="new",
    )


def preload_encoders(now_ms: int) -> tuple[Callable[[int], tuple[bytes, bytes]], ...]:
    """(contact i -> contacts-table record, contact i -> identities-table record)."""
    # Imported here, after `--ref` has chosen which `stream` package is on the path.
    from stream.domain.contact import Contact, TimedValue
    from stream.domain.locking import Entry
    from stream.domain.marketing import Marketing
    from stream.domain.normalize import Kind
    from stream.tables.codec import encode_contact
    from stream.tables.contacts import contact_key
    from stream.tables.identities import encode_entry, identity_key

    last = now_ms - DAY_MS  # tier `new` for 15 more days
    activated = now_ms - 30 * DAY_MS  # `inactive` by days would be 60 days away

    def contact(i: int) -> tuple[bytes, bytes]:
        cid = contact_id_of(i)
        email = email_of(i)  # normalized already (check_preload)
        value = Contact(
            tenant_id=TENANT,
            contact_id=cid,
            source="import",
            created_at=activated,
            updated_at=last,
            version=4,
            emails=(email,),
            fields=(
                ("city", TimedValue("Madrid", activated, f"pre{i}")),
                ("first_name", TimedValue("Ana", activated, f"pre{i}")),
            ),
            engagement=starting_engagement(now_ms),
            marketing=Marketing(active=True, activated_at=activated, slot_request=i),
        )
        return contact_key(TENANT, cid).encode(), encode_contact(value)

    def identity(i: int) -> tuple[bytes, bytes]:
        key = identity_key(TENANT, Kind.EMAIL.value, email_of(i))
        return key.encode(), encode_entry(Entry(owner=contact_id_of(i)))

    return contact, identity


def check_preload(now_ms: int) -> None:
    """A preloaded contact decodes as written, owns its normalized email, and nothing is due."""
    from stream.domain.commands import next_due
    from stream.domain.normalize import normalize_email
    from stream.tables.codec import decode_contact, encode_contact
    from stream.tables.identities import decode_entry

    contact, identity = preload_encoders(now_ms)
    _, raw = contact(5)
    decoded = decode_contact(raw)
    if encode_contact(decoded) != raw:
        raise RuntimeError("a preloaded contact does not survive decode/encode: the codec changed")
    if normalize_email(email_of(5)) != decoded.emails[0]:
        raise RuntimeError("the preloaded email is not in normalized form")
    if decode_entry(identity(5)[1]).owner != decoded.contact_id:
        raise RuntimeError("the identity entry does not name its contact")
    due = next_due(decoded)
    if due is not None and due < now_ms + DAY_MS:
        raise RuntimeError(f"a preloaded contact is due at {due}: a timer would fire in the run")


def names_of(run: str, partitions: int) -> dict[str, str]:
    s = topic_settings(run, partitions)
    return {
        # Faust names a table's changelog `{app id}-{table}-changelog`.
        "contacts_changelog": f"{s.app_id}-contacts-changelog",
        "identities_changelog": f"{s.app_id}-identities-changelog",
        "intake": s.topic("contacts.intake.v1"),
        "engagement": s.topic("contacts.engagement.v1"),
        "changes": s.topic("contacts.changes.v1"),
        "deadletter": s.topic("contacts.deadletter.v1"),
        "snapshots": s.topic("contact-stream.snapshots.v1"),
        # The worker's first hops: an engagement's router and an intake's agent write
        # here as they take their inputs (the worker creates them).
        "contact_ops": s.topic("contact-stream.contact-ops.v1"),
        "identity_ops": s.topic("contact-stream.identity-ops.v1"),
        "projection_group": f"{s.app_id}-projection",
        "redis_prefix": f"cs-{run}",
    }


TOPIC_ROLES = ("contacts_changelog", "identities_changelog", "intake", "engagement")
TOPIC_ROLES += ("changes", "deadletter", "snapshots")
COMPACTED = ("contacts_changelog", "identities_changelog", "snapshots")


async def preload(names: dict[str, str], contacts: int, partitions: int, now_ms: int) -> dict:
    contact, identity = preload_encoders(now_ms)
    producer = big_producer()
    await producer.start()
    writer = BatchWriter(producer, partitions)
    started = time.monotonic()
    try:
        for i in range(contacts):
            key, value = contact(i)
            # A contacts-table entry is written while a contact-ops record keyed so is processed.
            await writer.put(names["contacts_changelog"], key, value, writer.partition_of(key))
            key, value = identity(i)
            # An identities-table entry: while an identity-ops record with this key is.
            await writer.put(names["identities_changelog"], key, value, writer.partition_of(key))
        await writer.close()
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    return {
        "records": writer.records,
        "mb": writer.bytes / 1e6,
        "seconds": seconds,
        "records_per_s": writer.records / seconds,
    }


# --- inputs -----------------------------------------------------------------


def engagement(event_id: str, i: int, kind: str, occurred_ms: int) -> bytes:
    from stream.domain.timefmt import format_ms

    return orjson.dumps(
        {
            "event_id": event_id,
            "tenant_id": TENANT,
            "type": kind,
            "email": email_of(i),
            "campaign_id": "spring-sale",
            "occurred_at": format_ms(occurred_ms),
        }
    )


def intake(event_id: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "tenant_id": TENANT,
            "source": "import",
            "emails": [f"new{n}@bench.example.com"],
            "fields": {"first_name": "Luis", "city": "Sevilla"},
        }
    )


def pick_type(rng: random.Random) -> str:
    return rng.choices([t for t, _ in TYPES], weights=[w for _, w in TYPES])[0]


async def produce_inputs(
    run: str, names: dict[str, str], contacts: int, events: int, partitions: int
) -> dict:
    """M inputs, keyed by email as producers usually do; the intakes interleaved."""
    rng = random.Random(11)
    now_ms = int(time.time() * 1000)
    producer = big_producer()
    await producer.start()
    writer = BatchWriter(producer, partitions)
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for n in range(events):
            if n % INTAKE_EVERY == INTAKE_EVERY - 1:
                value = intake(f"{run}-t-i{n}", n)
                key = f"new{n}@bench.example.com".encode()
                topic = names["intake"]
                kinds["intake"] += 1
            else:
                i = rng.randrange(contacts)
                kind = pick_type(rng)
                value = engagement(f"{run}-t-e{n}", i, kind, now_ms - rng.randrange(600_000))
                key, topic = email_of(i).encode(), names["engagement"]
                kinds[kind] += 1
            await writer.put(topic, key, value, writer.partition_of(key))
        await writer.close()
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    return {"seconds": seconds, "records_per_s": events / seconds, "kinds": dict(kinds)}


# --- watching the outputs -----------------------------------------------------


@dataclass
class Seen:
    ts: int  # broker timestamp of the change record
    event_id: str | None
    type: str
    contact_id: str
    version: int


class Outputs(TopicReader):
    """Every change event and dead letter of the run, read from the start."""

    def __init__(self, names: dict[str, str], partitions: int) -> None:
        super().__init__((names["changes"], names["deadletter"]), partitions)
        self.changes: list[Seen] = []
        # event_id -> broker timestamp of its first change event (CreateTime: when the
        # contact partition published it to the outbox; the relay keeps that timestamp)
        self.done: dict[str, int] = {}
        # event_id -> when this read_committed reader got that change event: after the
        # relay's transaction committed, as any reader of the changes topic gets it
        self.readable: dict[str, int] = {}
        self.dead: dict[str | None, str] = {}
        self.dead_reasons: Counter[str] = Counter()
        # Inputs that gave a change event or a dead letter, per registered phase prefix.
        self.phases: list[str] = []
        self._counts: Counter[str] = Counter()
        self._counted: set[str] = set()

    def handle(self, record: ConsumerRecord[bytes, bytes], received_ms: int) -> None:
        value = orjson.loads(record.value or b"null")
        if record.topic == self.topics[0]:
            event_id = value["cause"]["event_id"]
            self.changes.append(
                Seen(
                    record.timestamp, event_id, value["type"], value["contact_id"], value["version"]
                )
            )
            if event_id is not None and event_id not in self.done:
                self.done[event_id] = record.timestamp
                self.readable[event_id] = received_ms
                self._count(event_id)
        else:
            event_id = dead_letter_event_id(value)
            self.dead[event_id] = value["reason"]
            self.dead_reasons[value["reason"]] += 1
            if event_id is not None:
                self._count(event_id)

    def _count(self, event_id: str) -> None:
        if event_id in self._counted:
            return
        self._counted.add(event_id)
        for phase in self.phases:
            if event_id.startswith(phase):
                self._counts[phase] += 1

    def accounted(self, prefix: str) -> int:
        """Inputs of a phase (registered before its inputs) that gave a change or a dead letter."""
        return self._counts[prefix]


# --- machine and process CPU ----------------------------------------------------


def stack_pids() -> dict[str, int]:
    out: dict[str, int] = {}
    if STACK_DIR:
        for name, path in (("kafka", "kafka/kafka.pid"), ("redis", "redis/redis.pid")):
            with contextlib.suppress(OSError, ValueError):
                out[name] = int((Path(STACK_DIR) / path).read_text().split()[0])
    return out


# Workers started beside the first with `--workers N` (the figures' "worker" is their sum).
EXTRA_WORKERS: list[Worker] = []


def check_workers(worker: Worker) -> None:
    """Raise if the worker, or one started beside it, has exited."""
    for each in (worker, *EXTRA_WORKERS):
        each.check()


def cpu_times(worker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of the worker(s), broker, Redis, this bench, and the machine."""
    out: dict[str, float] = {"at": time.time()}
    pids = {**stack_pids(), "bench": os.getpid()}
    for name, pid in pids.items():
        cpu = proc_status(pid).get("cpu")
        if cpu is not None:
            out[name] = cpu
    if worker_pid is not None:
        workers = [worker_pid, *(w.process.pid for w in EXTRA_WORKERS)]
        seconds = [proc_status(pid).get("cpu") for pid in workers]
        if all(cpu is not None for cpu in seconds):
            out["worker"] = sum(cpu for cpu in seconds if cpu is not None)
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    hz = os.sysconf("SC_CLK_TCK")
    out["machine_busy"] = (sum(ticks) - ticks[3] - ticks[4]) / hz  # minus idle, iowait
    out["machine_total"] = sum(ticks) / hz
    return out


def cpu_between(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Cores used by each over the interval (1.0 = one core busy all the time)."""
    wall = max(b["at"] - a["at"], 1e-6)
    out = {
        name: round((b[name] - a[name]) / wall, 3)
        for name in a
        if name not in ("at", "machine_total") and name in b
    }
    out["machine_busy_fraction"] = round(
        (b["machine_busy"] - a["machine_busy"])
        / max(b["machine_total"] - a["machine_total"], 1e-6),
        3,
    )
    out.pop("machine_busy", None)
    out["seconds"] = round(wall, 1)
    return out


# --- Redis ----------------------------------------------------------------------


async def redis_stats(client: aioredis.Redis) -> dict[str, float]:
    info = await client.info("all")
    scripts = sum(
        v.get("calls", 0)
        for k, v in info.items()
        if k in ("cmdstat_evalsha", "cmdstat_eval") and isinstance(v, dict)
    )
    return {
        "at": time.time(),
        "commands": float(info.get("total_commands_processed", 0)),
        "scripts": float(scripts),
    }


async def projection_behind(
    admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer, names: dict[str, str], partitions: int
) -> int | None:
    """Records of the topics the projection reads that it has not committed yet."""
    committed = await admin.list_consumer_group_offsets(names["projection_group"])
    topics = {tp.topic for tp in committed} & {names["snapshots"], names["changes"]}
    if names["snapshots"] not in topics:
        return None
    wanted = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    ends = await offsets.end_offsets(wanted)
    return sum(max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in wanted)


async def wait_projection(
    names: dict[str, str], partitions: int, worker: Worker, deadline_s: float
) -> float | None:
    """Epoch seconds when the projection had committed every snapshot (and change) written."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    offsets = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await offsets.start()
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            check_workers(worker)
            polled = time.time()
            if await projection_behind(admin, offsets, names, partitions) == 0:
                return polled
            await asyncio.sleep(0.25)
        return None
    finally:
        await offsets.stop()
        await admin.close()


async def verify_redis(
    client: aioredis.Redis, prefix: str, changes: list[Seen], sample: int
) -> dict[str, int]:
    """For a sample of contacts, Redis holds the version of their last change event."""
    latest: dict[str, int] = {}
    for s in changes:
        latest[s.contact_id] = max(latest.get(s.contact_id, 0), s.version)
    ids = random.Random(3).sample(sorted(latest), min(sample, len(latest)))
    out = Counter(checked=len(ids))
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        values = await client.mget([f"{prefix}:{{{TENANT}}}:c:{c}" for c in part])
        for cid, raw in zip(part, values, strict=True):
            if raw is None:
                out["missing"] += 1
            elif orjson.loads(raw)["version"] < latest[cid]:
                out["behind"] += 1
            else:
                out["current"] += 1
    return dict(out)


# --- a stall ----------------------------------------------------------------------

STALL_S = 120  # no input out for this long: the worker's state is logged and kept


async def keep_stall_evidence(worker: Worker, stamp: str) -> None:
    """SIGUSR2 the worker (stream/diagnostics.py logs its state) and keep its log."""
    worker.process.send_signal(signal.SIGUSR2)
    await asyncio.sleep(3)
    kept = ROOT / "bench" / "results" / f"engagement-stall-{stamp}.log"
    shutil.copyfile(worker.log, kept)
    say(f"no progress for {STALL_S} s: the worker's state and log are in {kept}")


# --- profile ----------------------------------------------------------------------


def pyspy() -> str:
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        raise SystemExit(f"{path} missing: .venv/bin/pip install py-spy")
    return str(path)


def short_frame(frame: str) -> str:
    """`fn (/long/path/site-packages/pkg/mod.py:123)` -> `fn (pkg/mod.py)`."""
    frame = re.sub(r":\d+\)$", ")", frame)
    frame = re.sub(r"\(.*?site-packages/", "(", frame)
    frame = re.sub(r"\(/tmp/bench-timers-src-[^/]+/", "(", frame)
    return frame.replace(f"({SOURCE}/", "(").replace(f"({ROOT}/", "(")


def read_profile(path: Path, top: int = 30) -> dict[str, Any]:
    """Self and inclusive samples per function (line numbers merged) of collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short_frame(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        file = re.search(r"\(([^()]*)\)$", frames[-1])
        by_file[file.group(1) if file else frames[-1]] += n

    def table(counter: Counter[str], k: int) -> list[tuple[str, int, float]]:
        return [(name, n, round(100 * n / max(total, 1), 1)) for name, n in counter.most_common(k)]

    return {
        "samples": total,
        "self": table(own, top),
        "inclusive": table(inclusive, top),
        "self_by_file": table(by_file, 20),
    }


async def profile_worker(pid: int, seconds: float, out: Path, gil: bool = False) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        pyspy(),
        "record",
        # Not stopping the worker for each sample: here a stopped process is
        # caught at a system call far more often than it spends there (a probe
        # of ~1 µs getpid-backed `create_future` beside 3 µs of pure Python got
        # 95 % of the samples; with --nonblocking 40 %, against ~25 % by the
        # clock; docs/performance.md, session 25).
        "--nonblocking",
        *(["--gil"] if gil else []),
        "-r",
        "200",
        "-f",
        "raw",
        "-d",
        str(int(seconds)),
        "-p",
        str(pid),
        "-o",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0 or not out.exists():
        return {"error": output.decode(errors="replace")[-2000:]}
    return {"file": str(out.relative_to(ROOT)), **read_profile(out)}


def print_profile(profile: dict[str, Any]) -> None:
    if "error" in profile:
        say(f"py-spy failed: {profile['error']}")
        return
    for title, rows in (
        ("by self time", profile["self"]),
        ("by inclusive time", profile["inclusive"]),
        ("self time by file", profile["self_by_file"]),
    ):
        print(f"\nprofile, top {len(rows)} {title} ({profile['samples']:,} samples):")
        for name, n, pct in rows:
            print(f"  {pct:5.1f} %  {n:7,}  {name}")


# --- phases -------------------------------------------------------------------------


@dataclass
class Throughput:
    inputs: int = 0
    engagements: int = 0
    intakes: int = 0
    change_events: int = 0
    change_types: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    worker_start_to_first_change_s: float | None = None
    # End to end: from the first input the worker handled (the earliest record of
    # its first hops, broker timestamps) to the last change event. The router takes
    # its whole topic in before most contact operations run, so the clock from the
    # first change event (`elapsed_s`, `inputs_per_s`) leaves most of its work out.
    first_input_to_first_change_s: float | None = None
    end_to_end_s: float | None = None
    inputs_per_s_end_to_end: float | None = None
    of_raw_end_to_end: float | None = None
    # From when a first hop's end offsets were first seen above 0 (polled every 0.2 s).
    worker_cpu_us_per_input_end_to_end: float | None = None
    elapsed_s: float | None = None
    inputs_per_s: float | None = None
    change_events_per_s: float | None = None
    of_raw: float | None = None
    worker_cpu_us_per_input: float | None = None
    cores_while_processing: dict[str, float] = field(default_factory=dict)
    redis_caught_up_after_first_change_s: float | None = None
    redis_lag_after_last_change_s: float | None = None
    inputs_per_s_into_redis: float | None = None
    redis_commands_per_s: float | None = None
    redis_scripts_per_s: float | None = None
    snapshots_written: int | None = None
    redis_check: dict[str, int] = field(default_factory=dict)
    # (seconds since the first change, inputs accounted) every ~5 s
    timeline: list[tuple[float, int]] = field(default_factory=list)


async def throughput_phase(
    run: str,
    names: dict[str, str],
    args: argparse.Namespace,
    outputs: Outputs,
    worker: Worker,
    result: dict[str, Any],
    redis: aioredis.Redis,
) -> Throughput:
    t = Throughput(inputs=args.events)
    started = time.time()
    profile_task: asyncio.Task[dict[str, Any]] | None = None
    cpu_first: dict[str, float] | None = None
    redis_first: dict[str, float] | None = None
    last_report = 0.0
    deadline = time.monotonic() + args.timeout
    progress = (0, time.monotonic())  # inputs out, when that count was first seen
    hops = [TopicPartition(names[h], p) for h in HOPS for p in range(args.partitions)]
    cpu_handled: dict[str, float] | None = None
    watcher = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await watcher.start()
    while True:
        check_workers(worker)
        if cpu_handled is None and await has_records(watcher, hops):
            cpu_handled = cpu_times(worker.process.pid)
        done = outputs.accounted(f"{run}-t-")
        now = time.time()
        if done != progress[0]:
            progress = (done, time.monotonic())
        elif time.monotonic() - progress[1] > STALL_S and done:
            await keep_stall_evidence(worker, result["stamp"])
            raise RuntimeError(
                f"stalled: {done:,} of {args.events:,} inputs out, none for {STALL_S}s"
            )
        if args.profile and profile_task is None and done >= args.events * args.profile_at:
            # Mid-run: the route agent may be done with its topic by then, the hops are not.
            say(f"profiling the worker for {args.profile_s:.0f} s ({done:,} inputs out)")
            out = ROOT / "bench" / "results" / f"engagement-profile-{result['stamp']}.txt"
            profile_task = asyncio.create_task(
                profile_worker(worker.process.pid, args.profile_s, out, args.profile_gil)
            )
        if cpu_first is None and outputs.changes:
            cpu_first = cpu_times(worker.process.pid)
            redis_first = await redis_stats(redis)
            first_ts = min(s.ts for s in outputs.changes) / 1000
            t.worker_start_to_first_change_s = round(first_ts - started, 1)
            say(f"first change event {t.worker_start_to_first_change_s} s after the worker start")
        if cpu_first is not None and now - last_report >= 5:
            last_report = now
            t.timeline.append((round(now - cpu_first["at"], 1), done))
            result["load_avg"].append((round(now - started), *os.getloadavg()))
            if len(t.timeline) % 2 == 1:
                say(f"{done:,} of {args.events:,} inputs out; load {os.getloadavg()[0]:.2f}")
        if done >= args.events:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done:,} of {args.events:,} inputs out after {args.timeout}s")
        await asyncio.sleep(0.2)
    cpu_last = cpu_times(worker.process.pid)
    assert cpu_first is not None and redis_first is not None
    mine = [s for s in outputs.changes if s.event_id and s.event_id.startswith(f"{run}-t-")]
    first, last = min(s.ts for s in mine), max(s.ts for s in mine)
    try:
        handled = await first_timestamp(watcher, hops)
    finally:
        await watcher.stop()
    if handled is not None:
        t.first_input_to_first_change_s = (first - handled) / 1000
        t.end_to_end_s = (last - handled) / 1000
        t.inputs_per_s_end_to_end = args.events / max(t.end_to_end_s, 1e-3)
    if cpu_handled is not None and "worker" in cpu_handled and "worker" in cpu_last:
        t.worker_cpu_us_per_input_end_to_end = (
            (cpu_last["worker"] - cpu_handled["worker"]) / args.events * 1e6
        )
    t.elapsed_s = (last - first) / 1000
    t.change_events = len(mine)
    t.change_types = dict(Counter(s.type for s in mine).most_common())
    t.dead_letters = dict(outputs.dead_reasons)
    t.engagements = sum(1 for e in outputs.done if e.startswith(f"{run}-t-e"))
    t.intakes = sum(1 for e in outputs.done if e.startswith(f"{run}-t-i"))
    t.inputs_per_s = args.events / max(t.elapsed_s, 1e-3)
    t.change_events_per_s = t.change_events / max(t.elapsed_s, 1e-3)
    t.cores_while_processing = cpu_between(cpu_first, cpu_last)
    if "worker" in cpu_first and "worker" in cpu_last:
        t.worker_cpu_us_per_input = (cpu_last["worker"] - cpu_first["worker"]) / args.events * 1e6
    say(
        f"all {args.events:,} inputs out in {t.elapsed_s:.1f} s from the first change event "
        f"({t.inputs_per_s:,.0f} inputs/s, {t.change_events_per_s:,.0f} change events/s); "
        f"end to end {fmt(t.end_to_end_s, '.1f')} s ({fmt(t.inputs_per_s_end_to_end)} inputs/s)"
    )
    caught_up = await wait_projection(names, args.partitions, worker, 600)
    redis_last = await redis_stats(redis)
    if caught_up is not None:
        t.redis_caught_up_after_first_change_s = caught_up - first / 1000
        t.redis_lag_after_last_change_s = caught_up - last / 1000
        t.inputs_per_s_into_redis = args.events / t.redis_caught_up_after_first_change_s
        span = max(redis_last["at"] - redis_first["at"], 1e-3)
        t.redis_commands_per_s = (redis_last["commands"] - redis_first["commands"]) / span
        t.redis_scripts_per_s = (redis_last["scripts"] - redis_first["scripts"]) / span
        t.snapshots_written = int(redis_last["scripts"] - redis_first["scripts"])
        say(
            f"Redis caught up {t.redis_caught_up_after_first_change_s:.1f} s after the first "
            f"change ({t.redis_lag_after_last_change_s:.1f} s after the last)"
        )
    else:
        say("the projection did not catch up within 600 s")
    t.redis_check = await verify_redis(redis, names["redis_prefix"], mine, 2000)
    if profile_task is not None:
        result["profile"] = await profile_task
    return t


@dataclass
class Latency:
    rate_asked: float
    seconds: float
    produced: int = 0
    produce_rate: float | None = None
    processed: int = 0
    backlog_at_end_of_produce: int | None = None
    kept_up: bool | None = None
    achieved_rate_during_produce: float | None = None
    achieved_rate_overall: float | None = None
    change_latency_ms: dict[str, float] = field(default_factory=dict)
    # produce -> the change event in a read_committed reader's hands (the relay's commit included)
    readable_latency_ms: dict[str, float] = field(default_factory=dict)
    # p50 of the change latency per tenth of the events (in produce order): growth = falling behind
    change_latency_p50_by_tenth_ms: list[float] = field(default_factory=list)
    redis_samples: int = 0
    redis_seen: int = 0
    redis_latency_ms: dict[str, float] = field(default_factory=dict)
    redis_poll_interval_ms: float = 10.0
    dead_letters: int = 0
    # The raw figures behind the percentiles (every k-th, at most SAMPLES_KEPT): histograms.
    change_latency_samples_ms: list[int] = field(default_factory=list)
    readable_latency_samples_ms: list[int] = field(default_factory=list)
    redis_latency_samples_ms: list[int] = field(default_factory=list)
    cores: dict[str, float] = field(default_factory=dict)
    load_avg: list[float] = field(default_factory=list)


async def latency_phase(
    run: str,
    names: dict[str, str],
    args: argparse.Namespace,
    rate: float,
    outputs: Outputs,
    worker: Worker,
    redis: aioredis.Redis,
    throughput: float,
) -> Latency:
    lat = Latency(rate, args.latency_s)
    prefix = f"{run}-l{int(rate)}-"
    outputs.phases.append(prefix)
    n = int(rate * args.latency_s)
    reserved = n // SAMPLE_EVERY + 1
    if reserved * 2 > args.contacts:
        raise SystemExit(f"--latency {rate:g}: needs at least {reserved * 2:,} contacts")
    others = args.contacts - reserved
    rng = random.Random(int(rate))
    sent_ms: dict[str, int] = {}
    # Redis key -> (event_id, occurred ms = produce ms) of a sampled event not yet seen there.
    pending: dict[str, tuple[str, int]] = {}
    redis_ms: dict[str, int] = {}
    producing = True

    async def poll_redis() -> None:
        while producing or pending:
            if pending:
                keys = list(pending)[:500]
                polled = int(time.time() * 1000)
                values = await redis.mget(keys)
                for key, raw in zip(keys, values, strict=True):
                    if raw is None:
                        continue
                    seen = orjson.loads(raw)["engagement"].get("last_activity_at")
                    waiting = pending.get(key)
                    if waiting is None:
                        continue
                    event_id, occurred = waiting
                    if seen is not None and parse_ms(seen) >= occurred:
                        redis_ms[event_id] = polled - occurred
                        del pending[key]
            await asyncio.sleep(lat.redis_poll_interval_ms / 1000)

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    poller = asyncio.create_task(poll_redis())
    cpu_start = cpu_times(worker.process.pid)
    say(f"latency: {n:,} engagement events at {rate:,.0f}/s for {args.latency_s:.0f} s")
    try:
        started = time.time()
        sent = 0
        while sent < n:
            target = min(n, int(rate * (time.time() - started)) + 1)
            while sent < target:
                ts = int(time.time() * 1000)
                event_id = f"{prefix}{sent}"
                if sent % SAMPLE_EVERY == 0:
                    i = others + sent // SAMPLE_EVERY  # a contact only this event names
                    key = f"{names['redis_prefix']}:{{{TENANT}}}:c:{contact_id_of(i)}"
                    pending[key] = (event_id, ts)
                    lat.redis_samples += 1
                else:
                    i = rng.randrange(others)
                value = engagement(event_id, i, pick_type(rng), ts)
                await producer.send(
                    names["engagement"], value, key=email_of(i).encode(), timestamp_ms=ts
                )
                sent_ms[event_id] = ts
                sent += 1
            await asyncio.sleep(0.002)
        await producer.flush()
        produce_s = time.time() - started
        lat.produced, lat.produce_rate = sent, sent / produce_s
        at_end = outputs.accounted(prefix)
        lat.backlog_at_end_of_produce = n - at_end
        lat.achieved_rate_during_produce = at_end / produce_s
        lat.load_avg = list(os.getloadavg())
        # Drain: what a worker at the measured throughput needs, with room (at most 2 min;
        # a worker that fell that far behind did not keep up, and the rest is not waited for).
        drain = min(120.0, max(30.0, 2 * lat.backlog_at_end_of_produce / max(throughput, 1)))
        deadline = time.monotonic() + drain
        while outputs.accounted(prefix) < n and time.monotonic() < deadline:
            check_workers(worker)
            await asyncio.sleep(0.2)
        lat.cores = cpu_between(cpu_start, cpu_times(worker.process.pid))
        producing = False
        redis_deadline = time.monotonic() + 30
        while pending and time.monotonic() < redis_deadline:
            await asyncio.sleep(0.1)
    finally:
        producing = False
        pending.clear()
        await poller
        await producer.stop()
    done = {e: ts for e, ts in outputs.done.items() if e.startswith(prefix)}
    lat.processed = len(done)
    lat.dead_letters = sum(1 for e in outputs.dead if e is not None and e.startswith(prefix))
    ordered = sorted(sent_ms, key=sent_ms.__getitem__)
    delays = [done[e] - sent_ms[e] for e in ordered if e in done]
    lat.change_latency_ms = percentiles([float(d) for d in delays])
    readable = [outputs.readable[e] - sent_ms[e] for e in ordered if e in done]
    lat.readable_latency_ms = percentiles([float(d) for d in readable])
    lat.readable_latency_samples_ms = kept(readable)
    tenths = [delays[len(delays) * k // 10 : len(delays) * (k + 1) // 10] for k in range(10)]
    lat.change_latency_p50_by_tenth_ms = [
        percentiles([float(d) for d in part])["p50"] for part in tenths if part
    ]
    if done:
        span = (max(done.values()) - min(sent_ms.values())) / 1000
        lat.achieved_rate_overall = len(done) / max(span, 1e-3)
    lat.redis_seen = len(redis_ms)
    lat.redis_latency_ms = percentiles([float(v) for v in redis_ms.values()])
    lat.change_latency_samples_ms = kept(delays)
    lat.redis_latency_samples_ms = kept(list(redis_ms.values()))
    # Kept up: at the end of producing, less than 2 s of events were still waiting.
    lat.kept_up = lat.backlog_at_end_of_produce <= 2 * rate and lat.processed == n
    return lat


HOPS = ("contact_ops", "identity_ops")


async def has_records(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Whether any of `tps` has a record (False while the worker has not created them)."""
    try:
        ends = await consumer.end_offsets(tps)
    except Exception:  # the topics do not exist yet
        return False
    return any(ends.values())


async def first_timestamp(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int | None:
    """The earliest broker timestamp among the first records of `tps`."""
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    waiting = {tp for tp in tps if ends[tp] > starts[tp]}
    if not waiting:
        return None
    consumer.assign(sorted(waiting))
    for tp in waiting:
        consumer.seek(tp, starts[tp])
    earliest: int | None = None
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        for tp, records in (
            await consumer.getmany(*waiting, timeout_ms=500, max_records=1)
        ).items():
            if records and tp in waiting:
                waiting.discard(tp)
                ts = int(records[0].timestamp)
                earliest = ts if earliest is None else min(earliest, ts)
    return earliest


def kept(values: list[int]) -> list[int]:
    """At most SAMPLES_KEPT of `values`, evenly spread over them."""
    step = -(-len(values) // SAMPLES_KEPT)
    return values[::step] if step > 1 else values


def parse_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


# --- the run ----------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> int:
    cancel_on_signals()  # the run's `finally` then stops the worker and deletes the topics
    wall = time.monotonic()
    stamp = datetime.now(UTC)
    run = f"eb{uuid.uuid4().hex[:8]}"
    names = names_of(run, args.partitions)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-engagement-{run}-"))
    result: dict[str, Any] = {
        "stamp": f"{stamp:%Y-%m-%dT%H%M%SZ}",
        "run": run,
        "workers": args.workers,
        "outputs_process": args.outputs_process,
        "load_avg": [(0, *os.getloadavg())],
    }
    now_ms = int(time.time() * 1000)
    check_preload(now_ms)
    raw_topics: list[str] = []
    worker: Worker | None = None
    outputs = Outputs(names, args.partitions)
    outputs.phases.append(f"{run}-t-")
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        say(f"{run}: raw aiokafka passthrough of {args.events:,} records")
        raw, raw_topics = await raw_baseline(args.events)
        result["raw_records_per_s"] = raw
        say(f"raw: {raw:,.0f} records/s")
        await create_topics(
            [names[role] for role in TOPIC_ROLES],
            args.partitions,
            compacted={names[role] for role in COMPACTED},
        )
        say(f"preloading {args.contacts:,} contacts and their emails")
        result["preload"] = await preload(names, args.contacts, args.partitions, now_ms)
        say(
            f"preloaded {result['preload']['records']:,} records "
            f"({result['preload']['mb']:.0f} MB) in {result['preload']['seconds']:.1f} s"
        )
        result["inputs"] = await produce_inputs(
            run, names, args.contacts, args.events, args.partitions
        )
        say(f"produced {args.events:,} inputs in {result['inputs']['seconds']:.1f} s")
        await outputs.start()
        if args.outputs_process:
            # Every process of the run reads it: the workers leave the relay and the
            # projection to `contact-stream outputs`, which runs them.
            os.environ["CS_OUTPUTS_IN_WORKER"] = "false"
        worker = start_worker(run, workdir, args.partitions, log_level=args.worker_log_level)
        say(f"worker pid {worker.process.pid} started (-l warn, {SOURCE})")
        for i in range(2, args.workers + 1):
            own = workdir / f"worker{i}"  # a data dir of its own
            own.mkdir(parents=True, exist_ok=True)
            EXTRA_WORKERS.append(
                start_worker(run, own, args.partitions, log_level=args.worker_log_level)
            )
            say(f"worker {i} pid {EXTRA_WORKERS[-1].process.pid} started beside it")
        if args.outputs_process:
            EXTRA_WORKERS.append(
                start_worker(
                    run, workdir, args.partitions, log_name="outputs.log", command=["outputs"]
                )
            )
            say(f"outputs pid {EXTRA_WORKERS[-1].process.pid} started beside the worker")
        t = await throughput_phase(run, names, args, outputs, worker, result, redis)
        t.of_raw = (t.inputs_per_s or 0) / raw
        if t.inputs_per_s_end_to_end is not None:
            t.of_raw_end_to_end = t.inputs_per_s_end_to_end / raw
        result["throughput"] = asdict(t)
        result["latency"] = [
            asdict(
                await latency_phase(
                    run, names, args, rate, outputs, worker, redis, t.inputs_per_s or 1
                )
            )
            for rate in args.latency or []
        ]
        result["load_avg"].append((round(time.monotonic() - wall), *os.getloadavg()))
    finally:
        await outputs.stop()
        await redis.aclose()
        result["extra_workers_exit"] = [each.stop() for each in EXTRA_WORKERS]
        if worker is not None:
            result["worker_exit"] = worker.stop()
            result["worker_log_tail"] = worker.log.read_text(errors="replace")[-2000:]
        if not args.keep:
            await cleanup(run)
            await delete_topics(raw_topics)
            shutil.rmtree(workdir, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    report(result, args, stamp)
    bad = result["throughput"]["dead_letters"]
    check = result["throughput"]["redis_check"]
    return 1 if bad or check.get("missing") or check.get("behind") else 0


def report(result: dict[str, Any], args: argparse.Namespace, stamp: datetime) -> None:
    t = result["throughput"]
    raw = result["raw_records_per_s"]

    rows = [
        ("contacts preloaded / inputs", f"{args.contacts:,} / {args.events:,}"),
        ("raw aiokafka passthrough", f"{raw:,.0f} records/s"),
        (
            "engagement workload, end to end",
            f"{fmt(t.get('inputs_per_s_end_to_end'))} inputs/s = "
            f"{t.get('of_raw_end_to_end') or 0:.1%} of raw (target >= 20 %); "
            f"first input handled -> last change {fmt(t.get('end_to_end_s'), '.1f')} s",
        ),
        (
            "  from the first change",
            f"{fmt(t['inputs_per_s'])} inputs/s = {t['of_raw']:.1%} of raw "
            "(the figure before session 30: most of the router's work precedes it)",
        ),
        ("change events", f"{t['change_events']:,} ({fmt(t['change_events_per_s'])}/s)"),
        ("first -> last change", f"{fmt(t['elapsed_s'], '.1f')} s"),
        ("worker start -> first change", f"{fmt(t['worker_start_to_first_change_s'], '.1f')} s"),
        (
            "first input handled -> first change",
            f"{fmt(t.get('first_input_to_first_change_s'), '.1f')} s",
        ),
        (
            "worker CPU per input",
            f"{fmt(t.get('worker_cpu_us_per_input_end_to_end'))} us end to end, "
            f"{fmt(t['worker_cpu_us_per_input'])} us from the first change",
        ),
        ("cores while processing", json.dumps(t["cores_while_processing"])),
        (
            "Redis caught up",
            f"{fmt(t['redis_caught_up_after_first_change_s'], '.1f')} s after the first change, "
            f"{fmt(t['redis_lag_after_last_change_s'], '.1f')} s after the last "
            f"({fmt(t['inputs_per_s_into_redis'])} inputs/s into Redis)",
        ),
        (
            "Redis writes",
            f"{fmt(t['redis_scripts_per_s'])} script calls/s "
            "(one per tenant and <= 100 contacts since session 27), "
            f"{fmt(t['redis_commands_per_s'])} commands/s",
        ),
        ("Redis check (sample)", json.dumps(t["redis_check"])),
        ("dead letters", json.dumps(t["dead_letters"])),
        ("change types", json.dumps(t["change_types"])),
    ]
    for lat in result["latency"]:
        c, r = lat["change_latency_ms"], lat["redis_latency_ms"]
        ks = ("p50", "p95", "p99", "max")
        rows += [
            (
                f"latency @ {lat['rate_asked']:,.0f}/s",
                f"produced {lat['produced']:,} at {fmt(lat['produce_rate'])}/s, processed "
                f"{lat['processed']:,}, backlog at end {lat['backlog_at_end_of_produce']:,}, "
                f"kept up: {lat['kept_up']}",
            ),
            (
                "  achieved rate",
                f"{fmt(lat['achieved_rate_during_produce'])}/s while producing, "
                f"{fmt(lat['achieved_rate_overall'])}/s overall",
            ),
            (
                "  change p50/p95/p99/max",
                " / ".join(fmt(c.get(k)) for k in ks) + " ms",
            ),
            (
                "  readable p50/p95/p99/max",
                " / ".join(fmt(lat.get("readable_latency_ms", {}).get(k)) for k in ks) + " ms",
            ),
            (
                "  change p50 per tenth",
                str([round(x) for x in lat["change_latency_p50_by_tenth_ms"]]),
            ),
            (
                "  Redis p50/p95/p99/max",
                " / ".join(fmt(r.get(k)) for k in ("p50", "p95", "p99", "max"))
                + f" ms ({lat['redis_seen']:,} of {lat['redis_samples']:,} samples)",
            ),
        ]
    rows.append(("load average (1/5/15 min)", str([row[1:] for row in result["load_avg"]][-1])))
    rows.append(("wall time of the run", f"{result['wall_s']:.0f} s"))
    print_rows(rows)
    if "profile" in result:
        print_profile(result["profile"])
    write_report(args.out, __file__, stamp, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument(
        "--events", type=int, default=20_000, help="inputs (the issue's workload: 100,000)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the partitions (CPU figures are their sum)",
    )
    parser.add_argument(
        "--outputs-process",
        action="store_true",
        help="the relay and the projection in `contact-stream outputs` beside the "
        "worker(s) (CS_OUTPUTS_IN_WORKER=false; its CPU counts as the workers')",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker mid-run")
    parser.add_argument("--profile-seconds", dest="profile_s", type=float, default=20.0)
    parser.add_argument(
        "--profile-at",
        type=float,
        default=0.2,
        help="py-spy starts once this share of the inputs is out (readable change events, "
        "which lag the agents' work in a large run); 0: from the worker's start",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="py-spy --gil: only samples holding the GIL (the CPU profile; wall-clock "
        "samples count the main thread waiting for the GIL as socket writes)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        nargs="*",
        metavar="RATE",
        help="fixed-rate phases after the throughput (no value: 2000 events/s)",
    )
    parser.add_argument("--latency-seconds", dest="latency_s", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="for the inputs to come out")
    parser.add_argument(
        "--worker-log-level",
        default="warn",
        help="the worker's -l (info shows recovery's steps, e.g. to diagnose a stall)",
    )
    add_run_args(parser)
    args = parser.parse_args()
    if args.latency == []:
        args.latency = [2000.0]
    # A rate the worker cannot keep up with leaves a backlog: the lower rates first.
    args.latency = sorted(args.latency or [])
    launch(args, bench)


if __name__ == "__main__":
    main()

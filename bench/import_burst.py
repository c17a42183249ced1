"""An import burst: N new contacts, an email and a phone each, through the identity protocol.

Usage (a stack must be up; a private one keeps a test suite from restarting
the broker under the bench, see bench/README.md):

    .venv/bin/python bench/import_burst.py                      # 200,000 contacts (issue #11)
    .venv/bin/python bench/import_burst.py --contacts 20000     # ~3 min
    .venv/bin/python bench/import_burst.py --contacts 2000 --out /tmp/burst.json  # check
    .venv/bin/python bench/import_burst.py --ref HEAD           # the committed code only

One run, on topics of its own (a fresh `CS_TOPIC_PREFIX` / `CS_APP_ID`):
1. raw: bench/intake_throughput.py's aiokafka consume -> produce loop over
   the same number of records: the ceiling on this machine, in this run;
2. inputs: N intakes produced up front to the run's intake topic, before
   any worker runs, keyed by email (as producers usually do) on the
   partition the default partitioner picks: source `import`, one new email
   (`burst<i>@bench.example.com`) and one new phone (`+346<i, 8 digits>`,
   already E.164, so valid whatever the tenant's region) each, two fields;
   so every intake locks two identifiers on the identity partitions, finds
   no owner for either and creates one contact;
3. one worker (`python -m stream.cli worker -l info`) from an empty data
   dir; a reader of the changes and dead-letter topics from their start.
   Measured: seconds from the process start to `contact-stream ready` and to
   the first `contact.created`; contacts created per second from the first
   `contact.created` to the last (the change records' broker timestamps,
   CreateTime set by the worker) and its ratio to raw; end to end, from the
   worker's start to the last intake accounted for; the worker's CPU
   seconds per intake (over the whole process, and from the first
   `contact.created` on); its RSS at ready, at the end, and peak (VmHWM);
4. checks (exit 1 if one fails): every intake accounted for, by its
   `event_id` in the change's cause, as one `contact.created` or a dead
   letter; no intake created two contacts; no identifier is on two created
   contacts; each created contact carries its intake's email and phone;
5. a table, and bench/results/import-burst-<UTC time>.json (`--out`) with
   the figures and the git commit; the run's topics, Redis keys and data
   dir are deleted unless `--keep`.

`--ref REF` runs the worker from `git archive REF`, so edits in the
working tree are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    dead_letter_event_id,
    delete_topics,
    fmt,
    launch,
    print_rows,
    raw_baseline,
    say,
    start_worker,
    topic_settings,
    write_report,
)

TENANT = "bench"


def email_of(i: int) -> str:
    return f"burst{i}@bench.example.com"


def phone_of(i: int) -> str:
    return f"+346{i:08d}"  # a Spanish mobile in E.164: valid, and its own normalized form


def intake(run: str, i: int) -> tuple[bytes, bytes]:
    """(key, value) of intake i: keyed by its email."""
    value = {
        "event_id": f"{run}-i{i}",
        "tenant_id": TENANT,
        "source": "import",
        "emails": [email_of(i)],
        "phones": [phone_of(i)],
        "fields": {"first_name": "Ana", "city": "Madrid"},
    }
    return email_of(i).encode(), orjson.dumps(value)


def check_identifiers() -> None:
    """The identifiers are valid and normalized, so a created contact carries them as sent."""
    from stream.domain.normalize import normalize_email, normalize_phone

    for i in (0, 7, 99_999_999):
        if normalize_email(email_of(i)) != email_of(i):
            raise RuntimeError(f"{email_of(i)} is not in normalized form")
        for region in ("ES", "US"):
            if normalize_phone(phone_of(i), region) != phone_of(i):
                raise RuntimeError(f"{phone_of(i)} is not a valid normalized phone ({region})")


class Outcomes(TopicReader):
    """Each intake's `contact.created` (or dead letter), and who holds each identifier."""

    def __init__(self, changes: str, deadletter: str, partitions: int) -> None:
        super().__init__((changes, deadletter), partitions)
        self.changes_topic = changes
        self.types: Counter[str] = Counter()
        self.created: defaultdict[str, list[str]] = defaultdict(list)  # event_id -> contact ids
        self.holders: defaultdict[str, set[str]] = defaultdict(set)  # identifier -> contact ids
        self.contact_identifiers: dict[str, tuple[list[str], list[str]]] = {}
        self.dead: dict[str | None, str] = {}
        self.dead_reasons: Counter[str] = Counter()
        self.accounted: set[str] = set()
        self.first_created_ms: int | None = None
        self.last_created_ms: int | None = None
        self.last_output_ms: int | None = None

    def handle(self, record: ConsumerRecord[bytes, bytes], received_ms: int) -> None:
        value = orjson.loads(record.value or b"null")
        ts = record.timestamp
        if record.topic == self.changes_topic:
            self.types[value["type"]] += 1
            if value["type"] != "contact.created":
                return
            event_id = value["cause"]["event_id"]
            contact = value["data"]["contact"]
            cid = value["contact_id"]
            self.created[event_id].append(cid)
            self.contact_identifiers[cid] = (contact["emails"], contact["phones"])
            for identifier in (*contact["emails"], *contact["phones"]):
                self.holders[identifier].add(cid)
            if self.first_created_ms is None or ts < self.first_created_ms:
                self.first_created_ms = ts
            if self.last_created_ms is None or ts > self.last_created_ms:
                self.last_created_ms = ts
        else:
            event_id = dead_letter_event_id(value)
            self.dead[event_id] = value["reason"]
            self.dead_reasons[value["reason"]] += 1
        if event_id is not None and event_id not in self.accounted:
            self.accounted.add(event_id)
            self.last_output_ms = max(self.last_output_ms or 0, ts)


async def produce_intakes(run: str, topic: str, contacts: int, partitions: int) -> dict[str, Any]:
    async with batch_writer(partitions) as writer:
        started = time.monotonic()
        for i in range(contacts):
            key, value = intake(run, i)
            await writer.put(topic, key, value, writer.partition_of(key))
    seconds = time.monotonic() - started
    return {"seconds": seconds, "produced_per_s": contacts / seconds, "mb": writer.bytes / 1e6}


async def watch(
    worker: Worker, out: Outcomes, contacts: int, timeout: float, result: dict[str, Any]
) -> None:
    """Until every intake is accounted for: RSS every 5 s, CPU at the first creation."""
    timeline: list[tuple[float, float, int]] = result["rss_timeline"]
    deadline = time.monotonic() + timeout
    last_say = 0.0
    while len(out.accounted) < contacts:
        worker.check()
        elapsed = time.time() - worker.started
        status = worker.status()
        if not timeline or elapsed - timeline[-1][0] >= 5:
            timeline.append((round(elapsed, 1), round(status.get("VmRSS", 0)), len(out.accounted)))
        if "rss_mb_at_ready" not in result and READY in worker.text():
            result["rss_mb_at_ready"] = status.get("VmRSS")
        if "cpu_s_at_first_created" not in result and out.first_created_ms is not None:
            result["cpu_s_at_first_created"] = status.get("cpu")
        if elapsed - last_say >= 15:
            last_say = elapsed
            done, load = len(out.accounted), os.getloadavg()[0]
            say(f"{done:,} of {contacts:,} intakes out; load {load:.2f}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(out.accounted):,} of {contacts:,} after {timeout:.0f}s")
        await asyncio.sleep(0.2)


def checks(out: Outcomes, run: str, contacts: int) -> dict[str, int]:
    expected = {f"{run}-i{i}" for i in range(contacts)}
    mismatched = 0
    for i in range(contacts):
        made = out.created.get(f"{run}-i{i}")
        if made and out.contact_identifiers[made[0]] != ([email_of(i)], [phone_of(i)]):
            mismatched += 1
    return {
        "accounted": len(out.accounted & expected),
        "missing": len(expected - out.accounted),
        "created": sum(len(ids) for ids in out.created.values()),
        "contacts": len(out.contact_identifiers),
        "dead_letters": len(out.dead),
        "intakes_with_two_contacts": sum(1 for ids in out.created.values() if len(ids) > 1),
        "identifiers_on_two_contacts": sum(1 for ids in out.holders.values() if len(ids) > 1),
        "contacts_without_their_identifiers": mismatched,
        "unexpected_event_ids": len(out.accounted - expected),
    }


async def bench(args: argparse.Namespace) -> int:
    cancel_on_signals()  # the run's `finally` then stops the worker and deletes the topics
    wall = time.monotonic()
    stamp = datetime.now(UTC)
    run = f"ib{uuid.uuid4().hex[:8]}"
    settings = topic_settings(run, args.partitions)
    intake_topic = settings.topic("contacts.intake.v1")
    changes = settings.topic("contacts.changes.v1")
    deadletter = settings.topic("contacts.deadletter.v1")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-import-burst-{run}-"))
    check_identifiers()
    n = args.contacts
    result: dict[str, Any] = {
        "run": run,
        "contacts": n,
        "partitions": args.partitions,
        "rss_timeline": [],
        "load_avg": [(0, *os.getloadavg())],
    }
    raw_topics: list[str] = []
    worker: Worker | None = None
    out = Outcomes(changes, deadletter, args.partitions)
    try:
        say(f"{run}: raw aiokafka passthrough of {n:,} records")
        raw, raw_topics = await raw_baseline(n)
        result["raw_records_per_s"] = raw
        say(f"raw: {raw:,.0f} records/s")
        await create_topics((intake_topic, changes, deadletter), args.partitions)
        produced_at = time.time()
        result["inputs"] = await produce_intakes(run, intake_topic, n, args.partitions)
        say(f"produced {n:,} intakes in {result['inputs']['seconds']:.1f} s")
        await out.start()
        worker = start_worker(run, workdir, args.partitions, log_level="info")
        say(f"worker pid {worker.process.pid} started; waiting for {n:,} contacts")
        timeout = args.timeout if args.timeout is not None else 600 + n * 0.02
        await watch(worker, out, n, timeout, result)
        status = worker.status()
        await asyncio.sleep(3)  # a duplicate, if any, arrives now
        result["load_avg"].append((round(time.monotonic() - wall), *os.getloadavg()))
        assert out.first_created_ms is not None and out.last_created_ms is not None
        assert out.last_output_ms is not None
        span = (out.last_created_ms - out.first_created_ms) / 1000
        created = sum(len(ids) for ids in out.created.values())
        cpu_first = result.get("cpu_s_at_first_created")
        result.update(
            {
                "start_to_ready_s": worker.logged_after_start(READY),
                "start_to_first_created_s": out.first_created_ms / 1000 - worker.started,
                "first_to_last_created_s": span,
                "contacts_per_s": created / max(span, 1e-3),
                "end_to_end_s": out.last_output_ms / 1000 - worker.started,
                "produce_start_to_last_s": out.last_output_ms / 1000 - produced_at,
                "cpu_s": status.get("cpu"),
                "cpu_ms_per_intake": 1000 * status.get("cpu", 0) / n,
                "cpu_ms_per_intake_processing": (
                    1000 * (status.get("cpu", 0) - cpu_first) / n if cpu_first else None
                ),
                "rss_mb_at_end": status.get("VmRSS"),
                "peak_rss_mb": status.get("VmHWM"),
                "change_types": dict(out.types.most_common()),
                "dead_letter_reasons": dict(out.dead_reasons),
                "checks": checks(out, run, n),
            }
        )
        result["of_raw"] = result["contacts_per_s"] / raw
    finally:
        await out.stop()
        if worker is not None:
            result["worker_exit"] = worker.stop()
            result["worker_log_tail"] = worker.text()[-2000:]
        if not args.keep:
            await cleanup(run)
            await delete_topics(raw_topics)
            shutil.rmtree(workdir, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    print_table(result)
    write_report(args.out, __file__, stamp, result, name="import-burst")
    c = result["checks"]
    failed = c["missing"] or c["intakes_with_two_contacts"] or c["identifiers_on_two_contacts"]
    return 1 if failed or c["contacts_without_their_identifiers"] else 0


def print_table(r: dict[str, Any]) -> None:
    c = r["checks"]
    rows = [
        ("contacts (intakes) / partitions", f"{r['contacts']:,} / {r['partitions']}"),
        ("raw aiokafka passthrough", f"{fmt(r['raw_records_per_s'])} records/s"),
        ("intakes produced", f"{r['inputs']['seconds']:.1f} s ({r['inputs']['mb']:.0f} MB)"),
        ("worker start -> ready", f"{fmt(r['start_to_ready_s'], '.1f')} s"),
        ("worker start -> first created", f"{fmt(r['start_to_first_created_s'], '.1f')} s"),
        ("first -> last contact.created", f"{fmt(r['first_to_last_created_s'], '.1f')} s"),
        (
            "contacts created per s",
            f"{fmt(r['contacts_per_s'])} = {r['of_raw']:.2%} of raw",
        ),
        ("end to end (worker start -> last)", f"{fmt(r['end_to_end_s'], '.1f')} s"),
        ("  from the first intake produced", f"{fmt(r['produce_start_to_last_s'], '.1f')} s"),
        (
            "worker CPU per intake",
            f"{fmt(r['cpu_ms_per_intake'], '.2f')} ms "
            f"({fmt(r['cpu_ms_per_intake_processing'], '.2f')} ms from the first creation)",
        ),
        (
            "RSS at ready / end / peak",
            f"{fmt(r.get('rss_mb_at_ready'))} / {fmt(r['rss_mb_at_end'])} / "
            f"{fmt(r['peak_rss_mb'])} MB",
        ),
        (
            "accounted / missing / dead letters",
            f"{c['accounted']:,} / {c['missing']:,} / {c['dead_letters']:,}",
        ),
        ("contacts created", f"{c['created']:,} ({c['contacts']:,} distinct)"),
        (
            "duplicates: intakes / identifiers",
            f"{c['intakes_with_two_contacts']} / {c['identifiers_on_two_contacts']}",
        ),
        ("contacts without their identifiers", f"{c['contacts_without_their_identifiers']}"),
        ("change types", orjson.dumps(r["change_types"]).decode()),
        ("load average (1/5/15 min)", str(list(r["load_avg"][-1][1:]))),
        ("wall time of the run", f"{r['wall_s']:.0f} s"),
    ]
    print_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contacts", type=int, default=200_000, help="intakes = new contacts (default 200,000)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--timeout", type=float, help="seconds for every intake to come out (600 + 0.02 per one)"
    )
    add_run_args(parser)
    launch(parser.parse_args(), bench)


if __name__ == "__main__":
    main()

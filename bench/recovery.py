"""Recovery of N contacts from the changelog against a bare read of it, and RSS per 1 M.

Usage (a stack must be up; a private one keeps a test suite from restarting
the broker under the bench, see bench/README.md):

    .venv/bin/python bench/recovery.py                       # 1,000,000 contacts, ~8 min
    .venv/bin/python bench/recovery.py --contacts 20000      # ~1 min
    .venv/bin/python bench/recovery.py --ref HEAD            # the committed code only

One run, on topics of its own (a fresh `CS_TOPIC_PREFIX` / `CS_APP_ID`):
1. load: N contacts written straight into the `contacts` table's changelog
   (`cs-<run>-contacts-changelog`, compacted) with bench/timers.py's `load`
   and encoder: each on the partition Faust would write it to (murmur2 of
   `tenant:contact_id`), live, tier `new`, due 1 to 15 days ahead (so the
   worker's due index holds all N and nothing fires during the run);
2. bare read: one aiokafka consumer assigned every partition of that topic,
   from the beginning to the end offsets taken before it starts, nothing
   decoded: seconds (from its start to the last record), records/s, MB/s;
3. cold start: one worker (`python -m stream.cli worker -l info`, the
   RocksDB store, the default, in an empty data dir): seconds from the
   process start to `contact-stream ready: tables recovered` and to
   `due index rebuilt: ... (Ns)` (the log lines' own timestamps). Both
   start when the rebalance completes, the tables recovered; the index's
   full scan of the table ran before ready until branch recovery-speed and
   runs after it since, so "restored" = the index line - its N seconds =
   when the scan began = the end of the changelog restore. VmRSS at ready,
   at the index, and (from a 2 s timeline) just before the scan; CPU
   seconds at ready; VmHWM (peak) 3 s after both lines;
   ratio = bare read seconds / (start -> ready) seconds (issue #11: >= 50 %),
   and the same with start -> restored;
   RSS per 1,000,000 contacts = RSS x 1,000,000 / N (the worker's own
   ~100 MB included, so small runs overstate it);
4. warm start: the worker stopped (SIGTERM) and started again on the same
   data dir: RocksDB holds the contacts already, so Faust reads only what
   its persisted offsets have not seen; the same figures. Its start ->
   restored is the worker's fixed start cost, so a "net" ratio = bare read
   seconds / (cold - warm start -> restored) is printed too;
5. with `--rounds N` (make bench: 3), steps 2 and 3 again N - 1 times, each
   cold start in an empty data dir of its own, the bare read before the
   cold start in rounds 0, 2, ... and after it in rounds 1, 3, .... The bare read and the
   cold start are seconds each, minutes apart, on a shared machine: two 1 M
   runs of one commit gave 46.9 % and 60.6 % (session 31). The figures given
   are those of the round with the median ratio, every round's are kept
   under "rounds" (bench/report.py gives the highest of their cold starts'
   peak RSS);
6. a table, and bench/results/recovery-<UTC time>.json (`--out`) with the
   figures, the RSS timelines and the git commit; the run's topics, Redis
   keys and data dir are deleted unless `--keep`.

`--ref REF` runs the worker (and encodes the contacts) from `git archive
REF`, so edits in the working tree are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BOOTSTRAP,
    READY,
    add_run_args,
    cancel_on_signals,
    cleanup,
    create_topics,
    fmt,
    launch,
    median_round,
    print_rows,
    say,
    start_worker,
    write_report,
)
from timers import REBUILT, Plan, check_encoding, contact_encoder, load, topic_names

MILLION = 1_000_000


async def bare_read(topic: str, partitions: int) -> dict[str, Any]:
    """Every record of `topic`, from the beginning to the end offsets, with nothing decoded."""
    # `earliest` too: with the default `latest`, the fetcher's own reset of a freshly
    # assigned partition can land after the seek below, and the read starts at the end.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    started = time.monotonic()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp for tp in tps if ends[tp] > 0}
        records = size = 0
        stalled = time.monotonic() + 60
        while left:
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                stalled = time.monotonic() + 60
                records += len(batch)
                size += sum(len(r.key or b"") + len(r.value or b"") for r in batch)
                if batch[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
            if time.monotonic() > stalled:
                at = {tp.partition: await consumer.position(tp) for tp in left}
                raise RuntimeError(f"bare read stalled at {at} of {ends}")
        seconds = time.monotonic() - started
    finally:
        await consumer.stop()
    return {
        "seconds": seconds,
        "records": records,
        "mb": size / 1e6,
        "records_per_s": records / seconds,
        "mb_per_s": size / 1e6 / seconds,
    }


async def start_and_measure(
    run: str, workdir: Path, partitions: int, contacts: int, label: str, deadline_s: float
) -> dict[str, Any]:
    """One worker start on the run's data dir, until its due index is built; then stopped."""
    worker = start_worker(run, workdir, partitions, log_level="info", log_name=f"{label}.log")
    say(f"{label} start: worker pid {worker.process.pid}")
    out: dict[str, Any] = {"rss_timeline": []}
    timeline: list[tuple[float, float]] = out["rss_timeline"]

    async def sample() -> None:
        while True:
            rss = worker.status().get("VmRSS")
            if rss is not None:
                timeline.append((round(time.time() - worker.started, 1), round(rss)))
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample())
    try:
        while "rss_mb_at_ready" not in out or "rss_mb_after_rebuild" not in out:
            worker.check()
            if time.time() - worker.started > deadline_s:
                raise RuntimeError(f"not ready after {deadline_s:.0f}s; log {worker.log}")
            text = worker.text()
            if "rss_mb_at_ready" not in out and READY in text:
                status = worker.status()
                out["rss_mb_at_ready"], out["cpu_s_at_ready"] = status["VmRSS"], status["cpu"]
            if "rss_mb_after_rebuild" not in out and REBUILT.search(text):
                status = worker.status()
                out["rss_mb_after_rebuild"] = status["VmRSS"]
                out["cpu_s_after_rebuild"] = status["cpu"]
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        out["peak_rss_mb"] = worker.status().get("VmHWM")
    finally:
        sampler.cancel()
        out["worker_exit"] = worker.stop()
    found = REBUILT.search(worker.text())
    assert found is not None
    out["start_to_ready_s"] = worker.logged_after_start(re.escape(READY))
    out["start_to_rebuilt_s"] = worker.logged_after_start(REBUILT)
    out["rebuild_s"] = float(found.group(2))
    out["rebuilt_count_logged"] = found.group(1)  # 7+ digit runs are masked in the log
    if out["start_to_rebuilt_s"] is not None:
        out["start_to_restored_s"] = restored = out["start_to_rebuilt_s"] - out["rebuild_s"]
        before = [rss for at, rss in timeline if at <= restored]
        out["rss_mb_at_restored"] = before[-1] if before else None
    per_million = MILLION / contacts
    for key in ("rss_mb_at_restored", "rss_mb_at_ready", "rss_mb_after_rebuild", "peak_rss_mb"):
        if out.get(key) is not None:
            out[key.replace("rss_mb", "rss_mb_per_1m")] = out[key] * per_million
    say(
        f"{label}: ready {out['start_to_ready_s']:.1f} s after start, restored "
        f"{out['start_to_restored_s']:.1f} s, index {out['start_to_rebuilt_s']:.1f} s; "
        f"RSS {out['rss_mb_at_ready']:,.0f} MB at ready, peak {out['peak_rss_mb']:,.0f} MB"
    )
    return out


async def bench(args: argparse.Namespace) -> None:
    cancel_on_signals()  # the run's `finally` then stops the worker and deletes the topics
    wall = time.monotonic()
    stamp = datetime.now(UTC)
    run = f"rb{uuid.uuid4().hex[:8]}"
    n = args.contacts
    names = topic_names(run, args.partitions)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-recovery-{run}-"))
    encode = contact_encoder()
    check_encoding(encode)
    result: dict[str, Any] = {"run": run, "contacts": n, "partitions": args.partitions}
    result["load_avg"] = [(0, *os.getloadavg())]
    deadline = args.timeout if args.timeout is not None else 600 + n * 0.002
    try:
        await create_topics(names.values(), args.partitions, compacted={names["changelog"]})
        say(f"{run}: loading {n:,} contacts into {names['changelog']}")
        # No contact due in a window: all N due 1 to 15 days ahead.
        plan = Plan(n, 0, 60.0, 0.0, args.partitions, "csrocksdb://", 0.0)
        seconds, size, _ = await load(names["changelog"], plan, encode)
        result["load"] = {"seconds": seconds, "mb": size / 1e6, "records_per_s": n / seconds}
        say(f"loaded in {seconds:.1f} s ({n / seconds:,.0f} records/s, {size / 1e6:,.0f} MB)")
        rounds: list[dict[str, Any]] = []
        for i in range(args.rounds):
            # Round 0's data dir is the warm start's; each later round starts empty.
            rounds.append(await one_round(i, run, workdir / f"round{i}", names, args, n, deadline))
            result["load_avg"].append((round(time.monotonic() - wall), *os.getloadavg()))
            if i == 0:
                result["warm"] = await start_and_measure(
                    run, workdir / "round0", args.partitions, n, "warm", deadline
                )
                result["load_avg"].append((round(time.monotonic() - wall), *os.getloadavg()))
        warm = result["warm"]
        chosen = median_round(rounds, lambda r: r["ratio"])
        result["bare_read"], result["cold"] = bare, cold = chosen["bare_read"], chosen["cold"]
        result["ratio"] = chosen["ratio"]
        result["ratio_rounds"] = [r["ratio"] for r in rounds]
        result["ratio_to_restored"] = bare["seconds"] / cold["start_to_restored_s"]
        restore = cold["start_to_restored_s"] - warm["start_to_restored_s"]
        result["ratio_net_of_warm_start"] = bare["seconds"] / restore if restore > 0 else None
        result["restore_records_per_s"] = n / cold["start_to_ready_s"]
        result["bare_read_records_per_s"] = bare["records_per_s"]
        result["rounds"] = rounds
    finally:
        if not args.keep:
            await cleanup(run)
            shutil.rmtree(workdir, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    print_table(result)
    write_report(args.out, __file__, stamp, result)


async def one_round(
    i: int,
    run: str,
    workdir: Path,
    names: dict[str, str],
    args: argparse.Namespace,
    contacts: int,
    deadline: float,
) -> dict[str, Any]:
    """A bare read and a cold start in an empty `workdir`: the bare read first in even rounds."""
    workdir.mkdir()
    label = "cold" if i == 0 else f"cold-{i}"
    out: dict[str, Any] = {"order": "bare read first" if i % 2 == 0 else "cold start first"}
    for step in ("bare", "cold") if i % 2 == 0 else ("cold", "bare"):
        if step == "bare":
            out["bare_read"] = bare = await bare_read(names["changelog"], args.partitions)
            say(
                f"bare read: {bare['records']:,} records in {bare['seconds']:.1f} s "
                f"({bare['records_per_s']:,.0f} records/s, {bare['mb_per_s']:,.0f} MB/s)"
            )
        else:
            out["cold"] = await start_and_measure(
                run, workdir, args.partitions, contacts, label, deadline
            )
    out["ratio"] = out["bare_read"]["seconds"] / out["cold"]["start_to_ready_s"]
    say(f"round {i} ({out['order']}): ratio {out['ratio']:.1%}")
    return out


def print_table(r: dict[str, Any]) -> None:
    bare, cold, warm = r["bare_read"], r["cold"], r["warm"]
    net = r["ratio_net_of_warm_start"]
    rows = [
        ("contacts / partitions", f"{r['contacts']:,} / {r['partitions']}"),
        (
            "load",
            f"{r['load']['seconds']:.1f} s ({fmt(r['load']['records_per_s'])} records/s, "
            f"{fmt(r['load']['mb'])} MB)",
        ),
        (
            "bare read of the changelog",
            f"{bare['seconds']:.1f} s ({fmt(bare['records_per_s'])} records/s, "
            f"{fmt(bare['mb_per_s'])} MB/s)",
        ),
        (
            "ratio bare read / cold start -> ready",
            f"{r['ratio']:.1%} (target >= 50 %)"
            + (
                f"; the median of {len(r['ratio_rounds'])} rounds: "
                + " / ".join(f"{x:.1%}" for x in r["ratio_rounds"])
                if len(r["ratio_rounds"]) > 1
                else ""
            ),
        ),
        (
            "  same, to restored / net of warm start",
            f"{r['ratio_to_restored']:.1%} / " + ("-" if net is None else f"{net:.1%}"),
        ),
    ]
    for label, s in (("cold", cold), ("warm", warm)):
        rows += [
            (
                f"{label}: start -> restored / index / ready",
                f"{fmt(s['start_to_restored_s'], '.1f')} / {fmt(s['start_to_rebuilt_s'], '.1f')} / "
                f"{fmt(s['start_to_ready_s'], '.1f')} s (rebuild {fmt(s['rebuild_s'], '.2f')} s)",
            ),
            (f"{label}: CPU s at ready", fmt(s["cpu_s_at_ready"], ".1f")),
            (
                f"{label}: RSS restored / ready / index / peak",
                f"{fmt(s['rss_mb_at_restored'])} / {fmt(s['rss_mb_at_ready'])} / "
                f"{fmt(s['rss_mb_after_rebuild'])} / {fmt(s['peak_rss_mb'])} MB",
            ),
            (
                f"{label}: same per 1 M contacts",
                f"{fmt(s.get('rss_mb_per_1m_at_restored'))} / "
                f"{fmt(s.get('rss_mb_per_1m_at_ready'))} / "
                f"{fmt(s.get('rss_mb_per_1m_after_rebuild'))} / "
                f"{fmt(s.get('peak_rss_mb_per_1m'))} MB",
            ),
        ]
    rows += [
        ("load average (1/5/15 min)", str(list(r["load_avg"][-1][1:]))),
        ("wall time of the run", f"{r['wall_s']:.0f} s"),
    ]
    print_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contacts", type=int, default=MILLION, help="contacts in the changelog (1,000,000)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="bare reads and cold starts, the order alternating; the median round is given",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per worker start (600 + 0.002 per contact)"
    )
    add_run_args(parser)
    launch(parser.parse_args(), bench)


if __name__ == "__main__":
    main()

"""An empty Faust agent on Faust's stock transport and on ours, against raw aiokafka.

Usage (the local stack must be up: `scripts/stack up`):

    .venv/bin/python bench/empty_agent.py --records 200000 --rounds 2

One run, one broker: a raw aiokafka consume -> produce loop (the ceiling,
bench/intake_throughput.py's), then, alternating per round, a worker of
bench/empty_app.py on `kafka://` (stock) and on `cskafka://` (ours,
stream/transport.py), each reading the same N records of a fresh 8-partition
topic. A worker's clock runs from its agent's first record to its last.
Prints each figure and its ratio to raw and to stock; writes
bench/results/empty-agent-<UTC time>.json with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import BOOTSTRAP, create_topics, produce, raw_passthrough

ROOT = Path(__file__).resolve().parents[1]


def worker_run(transport: str, topic: str, records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {
            **os.environ,
            "CS_KAFKA_BOOTSTRAP": BOOTSTRAP,
            "BENCH_TRANSPORT": transport,
            "BENCH_TOPIC": topic,
            "BENCH_RECORDS": str(records),
            "BENCH_OUT": str(out),
            "BENCH_APP_ID": f"bench-empty-{uuid.uuid4().hex[:8]}",
        }
        log = Path(tmp) / "worker.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "empty_app.py"),
                    "worker",
                    "-l",
                    "warn",
                    "--without-web",
                ],
                cwd=tmp,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 600
            try:
                while not out.exists():
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"{transport} worker failed:\n{log.read_text()[-3000:]}")
                    time.sleep(0.2)
                time.sleep(0.1)  # the file is written in one call; let it land
                result: dict[str, Any] = orjson.loads(out.read_bytes())
            finally:
                process.terminate()
                process.wait(60)
    result["rate"] = result["records"] / result["seconds"]
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/...)")
    args = parser.parse_args()

    raw = await raw_passthrough(args.records)
    print(f"raw aiokafka passthrough: {raw:,.0f} rec/s")
    runs: dict[str, list[dict[str, Any]]] = {"kafka": [], "cskafka": []}
    for round_ in range(args.rounds):
        for transport in ("kafka", "cskafka"):
            topic = f"bench-empty-{uuid.uuid4().hex[:8]}"
            await create_topics([topic])
            await produce(topic, [b'{"n": %d}' % i for i in range(args.records)])
            result = worker_run(transport, topic, args.records)
            runs[transport].append(result)
            print(
                f"round {round_ + 1} {transport:>8}: {result['rate']:,.0f} rec/s "
                f"({result['cpu'] / result['records'] * 1e6:.0f} µs CPU per record)"
            )
    stock = median(r["rate"] for r in runs["kafka"])
    ours = median(r["rate"] for r in runs["cskafka"])
    # CPU per record (the worker's process time over its run) is steadier than
    # the rate on a shared machine: another process's load stretches the wall clock.
    cpu = {t: median(r["cpu"] / r["records"] * 1e6 for r in rs) for t, rs in runs.items()}
    print(f"\n{'':24}{'rec/s':>10}{'of raw':>9}{'of stock':>10}{'CPU µs/rec':>12}")
    print(f"{'raw aiokafka':24}{raw:>10,.0f}{1:>9.1%}")
    print(
        f"{'empty agent, stock':24}{stock:>10,.0f}{stock / raw:>9.1%}{1:>10.2f}x"
        f"{cpu['kafka']:>12.0f}"
    )
    print(
        f"{'empty agent, ours':24}{ours:>10,.0f}{ours / raw:>9.1%}{ours / stock:>10.2f}x"
        f"{cpu['cskafka']:>12.0f}"
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "stream", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    path = args.out or ROOT / "bench" / "results" / f"empty-agent-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(
            {
                "commit": commit,
                "uncommitted": [line for line in dirty if line],
                "records": args.records,
                "raw": raw,
                "runs": runs,
                "median": {"kafka": stock, "cskafka": ours},
                "median_cpu_us_per_record": cpu,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"written {path}")


if __name__ == "__main__":
    asyncio.run(main())

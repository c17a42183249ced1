"""Every issue-11 benchmark in one run, on one private broker: `make bench`.

Usage:

    make bench                      # the issue's sizes (--scale 1); 40+ min on 2 cores
    make bench QUICK=1              # tiny sizes: checks the pipeline in a few minutes
    make bench SCALE=0.2            # every size times 0.2
    .venv/bin/python bench/run.py --scale 0.2 --only engagement quix --keep
    make bench SCALE=0.2 BENCH_ARGS=--outputs-process   # relay + projection apart

What one run does:
1. a private stack of the project's own script (`scripts/stack up` with
   CS_STACK_DIR=<repo>/.bench-stack and ports 27092/27093/27379, so neither
   the shared stack a test suite restarts nor another bench's is touched);
   every bench is a subprocess whose CS_KAFKA_BOOTSTRAP / CS_REDIS_URL point
   at it; `scripts/stack down` at the end unless `--keep`;
2. the benches, one after the other, each writing its figures with
   `--out`: bench/empty_agent.py (raw aiokafka passthrough, an empty Faust
   agent on the stock transport and on ours), bench/quix_scoring.py (the
   scoring step on Quix Streams, then on the product's stack),
   bench/hotpath.py (the engagement path's own Python steps, no broker),
   bench/floor.py (the engagement path's
   records alone, no Faust and no rules), bench/engagement.py (the engagement
   workload, then latency at a fixed 2,000 events/s), bench/timers.py (N
   contacts with a deadline), and bench/import_burst.py and
   bench/recovery.py when they exist (a missing one is reported missing);
3. bench/results/<UTC time>.json: every bench's figures as it wrote them,
   the commit and the uncommitted files, the scale, the machine's load
   average before and after; bench/results/<UTC time>.md with the summary
   table and two charts (bench/report.py), and the summary printed: each
   figure as a ratio to its baseline measured in the same run, next to the
   issue's target. A figure that was not measured is shown as missing.

The sizes at `--scale 1` are the issue's: 100,000 contacts and 100,000
inputs for the engagement workload (and the Quix scoring), 1,000,000
contacts for the timers and for recovery, 200,000 records for the import
burst; the empty agent reads 200,000 records. Every size is multiplied by
`--scale` (with floors that keep each bench meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
STACK_ENV = {
    "CS_STACK_DIR": str(ROOT / ".bench-stack"),
    "CS_STACK_KAFKA_PORT": "27092",
    "CS_STACK_CONTROLLER_PORT": "27093",
    "CS_STACK_REDIS_PORT": "27379",
}
LATENCY_RATE = 2000  # events/s of the latency target
CURRENT: list[subprocess.Popen[str]] = []  # the bench running now, for SIGTERM
ORDER = (
    "empty_agent",
    "quix_scoring",
    "hotpath",
    "floor",
    "engagement",
    "timers",
    "import_burst",
    "recovery",
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] run: {text}", flush=True)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


@dataclass
class Sizes:
    scale: float
    quick: bool
    empty_records: int
    empty_rounds: int
    contacts: int
    events: int
    latency_s: float
    timer_contacts: int
    timer_due: int
    timer_window: float
    import_records: int
    recovery_contacts: int
    floor_records: int

    @classmethod
    def of(cls, scale: float, quick: bool) -> Sizes:
        if quick:
            return cls(
                scale, True, 5_000, 1, 3_000, 2_000, 10, 20_000, 2_000, 20, 2_000, 20_000, 2_000
            )
        latency_s = 30.0
        # engagement.py's latency phase follows 1 event in 20 on a contact of its own.
        needed = 2 * (int(LATENCY_RATE * latency_s) // 20 + 1)
        timer_contacts = max(20_000, round(1_000_000 * scale))
        return cls(
            scale=scale,
            quick=False,
            empty_records=max(5_000, round(200_000 * scale)),
            empty_rounds=2,
            contacts=max(needed, round(100_000 * scale)),
            events=max(2_000, round(100_000 * scale)),
            latency_s=latency_s,
            timer_contacts=timer_contacts,
            # The firing rate stays the bench's default (20,000 over 60 s) whatever the
            # scale: the scale changes how many are scheduled, not how many fall due at once.
            timer_due=min(20_000, timer_contacts // 2),
            timer_window=60.0,
            import_records=max(2_000, round(200_000 * scale)),
            recovery_contacts=max(20_000, round(1_000_000 * scale)),
            floor_records=max(10_000, round(100_000 * scale)),
        )


def bench_commands(
    sizes: Sizes, out_dir: Path, ref: str | None, outputs_process: bool = False
) -> dict[str, list[str] | str]:
    """Each bench's argv, or why it does not run (a string)."""
    py = sys.executable
    refs = ["--ref", ref] if ref else []
    commands: dict[str, list[str] | str] = {
        "empty_agent": [
            py,
            str(BENCH / "empty_agent.py"),
            "--records",
            str(sizes.empty_records),
            "--rounds",
            str(sizes.empty_rounds),
        ],
        "quix_scoring": [
            py,
            str(BENCH / "quix_scoring.py"),
            "--contacts",
            str(sizes.contacts),
            # At least 50,000: a round of 20,000 lasted ~2 s, and its ratio moved by a
            # third between rounds (bench/quix_scoring.py).
            "--events",
            str(sizes.events if sizes.quick else max(sizes.events, 50_000)),
            "--rounds",
            "1" if sizes.quick else "3",
        ],
        # No broker: the router's and the contact agent's own Python steps.
        "hotpath": [
            py,
            str(BENCH / "hotpath.py"),
            "--rounds",
            "2000" if sizes.quick else "20000",
            *refs,
        ],
        # The engagement path's records with no Faust and no rules, against raw.
        "floor": [
            py,
            str(BENCH / "floor.py"),
            "--records",
            str(sizes.floor_records),
            "--rounds",
            "1" if sizes.quick else "2",
        ],
        "engagement": [
            py,
            str(BENCH / "engagement.py"),
            "--contacts",
            str(sizes.contacts),
            "--events",
            str(sizes.events),
            "--latency",
            str(LATENCY_RATE),
            "--latency-seconds",
            str(sizes.latency_s),
            *(["--outputs-process"] if outputs_process else []),
            *refs,
        ],
        "timers": [
            py,
            str(BENCH / "timers.py"),
            "--contacts",
            str(sizes.timer_contacts),
            "--due",
            str(sizes.timer_due),
            "--window",
            str(sizes.timer_window),
            *refs,
        ],
    }
    # Recovery: a bare read and a cold start are seconds each, and one pair's ratio
    # moved from 47 % to 61 % between two runs of one commit (bench/recovery.py).
    recovery_rounds = ["--rounds", "1" if sizes.quick else "3"]
    for name, size, extra in (
        ("import_burst", sizes.import_records, []),
        ("recovery", sizes.recovery_contacts, recovery_rounds),
    ):
        commands[name] = optional_command(name, size, refs, extra)
    for name, argv in commands.items():
        if isinstance(argv, list):
            argv += ["--out", str(out_dir / f"{name}.json")]
    return commands


def optional_command(name: str, size: int, refs: list[str], extra: list[str]) -> list[str] | str:
    """bench/<name>.py with its size argument, read from its --help; or why not.

    `extra` (a flag and its value) is added when the script's --help names the flag.
    """
    script = BENCH / f"{name}.py"
    if not script.exists():
        return f"not present: bench/{name}.py does not exist in this tree"
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    usage = done.stdout
    if done.returncode != 0 or "--out" not in usage:
        return f"not runnable: `bench/{name}.py --help` failed or has no --out"
    size_flag = next(
        (f for f in ("--records", "--contacts", "--size", "--events") if f in usage), None
    )
    if size_flag is None:
        return f"not runnable: `bench/{name}.py --help` names no size argument"
    argv = [sys.executable, str(script), size_flag, str(size)]
    if refs and "--ref" in usage:
        argv += refs
    if extra and extra[0] in usage:
        argv += extra
    return argv


def stack(command: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "stack"), command],
        cwd=ROOT,
        env={**os.environ, **STACK_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"scripts/stack {command} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def stack_exports() -> dict[str, str]:
    """CS_KAFKA_BOOTSTRAP, CS_REDIS_URL (and the rest `scripts/stack env` prints)."""
    out = {}
    for line in stack("env").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("CS_"):
            out[name] = value
    return out


def run_bench(name: str, argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """One bench as a subprocess: its output to the terminal (prefixed) and to `log`."""
    say(f"{name}: {shlex.join(a.replace(str(ROOT) + '/', '') for a in argv)}")
    # The benches run the working tree: a commit landing mid-run changes what is measured.
    head = git("rev-parse", "HEAD")
    started = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                print(f"  {name} | {line}", end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        CURRENT[:] = [process]
        try:
            code = process.wait()
        except KeyboardInterrupt:
            # The bench got the same SIGINT (same process group) and cleans up its topics.
            process.wait(120)
            raise
        finally:
            CURRENT.clear()
            reader.join(10)
    seconds = round(time.monotonic() - started, 1)
    out = Path(argv[argv.index("--out") + 1])
    entry: dict[str, Any] = {"argv": argv[1:], "exit": code, "seconds": seconds, "log": str(log)}
    entry["git_head_at_start"] = head
    if out.exists():
        entry["status"] = "ok" if code == 0 else "failed"
        entry["result"] = json.loads(out.read_text())
    else:
        entry["status"] = "failed"
        entry["error"] = log.read_text(errors="replace")[-3000:]
    say(f"{name}: {entry['status']} (exit {code}) in {seconds:.0f} s")
    return entry


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM (e.g. a timeout) unwinds like Ctrl-C: the stack is stopped, the figures kept."""
    for process in CURRENT:  # Ctrl-C reaches the bench by its process group; SIGTERM does not
        process.send_signal(signal.SIGTERM)
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="every size times this")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these benches")
    parser.add_argument("--ref", help="engagement and timers run this git ref's code")
    parser.add_argument("--keep", action="store_true", help="leave the private stack running")
    parser.add_argument(
        "--outputs-process",
        action="store_true",
        help="the engagement bench runs the relay and the projection in "
        "`contact-stream outputs` beside the worker (CS_OUTPUTS_IN_WORKER=false)",
    )
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")

    started = datetime.now(UTC)
    stamp = f"{started:%Y-%m-%dT%H%M%SZ}"
    sizes = Sizes.of(args.scale, args.quick)
    run_dir = Path(STACK_ENV["CS_STACK_DIR"]) / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    combined: dict[str, Any] = {
        "benchmark": "bench/run.py",
        "stamp": stamp,
        "started_at": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "scale": args.scale,
        "quick": args.quick,
        "sizes": sizes.__dict__,
        "git": {
            "commit": git("rev-parse", "HEAD"),
            # The private stack's dir is the bench's own, not a change to the code.
            "dirty": [
                line
                for line in git("status", "--porcelain").splitlines()
                if ".bench-stack" not in line
            ],
            "ref_measured": args.ref,
        },
        "machine": {"cpus": os.cpu_count(), "load_avg_before": os.getloadavg()},
        "stack": STACK_ENV,
        "benches": {},
    }
    signal.signal(signal.SIGTERM, interrupt)
    say(f"stamp {stamp}, scale {args.scale}{' (quick)' if args.quick else ''}; stack up")
    stack("up")
    try:
        env = {**os.environ, **STACK_ENV, **stack_exports(), "PYTHONUNBUFFERED": "1"}
        say(f"private stack: {env['CS_KAFKA_BOOTSTRAP']}, {env['CS_REDIS_URL']}")
        commands = bench_commands(sizes, run_dir, args.ref, args.outputs_process)
        for name in ORDER:
            if args.only and name not in args.only:
                combined["benches"][name] = {"status": "skipped", "why": "not in --only"}
                continue
            argv = commands[name]
            if isinstance(argv, str):
                say(f"{name}: {argv}")
                combined["benches"][name] = {"status": "missing", "why": argv}
                continue
            combined["benches"][name] = run_bench(name, argv, env, run_dir / f"{name}.log")
    except KeyboardInterrupt:
        say("interrupted: writing what was measured")
        combined["interrupted"] = True
    finally:
        if args.keep:
            say(f"--keep: the stack stays up ({STACK_ENV})")
        else:
            say("stack down")
            try:
                stack("down")
            except SystemExit as error:  # the figures are worth writing all the same
                say(str(error))
    combined["machine"]["load_avg_after"] = os.getloadavg()
    combined["git"]["commit_at_end"] = git("rev-parse", "HEAD")
    combined["git"]["dirty_at_end"] = [
        line for line in git("status", "--porcelain").splitlines() if ".bench-stack" not in line
    ]
    combined["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    combined["wall_s"] = round((datetime.now(UTC) - started).total_seconds())

    sys.path.insert(0, str(BENCH))
    from report import write_all

    write_all(combined, RESULTS, stamp)


if __name__ == "__main__":
    main()

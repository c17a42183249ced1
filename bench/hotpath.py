"""The engagement path's own Python work per input, step by step, without Kafka or Redis.

Usage:

    .venv/bin/python bench/hotpath.py                 # the working tree
    .venv/bin/python bench/hotpath.py --ref 3dcf366   # a commit (git archive)

bench/engagement.py measures the whole worker, whose CPU per input moves by
~30 % from one run to the next on this shared machine (docs/performance.md).
This bench times the pure steps an engagement by email goes through in the
router and the contact agent, in one process, on the workload's own records
(bench/engagement.py's preload and inputs): decoding the input, normalizing
its email, the routed payload, the contact-op hop's JSON, loading the contact,
the domain (due timers, then the engagement), encoding the new state, the
applied record, the change events and the snapshot. Each step is timed over
`--rounds` inputs (CPU time of this process), and so is a baseline measured
in the same run: `orjson.loads` of the input record, the least any consumer
of JSON does per record. The report gives each step in µs and as a multiple
of that baseline, so runs on a loaded machine compare by their ratios.

What it leaves out, on purpose: Faust's stream, the tables' RocksDB reads
and writes, the producer and the projection (the profile of
bench/engagement.py shows those). The steps mirror stream/agents/engagement.py
and stream/agents/contact.py `_apply_engagement`; a change there that adds a
step should add it here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from common import ROOT, rerun_from
from engagement import TENANT, TYPES, contact_id_of, email_of, preload_encoders


def steps(
    now_ms: int, n: int
) -> tuple[list[tuple[str, Callable[[int], Any]]], Callable[[int], Any], dict[str, Any]]:
    """The timed steps (each takes the input's index), the baseline, and what the steps made.

    The steps leave their results in the returned dict (the contact-op JSON,
    the changes, the snapshot, ...): bench/floor.py takes its records' bytes from it.
    """
    from stream.agents.engagement import identifier_key, routed_engagement
    from stream.domain.commands import fire_timers
    from stream.domain.contact import Cause, snapshot
    from stream.domain.engage import EngagementInput, apply_engagement
    from stream.domain.timefmt import format_ms
    from stream.models import decode_input
    from stream.tables.codec import decode_contact, encode_contact
    from stream.tables.tenant_configs import engagement_config, tenant_configs

    contact_of, _ = preload_encoders(now_ms)
    stored = [contact_of(i % 20_000)[1] for i in range(n)]
    raws = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "tenant_id": TENANT,
                "type": TYPES[i % len(TYPES)][0],
                "email": email_of(i % 20_000),
                "campaign_id": "spring-sale",
                "occurred_at": format_ms(now_ms - (i % 600) * 1000),
            }
        )
        for i in range(n)
    ]
    config = tenant_configs.get(TENANT)
    rules = engagement_config(config)
    state: dict[str, Any] = {}

    def decode(i: int) -> Any:
        state["event"] = decode_input("engagement", raws[i])

    def normalize(i: int) -> Any:
        state["key"] = identifier_key(state["event"])

    def route(i: int) -> Any:
        payload = routed_engagement(state["event"], "in", 0, i, now_ms)
        state["op"] = orjson.dumps(
            {
                "kind": "engagement",
                "op": payload["op"],
                "keys": [],
                "engagement": payload,
                "target": contact_id_of(i % 20_000),
                "origin": {"topic": "in", "offset": i},
            }
        )

    def hop(i: int) -> Any:
        state["operation"] = orjson.loads(state["op"])

    def load(i: int) -> Any:
        state["contact"] = decode_contact(stored[i])

    def domain(i: int) -> Any:
        payload = state["operation"]["engagement"]
        fired = fire_timers(state["contact"], payload["at"], rules)
        decision = apply_engagement(
            fired.contact,
            EngagementInput(payload["type"], payload["occurred_at"], payload["machine_open"]),
            rules,
            payload["at"],
            Cause("engagement", payload["event_id"], payload["clamped"]),
            config.emit_score_updates,
        )
        state["decision"] = decision
        state["changes"] = fired.changes + decision.changes

    def encode(i: int) -> Any:
        changes = [orjson.dumps(change.as_json()).decode() for change in state["changes"]]
        state["encoded_changes"] = changes
        encoded = state["contact_record"] = encode_contact(state["decision"].contact)
        state["record"] = orjson.dumps(
            {
                "at": 0,
                "op": "x",
                "contact": "c",
                "changes": changes,
                "after": [],
                "state": encoded.decode(),
            }
        )

    def snap(i: int) -> Any:
        state["snapshot"] = orjson.dumps(snapshot(state["decision"].contact))

    timed = [
        ("decode the input", decode),
        ("normalize the email", normalize),
        ("routed payload + contact-op JSON", route),
        ("contact-op JSON decode", hop),
        ("decode the stored contact", load),
        ("domain: due timers + engagement", domain),
        ("changes, contact, applied record", encode),
        ("snapshot JSON", snap),
    ]
    return timed, lambda i: orjson.loads(raws[i]), state


def measure(now_ms: int, rounds: int, repeats: int) -> dict[str, Any]:
    timed, baseline, _ = steps(now_ms, rounds)
    names = ["baseline: orjson.loads of the input", *[name for name, _ in timed]]
    best = dict.fromkeys(names, float("inf"))
    for _ in range(repeats):  # the best of `repeats`: the least disturbed by other processes
        spent = dict.fromkeys(names, 0.0)
        for i in range(rounds):
            t = time.process_time_ns()
            baseline(i)
            spent[names[0]] += time.process_time_ns() - t
            for name, step in timed:
                t = time.process_time_ns()
                step(i)
                spent[name] += time.process_time_ns() - t
        for name in names:
            best[name] = min(best[name], spent[name] / rounds / 1000)
    base = best[names[0]]
    total = sum(best[name] for name in names[1:])
    return {
        "rounds": rounds,
        "repeats": repeats,
        "us": {name: round(best[name], 2) for name in names},
        "ratio_to_baseline": {name: round(best[name] / base, 1) for name in names},
        "total_us": round(total, 1),
        "total_ratio": round(total / base, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ref", help="time the code of this commit (git archive)")
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.ref and "CS_BENCH_SOURCE" not in os.environ:
        raise SystemExit(rerun_from(args.ref))
    now_ms = 1_780_000_000_000
    result = measure(now_ms, args.rounds, args.repeats)
    result["ref"] = args.ref or "working tree"
    width = max(len(name) for name in result["us"])
    for name, us in result["us"].items():
        print(f"{name:<{width}}  {us:8.2f} us  {result['ratio_to_baseline'][name]:6.1f}x")
    print(f"{'steps in all':<{width}}  {result['total_us']:8.1f} us  {result['total_ratio']:6.1f}x")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
        print(f"results in {shown}")


if __name__ == "__main__":
    main()

"""The per-identifier lock protocol (SPEC §3.2.9), simulated with random delivery.

Operations visit their keys in sorted order; a simulated network delivers
hop messages in a random order per "partition", sometimes twice. Whatever
the interleaving, every operation is applied exactly once, and the final
owners equal a sequential run of the same operations in the order they were
applied: the protocol serializes them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.locking import Entry, lock_order, unlock, visit


def decide(owners: dict[str, str | None], op_id: str) -> tuple[str, dict[str, str]]:
    """A toy identity rule: the first owned key's owner wins, else a new contact.

    The chosen contact claims every unowned key (like an intake adding identifiers).
    """
    target = next((o for o in owners.values() if o is not None), op_id)
    return target, {k: target for k, o in owners.items() if o is None}


@dataclass
class Network:
    rng: random.Random
    duplicate_rate: float
    queue: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        self.queue.append(message)
        if self.rng.random() < self.duplicate_rate:
            self.queue.append(dict(message))  # at-least-once: a redelivery

    def pop(self) -> dict[str, Any]:
        # Kafka keeps order per partition; across partitions anything goes.
        # Model: pick a random key's oldest message.
        keys = sorted({m["key"] for m in self.queue})
        key = self.rng.choice(keys)
        index = next(i for i, m in enumerate(self.queue) if m["key"] == key)
        return self.queue.pop(index)


def run(ops: list[list[str]], seed: int, duplicate_rate: float) -> tuple[list[str], dict[str, str]]:
    rng = random.Random(seed)
    net = Network(rng, duplicate_rate)
    entries: dict[str, Entry] = {}
    applied: list[str] = []
    op_keys = {f"op{i}": lock_order(keys) for i, keys in enumerate(ops)}
    for op_id, keys in op_keys.items():
        net.send({"key": keys[0], "kind": "visit", "op": op_id, "i": 0, "owners": {}})
    while net.queue:
        msg = net.pop()
        if msg["kind"] == "visit":
            key, op_id = msg["key"], msg["op"]
            result = visit(entries.get(key, Entry()), op_id, msg)
            entries[key] = result.entry
            if result.parked:
                continue
            owners = {**msg["owners"], key: result.owner}
            keys = op_keys[op_id]
            if msg["i"] + 1 < len(keys):
                nxt = msg["i"] + 1
                net.send({**msg, "key": keys[nxt], "i": nxt, "owners": owners})
            else:
                net.send(
                    {"key": f"contact:{op_id}", "kind": "apply", "op": op_id, "owners": owners}
                )
        elif msg["kind"] == "apply":
            op_id = msg["op"]
            if op_id in applied:
                claims: dict[str, str] = {}  # the contact partition's dedup: no effect twice
            else:
                applied.append(op_id)
                _, claims = decide(msg["owners"], op_id)
            for key in op_keys[op_id]:
                net.send(
                    {
                        "key": key,
                        "kind": "unlock",
                        "op": op_id,
                        "owner": claims.get(key),
                        "set": key in claims,
                    }
                )
        else:
            key = msg["key"]
            result = unlock(entries[key], msg["op"], msg["set"], msg["owner"])
            entries[key] = result.entry
            for parked in result.released:
                net.send(dict(parked))
    assert all(e.lock is None and not e.parked for e in entries.values()), "a lock leaked"
    return applied, {k: e.owner for k, e in entries.items() if e.owner is not None}


def sequential(ops: list[list[str]], order: list[str]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for op_id in order:
        keys = lock_order(ops[int(op_id[2:])])
        _, claims = decide({k: owners.get(k) for k in keys}, op_id)
        owners.update(claims)
    return owners


key_pool = st.sampled_from([f"acme|email|p{i}@example.com" for i in range(6)])
op_lists = st.lists(st.lists(key_pool, min_size=1, max_size=4), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(op_lists, st.integers(0, 2**32), st.sampled_from([0.0, 0.2]))
def test_racing_operations_end_as_if_applied_one_after_the_other(
    ops: list[list[str]], seed: int, duplicate_rate: float
) -> None:
    applied, owners = run(ops, seed, duplicate_rate)
    assert sorted(applied) == sorted(f"op{i}" for i in range(len(ops)))
    assert owners == sequential(ops, applied)


def test_twenty_identical_submits_make_one_contact() -> None:
    ops = [["acme|email|ana@example.com", "acme|phone|+34600111222"]] * 20
    applied, owners = run(ops, seed=3, duplicate_rate=0.1)
    assert len(set(owners.values())) == 1
    assert set(owners.values()) == {applied[0]}


def test_a_visit_finding_its_own_lock_goes_on_and_a_stale_unlock_changes_nothing() -> None:
    held = visit(Entry(owner="c1"), "op1", {"op": "op1"}).entry
    again = visit(held, "op1", {"op": "op1"})
    assert not again.parked and again.owner == "c1" and again.entry == held
    parked = visit(held, "op2", {"op": "op2"})
    assert parked.parked and parked.entry.parked == ({"op": "op2"},)
    assert visit(parked.entry, "op2", {"op": "op2"}).entry == parked.entry
    freed = unlock(parked.entry, "op1", set_owner=True, owner="c9")
    assert freed.entry == Entry(owner="c9") and freed.released == ({"op": "op2"},)
    assert unlock(freed.entry, "op1", set_owner=True, owner="c7").entry == freed.entry

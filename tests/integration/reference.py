"""The reference for a race: the pure domain folded in the order the system reports.

The system serializes intakes that share an identifier or a contact: the
second one's decision is taken only after the first one's change events are
published (the contact partition publishes, flushes, and only then unlocks).
So ordering the intakes by their first change event on `contacts.changes.v1`
(record timestamp, then partition and offset: a contact's events share a
partition) is a serialization order of every pair that conflicts; intakes
that do not conflict commute. An intake that published nothing changed
nothing, then and at the end alike, so it goes last.

Folding the intake records, as read back from the intake topic (the same
bytes, partition, offset and broker timestamp the worker saw), through the
same routing and domain code in that order must give exactly the change
events the system published: same ids, versions, data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from stream.agents.contact import intake_from_payload
from stream.agents.intake import routed_intake
from stream.models import TenantConfig, decode_input
from stream.tables.tenant_configs import identity_config
from tests.unit.world import World


def reference_changes(intake_records: Sequence[Any], change_records: Sequence[Any]) -> list[dict]:
    """The change events a sequential run in the system's reported order publishes."""
    first_seen: dict[str, tuple[int, int, int]] = {}
    for r in change_records:
        event_id = orjson.loads(r.value)["cause"]["event_id"]
        position = (r.timestamp, r.partition, r.offset)
        first_seen[event_id] = min(first_seen.get(event_id, position), position)
    never = (float("inf"), 0, 0)
    intakes = []
    for r in intake_records:
        model = decode_input("intake", r.value)
        payload = routed_intake(model, r.topic, r.partition, r.offset, r.timestamp)
        assert payload is not None, "the race sends valid intakes only"
        intakes.append(intake_from_payload(payload))
    intakes.sort(key=lambda i: first_seen.get(i.event_id, never))
    world = World(identity_config(TenantConfig()))
    for item in intakes:
        world.apply(item)
    world.check_identity_invariants()
    return [c.as_json() for c in world.published]


def compare(system: list[dict], reference: list[dict]) -> None:
    """Equal as sets of change events; on a difference, name the first contact that differs."""
    by_id = {c["change_id"]: c for c in system}
    assert len(by_id) == len(system), "duplicate change ids: dedupe first"
    ref_ids = {c["change_id"] for c in reference}
    if by_id.keys() == ref_ids and all(by_id[c["change_id"]] == c for c in reference):
        return
    contacts = sorted({c["contact_id"] for c in system} ^ {c["contact_id"] for c in reference})
    for c in reference:
        if by_id.get(c["change_id"]) != c:
            contacts.insert(0, c["contact_id"])
            break
    first = contacts[0] if contacts else None

    def of(changes: list[dict]) -> list[tuple[int, str, str]]:
        return sorted(
            (c["version"], c["type"], c["cause"]["event_id"])
            for c in changes
            if c["contact_id"] == first
        )

    raise AssertionError(
        f"{len(system)} changes published, {len(reference)} in the reference; "
        f"contact {first}: system {of(system)} vs reference {of(reference)}"
    )


def assert_sequential(
    system: list[dict], intake_records: Sequence[Any], change_records: Sequence[Any]
) -> None:
    """`compare` against the fold, ordering by each change id's first published copy."""
    first_copies: dict[str, Any] = {}
    for r in change_records:
        first_copies.setdefault(orjson.loads(r.value)["change_id"], r)
    compare(system, reference_changes(intake_records, list(first_copies.values())))

"""Properties of the identity domain (SPEC §3.2.5, §3.2.9, §3.3), folded through it.

(a) Field last-writer-wins is independent of arrival order.
(b) Any sequence of intakes and commands keeps one owner per identifier and
    loses none: the owners map, kept from `claimed` / `released` as the shell
    keeps it, is exactly the identifiers listed on live and trashed contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.domain.commands import (
    DeleteContact,
    PurgeContact,
    RestoreContact,
    SuspendContact,
    UnsuspendContact,
    UpdateContact,
)
from stream.domain.contact import snapshot
from stream.domain.identity import IdentityConfig
from tests.unit.world import T0, World, intake

DAY = 86_400_000
ANA = "ana@example.com"

# ------------------------------------------------------- (a) last writer wins

FIELD_NAMES = ("city", "company", "size")
field_values = st.sampled_from(["Madrid", "Sevilla", 1, 2.5, True, "", None])


@dataclass(frozen=True)
class Write:
    """One timed write: an intake (nulls ignored) or an update_contact (null clears)."""

    kind: str
    event_id: str
    at: int
    fields: dict[str, Any]
    owner: tuple[str | None] | None = None  # update_contact only: (value,) when named


@st.composite
def writes(draw: st.DrawFn) -> list[Write]:
    count = draw(st.integers(1, 8))
    out = []
    for i in range(count):
        kind = draw(st.sampled_from(["intake", "update"]))
        out.append(
            Write(
                kind=kind,
                # Few distinct times, so equal times break ties by event_id.
                event_id=draw(st.sampled_from(["a", "b", "c"])) + str(i),
                at=T0 + draw(st.integers(0, 3)),
                fields=draw(st.dictionaries(st.sampled_from(FIELD_NAMES), field_values)),
                owner=(
                    draw(st.none() | st.tuples(st.sampled_from(["maria", "juan", None])))
                    if kind == "update"
                    else None
                ),
            )
        )
    return out


def apply_writes(order: list[Write]) -> World:
    world = World()
    cid = world.apply(intake("create", [ANA], at=T0 - DAY)).contact.contact_id
    for offset, write in enumerate(order, start=1):
        if write.kind == "intake":
            world.apply(
                intake(write.event_id, [ANA], fields=write.fields, at=write.at, offset=offset)
            )
        else:
            world.command(
                UpdateContact(
                    "acme",
                    cid,
                    fields=write.fields,
                    sets_owner=write.owner is not None,
                    owner=None if write.owner is None else write.owner[0],
                ),
                write.at,
                write.event_id,
            )
    return world


@settings(max_examples=300, deadline=None)
@given(writes(), st.data())
def test_field_last_writer_wins_gives_the_same_values_in_any_arrival_order(
    batch: list[Write], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(batch))
    first = next(iter(apply_writes(batch).contacts.values()))
    second = next(iter(apply_writes(list(shuffled)).contacts.values()))
    assert first.fields == second.fields
    assert first.owner == second.owner
    assert snapshot(first)["fields"] == snapshot(second)["fields"]


# ------------------------------------------- (b) one owner, no identifier lost

EMAILS = ("a@example.com", "b@example.com", "c@example.com", "d@example.com")
PHONES = ("+34600000001", "+34600000002", "+34600000003")
CONFIG = IdentityConfig(alt_email_limit=1, alt_phone_limit=1)

some_emails = st.lists(st.sampled_from(EMAILS), max_size=3, unique=True).map(tuple)
some_phones = st.lists(st.sampled_from(PHONES), max_size=2, unique=True).map(tuple)
# An index into the contacts seen so far (tombstones included); -1 names no contact.
target = st.integers(-1, 30)

intakes = st.tuples(
    st.just("intake"),
    some_emails,
    some_phones,
    st.sampled_from(["form", "form", "form", "manual"]),
    st.sampled_from(["update", "update", "update", "skip"]),
).filter(lambda op: op[1] or op[2])
operations = st.one_of(
    intakes,
    intakes,
    st.tuples(
        st.just("update"),
        target,
        some_emails,
        some_phones,
        some_emails,
        some_phones,
        st.none() | st.sampled_from(EMAILS),
    ),
    st.tuples(
        st.sampled_from(["delete", "delete", "restore", "purge", "suspend", "unsuspend"]),
        target,
    ),
    st.tuples(st.just("merge"), target, st.lists(target, min_size=1, max_size=3)),
    # Mostly valid: distinct live contacts other than the survivor.
    st.tuples(st.just("merge_live"), target, st.lists(target, min_size=1, max_size=2)),
    st.tuples(st.just("tick"), st.sampled_from([DAY, 10 * DAY, 31 * DAY])),
)

SIMPLE = {
    "delete": DeleteContact,
    "restore": RestoreContact,
    "purge": PurgeContact,
    "suspend": SuspendContact,
    "unsuspend": UnsuspendContact,
}


def pick(world: World, index: int) -> str:
    ids = list(world.contacts)
    return ids[index % len(ids)] if ids and index >= 0 else "ghost"


def run(world: World, step: int, op: tuple[Any, ...], now: int) -> None:
    event_id = f"ev{step}"
    # Inputs may be late: a command's time may be before the previous one's.
    at = now - (step % 3) * 1000
    match op:
        case ("intake", emails, phones, source, on_match):
            world.apply(
                intake(
                    event_id,
                    emails,
                    phones,
                    at=at,
                    offset=step,
                    source=source,
                    on_match=on_match,
                )
            )
        case ("update", index, add_e, add_p, rm_e, rm_p, primary):
            world.command(
                UpdateContact(
                    "acme",
                    pick(world, index),
                    add_emails=add_e,
                    add_phones=add_p,
                    remove_emails=rm_e,
                    remove_phones=rm_p,
                    primary_email=primary,
                    tags_add=(event_id,),
                ),
                at,
                event_id,
            )
        case ("merge", survivor, merged):
            world.merge(pick(world, survivor), [pick(world, i) for i in merged], at, event_id)
        case ("merge_live", survivor, merged):
            live = [c.contact_id for c in world.contacts.values() if c.state == "live"]
            if len(live) >= 2:
                first = live[survivor % len(live)]
                others = [c for c in live if c != first]
                chosen = dict.fromkeys(others[i % len(others)] for i in merged)
                world.merge(first, list(chosen), at, event_id)
        case ("tick", _):
            world.tick(now)
        case (name, index):
            world.command(SIMPLE[name]("acme", pick(world, index)), at, event_id)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=4, max_size=30))
def test_identifiers_never_get_two_owners_and_are_never_lost(ops: list[tuple[Any, ...]]) -> None:
    world = World(CONFIG)
    now = T0
    for step, op in enumerate(ops):
        now += op[1] if op[0] == "tick" else 1000
        run(world, step, op, now)
        world.check_identity_invariants()
    world.check_versions()

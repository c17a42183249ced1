"""stream/agents/identity.py `send_engagement`: an engagement by email or phone goes
straight to its contact when the identifier's entry here is settled, and through the
lookup hop when it is busy, absent, or a lookup of ours for it is still in flight."""

from __future__ import annotations

from typing import Any

import pytest

from stream.agents import identity
from stream.domain.locking import Entry

KEY = "t1|email|ana@example.com"


class World:
    """The entries this worker reads, and what it sent where."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: dict[str, Entry] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.generation = 1
        monkeypatch.setattr(identity, "local_entry", self.entries.get)
        monkeypatch.setattr(identity, "send_contact_op", self.send_contact_op)
        monkeypatch.setattr(identity, "send_identity_op", self.send_identity_op)
        monkeypatch.setattr(identity, "app", self)
        monkeypatch.setattr(identity, "_lookups_in_flight", identity.Counter())
        monkeypatch.setattr(identity, "_lookups_generation", -1)

    @property
    def consumer_generation_id(self) -> int:
        return self.generation

    async def send_contact_op(self, operation: dict[str, Any]) -> None:
        self.sent.append(("contact", operation))

    async def send_identity_op(self, key: str, message: dict[str, Any]) -> None:
        self.sent.append(("lookup", message))

    async def engage(self, n: int) -> tuple[str, dict[str, Any]]:
        await identity.send_engagement(KEY, {"kind": "engagement", "op": f"op{n}"})
        return self.sent[-1]

    def answer(self, message: dict[str, Any]) -> None:
        """The hop answers a lookup (not parked): what resolve_identity does first."""
        identity._lookup_answered(KEY, message)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


async def test_a_settled_entry_sends_the_engagement_to_its_owner_without_the_hop(
    world: World,
) -> None:
    world.entries[KEY] = Entry(owner="c1")
    where, message = await world.engage(1)
    assert (where, message["target"], message["kind"]) == ("contact", "c1", "engagement")
    assert len(world.sent) == 1


async def test_an_absent_entry_takes_the_hop_uncounted_and_does_not_hold_back_the_next(
    world: World,
) -> None:
    where, message = await world.engage(1)  # not here: unknown, or another worker's
    assert where == "lookup" and "mark" not in message
    world.entries[KEY] = Entry(owner="c1")
    assert (await world.engage(2))[0] == "contact"


async def test_later_engagements_queue_behind_a_lookup_sent_for_a_busy_entry(
    world: World,
) -> None:
    world.entries[KEY] = Entry(owner="c1", lock="op-intake")
    first = await world.engage(1)
    assert first[0] == "lookup" and "mark" in first[1]
    world.entries[KEY] = Entry(owner="c2")  # unlocked; the first lookup is still in flight
    second = await world.engage(2)
    assert second[0] == "lookup", "overtook the lookup in flight"
    world.answer(first[1])
    third = await world.engage(3)
    assert third[0] == "lookup", "overtook the second lookup"
    world.answer(second[1])
    world.answer({"mark": "another process"})  # not ours: changes nothing
    assert (await world.engage(4))[0] == "lookup", "overtook the third lookup"
    world.answer(third[1])
    world.answer(world.sent[-1][1])
    where, message = await world.engage(5)
    assert (where, message["target"]) == ("contact", "c2")


async def test_an_entry_with_waiters_takes_the_hop(world: World) -> None:
    world.entries[KEY] = Entry(owner="c1", parked=({"op": "x"},))
    assert (await world.engage(1))[0] == "lookup"


async def test_a_rebalance_forgets_the_lookups_in_flight(world: World) -> None:
    world.entries[KEY] = Entry(owner="c1", lock="op-intake")
    await world.engage(1)
    world.entries[KEY] = Entry(owner="c1")
    assert (await world.engage(2))[0] == "lookup"
    world.generation += 1  # their partitions, and answers, may have moved
    assert (await world.engage(3))[0] == "contact"

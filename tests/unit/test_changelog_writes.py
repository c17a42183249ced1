"""stream/tables/changelog.py: values stored at once, their changelog records sent when
the operation ends, one per key with its last value, in the order of the last writes,
on the event's partition; the persisted offset follows the broker's acknowledgement."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from stream.tables import changelog


class Store(dict[str, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    def __init__(self, name: str) -> None:
        self.name = name
        self.data = Store()
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"cs-{name}-changelog")
        self.faust_writes: list[tuple[str, bytes]] = []

    def __setitem__(self, key: str, value: bytes) -> None:  # Faust's own write
        self.faust_writes.append((key, value))


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.acks: list[asyncio.Future[Any]] = []
        self.fail_at: int | None = None

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, *_: Any) -> Any:
        if self.fail_at == len(self.sent):
            raise RuntimeError("producer closed")
        self.sent.append((topic, key, value, partition))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Producer:
    fake = Producer()
    app = SimpleNamespace(in_transaction=False, producer=fake)
    monkeypatch.setattr(changelog, "app", app)

    async def produce(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        return await fake.send(topic, key, value, partition)

    monkeypatch.setattr(changelog, "produce", produce)
    monkeypatch.setattr(changelog, "current_event", lambda: event(2))
    return fake


def event(partition: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


async def test_one_record_per_key_with_its_last_value_in_the_order_of_the_last_writes(
    producer: Producer,
) -> None:
    contacts, other = Table("contacts"), Table("quota")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "t|e1", b"applied")
    writes.set(contacts, "t:c1", b"v1")
    writes.set(other, "t:c1", b"same key, other table")
    writes.set(contacts, "t:c1", b"v2")
    assert contacts.data == {"t|e1": b"applied", "t:c1": b"v2"}  # stored at once
    assert producer.sent == [] and writes.pending == 3
    await writes.send()
    assert producer.sent == [
        ("cs-contacts-changelog", b"t|e1", b"applied", 2),
        ("cs-quota-changelog", b"t:c1", b"same key, other table", 2),
        ("cs-contacts-changelog", b"t:c1", b"v2", 2),
    ]
    assert writes.pending == 0
    await writes.send()
    assert len(producer.sent) == 3  # nothing twice


async def test_the_persisted_offset_follows_each_acknowledgement_and_not_a_failure(
    producer: Producer,
) -> None:
    contacts = Table("contacts")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "a", b"1")
    writes.set(contacts, "b", b"1")
    await writes.send()
    assert contacts.data.persisted == {}
    producer.acks[0].set_result(SimpleNamespace(offset=41))
    producer.acks[1].set_exception(RuntimeError("not enough replicas"))
    await loop_passes(2)  # done callbacks run on the loop, the offsets are stored next
    assert contacts.data.persisted == {TP("cs-contacts-changelog", 2): 41}


async def test_acknowledgements_that_arrive_together_store_one_offset_per_partition(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts, quota = Table("contacts"), Table("quota")
    writes = changelog.ChangelogWrites()
    for key in "abc":
        writes.set(contacts, key, b"1")
    writes.set(quota, "a", b"1")
    monkeypatch.setattr(changelog, "current_event", lambda: event(3))
    writes.set(contacts, "d", b"1")
    await writes.send()
    stored: list[tuple[str, TP, int]] = []
    for table in (contacts, quota):
        monkeypatch.setattr(
            table.data,
            "set_persisted_offset",
            lambda tp, offset, name=table.name: stored.append((name, tp, offset)),
        )
    # One produce response: acknowledged out of order, all in one pass of the loop.
    for ack, offset in zip(producer.acks, (12, 14, 13, 7, 40), strict=True):
        ack.set_result(SimpleNamespace(offset=offset))
    await loop_passes(2)
    assert sorted(stored) == [
        ("contacts", TP("cs-contacts-changelog", 2), 14),
        ("contacts", TP("cs-contacts-changelog", 3), 40),
        ("quota", TP("cs-quota-changelog", 2), 7),
    ]
    # A later acknowledgement is stored on its own pass.
    writes.set(contacts, "e", b"1")
    await writes.send()
    producer.acks[-1].set_result(SimpleNamespace(offset=15))
    await loop_passes(2)
    assert stored[-1] == ("contacts", TP("cs-contacts-changelog", 3), 15)
    assert len(stored) == 4


async def loop_passes(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_failed_send_keeps_that_record_and_the_ones_after_it(producer: Producer) -> None:
    contacts = Table("contacts")
    writes = changelog.ChangelogWrites()
    for key in "abc":
        writes.set(contacts, key, b"1")
    producer.fail_at = 1
    with pytest.raises(RuntimeError):
        await writes.send()
    assert [s[1] for s in producer.sent] == [b"a"] and writes.pending == 2
    producer.fail_at = None
    await writes.send()
    assert [s[1] for s in producer.sent] == [b"a", b"b", b"c"]


async def test_under_exactly_once_a_write_goes_faust_s_way(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog.app, "in_transaction", True)
    contacts = Table("contacts")
    writes = changelog.ChangelogWrites()
    writes.set(contacts, "a", b"1")
    assert contacts.faust_writes == [("a", b"1")] and writes.pending == 0


def test_a_write_outside_an_event_is_refused(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog, "current_event", lambda: None)
    with pytest.raises(RuntimeError):
        changelog.ChangelogWrites().set(Table("contacts"), "a", b"1")

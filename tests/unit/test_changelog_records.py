"""stream/transport.py, fix 8: a changelog's fetched records stay as aiokafka parsed them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from stream import transport
from stream.transport import ChangelogRecords, Consumer, full_record, partition_records
from tests.unit.test_recovery import Restorer, consumer

CHANGELOG = TP("cs-lean-contacts-changelog", 2)
SOURCE = TP("lean-contact-ops", 2)
READ_UNCOMMITTED = 0

# (key, value, headers): a tombstone and a record with headers among them.
RECORDS: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
    (b"bench:1", b'{"a":1}', []),
    (b"bench:2", None, []),
    (b"bench:3", b'{"c":3}', [("trace", b"t-1"), ("n", b"")]),
    (None, b"keyless", []),
]


def fetched(base_offset: int = 40) -> bytes:
    """One record batch as a fetch response carries it: `RECORDS` from `base_offset`."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (key, value, headers) in enumerate(RECORDS):
        at = 1_700_000_000_000 + delta
        builder.append(delta, timestamp=at, key=key, value=value, headers=headers)
    batch = bytearray(builder.build())
    batch[0:8] = base_offset.to_bytes(8, "big")
    return bytes(batch)


def unpacked(tp: TP, fetch_offset: int = 40) -> tuple[Any, list[Any]]:
    """The iterator aiokafka's fetcher gets from `partition_records`, and its records."""
    records = partition_records(
        tp, MemoryRecords(fetched()), [], fetch_offset, None, None, True, READ_UNCOMMITTED
    )
    return records, list(records)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_changelogs", {CHANGELOG.topic})


@pytest.mark.usefixtures("registered")
def test_a_registered_changelog_s_records_stay_as_parsed_any_other_topic_s_are_aiokafka_s() -> None:
    lean, parsed = unpacked(CHANGELOG)
    stock, consumer_records = unpacked(SOURCE)
    assert type(lean) is ChangelogRecords
    assert type(stock) is transport._StockRecords
    assert all(type(r) is ConsumerRecord for r in consumer_records)
    assert not any(isinstance(r, ConsumerRecord) for r in parsed)
    assert [(r.offset, r.key, r.value) for r in parsed] == [
        (40 + n, key, value) for n, (key, value, _) in enumerate(RECORDS)
    ]
    # The same record, made whole: equal to what aiokafka made of it, field for field.
    assert [full_record(SOURCE, r) for r in parsed] == consumer_records
    assert consumer_records[2].headers == (("trace", b"t-1"), ("n", b""))
    assert consumer_records[1].serialized_value_size == -1
    assert consumer_records[3].serialized_key_size == -1
    assert lean.next_fetch_offset == stock.next_fetch_offset == 44


@pytest.mark.usefixtures("registered")
def test_records_below_the_fetch_offset_are_skipped_on_both_paths() -> None:
    lean, parsed = unpacked(CHANGELOG, fetch_offset=42)
    stock, consumer_records = unpacked(SOURCE, fetch_offset=42)
    assert [r.offset for r in parsed] == [r.offset for r in consumer_records] == [42, 43]
    assert lean.next_fetch_offset == stock.next_fetch_offset == 44


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("taken", [True, False])
def test_a_changelog_batch_is_restored_as_parsed_or_else_made_consumer_records(taken: bool) -> None:
    """The recovery writes the parsed records; a batch it does not take goes per record, whole."""
    _, parsed = unpacked(CHANGELOG)
    _, consumer_records = unpacked(SOURCE)
    restorer = Restorer({CHANGELOG} if taken else set())
    rest = Consumer._restore_changelog_batches(
        consumer(restorer),
        {CHANGELOG: parsed, SOURCE: consumer_records},
        {CHANGELOG, SOURCE},
        {},
        set(),
        3,
    )
    assert rest[SOURCE] is consumer_records  # already ConsumerRecords: passed on as they are
    if taken:
        assert restorer.restored == [(CHANGELOG, [r.offset for r in parsed])]
        assert CHANGELOG not in rest
    else:
        assert restorer.restored == []
        assert rest[CHANGELOG] == [full_record(CHANGELOG, r) for r in parsed]
        assert [(r.topic, r.partition, r.offset) for r in rest[CHANGELOG]] == [
            (CHANGELOG.topic, CHANGELOG.partition, 40 + n) for n in range(len(RECORDS))
        ]


def test_the_worker_consumer_registers_the_app_s_changelogs_before_its_fetcher_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faust.transport.drivers import aiokafka as driver

    seen: dict[str, Any] = {}

    def create(self: Any, t: Any) -> Any:
        seen["records"] = aiokafka_fetcher.PartitionRecords
        seen["changelogs"] = set(transport._changelogs)
        return SimpleNamespace(_fetch_max_wait_ms=1500)

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer", create)
    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", aiokafka_fetcher.PartitionRecords)
    monkeypatch.setattr(transport, "_changelogs", set())
    thread = transport.ConsumerThread.__new__(transport.ConsumerThread)
    thread.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics={"cs-a-x-changelog"}))
    thread._create_worker_consumer(None)
    assert seen == {"records": partition_records, "changelogs": {"cs-a-x-changelog"}}

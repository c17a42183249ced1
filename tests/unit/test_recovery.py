"""stream/tables/recovery.py and the consumer's hand-over of changelog batches to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rocksdict
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from stream.tables.recovery import Recovery, logs, records_past, write_changelog_batch
from stream.transport import Consumer, _first_undelivered
from tests.unit.tables import table

CHANGELOG = TP("cs-contacts-changelog", 1)
SOURCE = TP("contact-ops", 1)


def record(offset: int, key: bytes | None, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(offset=offset, key=key, value=value)


def test_records_past_an_offset_keep_their_order_and_skip_what_was_restored() -> None:
    batch = [record(n, b"k", b"v") for n in (4, 5, 7, 8)]
    assert records_past(batch, None) is batch
    assert records_past(batch, 3) is batch
    assert [r.offset for r in records_past(batch, 5)] == [7, 8]
    assert [r.offset for r in records_past(batch, 6)] == [7, 8]
    assert records_past(batch, 8) == []
    assert records_past([], 3) == []


class FakeStore:
    offset_key = b"__faust\0offset__"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dbs: dict[int, rocksdict.Rdict] = {}

    def _db_for_partition(self, partition: int) -> rocksdict.Rdict:
        if partition not in self.dbs:
            options = rocksdict.Options(raw_mode=True)
            options.create_if_missing(True)
            self.dbs[partition] = rocksdict.Rdict(str(self.path / f"p{partition}"), options=options)
        return self.dbs[partition]


def contents(db: rocksdict.Rdict) -> dict[bytes, bytes]:
    return {k: v for k, v in db.items() if k != FakeStore.offset_key}


def test_a_batch_leaves_each_key_at_its_last_value_and_tombstones_delete(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    first = [record(0, b"a", b"1"), record(1, b"b", b"1"), record(2, b"c", b"1")]
    write_changelog_batch(store, CHANGELOG, first, 2)  # type: ignore[arg-type]
    second = [
        record(3, b"a", b"2"),
        record(4, b"b", None),  # deletes a key of an earlier batch
        record(5, b"d", b"1"),
        record(6, b"d", None),  # and one written earlier in the same batch
        record(7, b"c", None),
        record(8, b"c", b"3"),  # a key written again after its tombstone
    ]
    write_changelog_batch(store, CHANGELOG, second, 8)  # type: ignore[arg-type]
    db = store.dbs[CHANGELOG.partition]
    assert contents(db) == {b"a": b"2", b"c": b"3"}
    assert db[FakeStore.offset_key] == b"8"  # Faust's persisted offset, in the same write
    assert list(store.dbs) == [CHANGELOG.partition]


def test_a_record_without_a_key_is_refused_and_nothing_of_its_batch_is_written(
    tmp_path: Path,
) -> None:
    store = FakeStore(tmp_path)
    with pytest.raises(TypeError):
        write_changelog_batch(
            store,  # type: ignore[arg-type]
            CHANGELOG,
            [record(0, b"a", b"1"), record(1, None, b"x")],
            1,
        )
    assert contents(store._db_for_partition(CHANGELOG.partition)) == {}


UNLOGGED_WRITER = """
import os, sys
from pathlib import Path
from types import SimpleNamespace
from faust.types import TP
from tests.unit.test_recovery import FakeStore, record
from stream.tables.recovery import write_changelog_batch

store = FakeStore(Path(sys.argv[1]))
tp = TP("cs-contacts-changelog", 0)
write_changelog_batch(store, tp, [record(0, b"a", b"1")], 0)  # logged
batch = [record(1, b"b", b"2"), record(2, b"a", None)]
write_changelog_batch(store, tp, batch, 2, logged=False)
if sys.argv[2] == "flush":
    store.dbs[0].flush(True)
if sys.argv[2] == "close":
    store.dbs[0].close()
    sys.exit(0)
os._exit(0)  # as a SIGKILL: no close, no destructor
"""


@pytest.mark.parametrize("end", ["kill", "flush", "close"])
def test_unlogged_batches_survive_a_flush_or_a_close_and_a_kill_loses_them_with_their_offset(
    tmp_path: Path, end: str
) -> None:
    """A restore writes without the write-ahead log (stream/tables/recovery.py): a
    worker killed before the flush must come back at the last logged batch, its
    offset included, never with an offset past the data it kept."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", UNLOGGED_WRITER, str(tmp_path), end], cwd=root, check=True
    )
    db = FakeStore(tmp_path)._db_for_partition(0)
    try:
        if end == "kill":
            assert contents(db) == {b"a": b"1"}
            assert db[FakeStore.offset_key] == b"0"
        else:
            assert contents(db) == {b"b": b"2"}
            assert db[FakeStore.offset_key] == b"2"
    finally:
        db.close()


class Restorer:
    """What the consumer sees of the recovery service."""

    def __init__(self, partitions: set[TP]) -> None:
        self.partitions = partitions
        self.restored: list[tuple[TP, list[int]]] = []

    def takes_batches(self, tp: TP) -> bool:
        return tp in self.partitions

    def restore_records(self, tp: TP, records: list[Any]) -> None:
        self.restored.append((tp, [r.offset for r in records]))


def consumer(restorer: Restorer | None, *, flow: bool = True, generation: int = 3) -> Any:
    return SimpleNamespace(
        app=SimpleNamespace(
            tables=SimpleNamespace(_recovery=restorer),
            consumer_generation_id=generation,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
        ),
        flow_active=flow,
        _buffered_partitions=set(),
        highwater=lambda tp: 100,
        _read_offset={},
    )


def consumer_record(tp: TP, offset: int, key: bytes, value: bytes) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 1, 2, ())


def batches() -> dict[TP, list[Any]]:
    """A changelog's records as parsed (transport fix 8), a source topic's as ConsumerRecords."""
    return {
        CHANGELOG: [record(10, b"a", b"1"), record(11, b"b", b"1")],
        SOURCE: [consumer_record(SOURCE, 5, b"x", b"{}")],
    }


def test_a_changelog_batch_goes_whole_to_the_recovery_and_counts_as_delivered() -> None:
    restorer = Restorer({CHANGELOG})
    fake = consumer(restorer)
    delivered: dict[TP, int] = {}
    held: set[TP] = set()
    rest = Consumer._restore_changelog_batches(
        fake, batches(), {CHANGELOG, SOURCE}, delivered, held, 3
    )
    assert restorer.restored == [(CHANGELOG, [10, 11])]
    assert list(rest) == [SOURCE]  # the source records go one by one, as before
    assert delivered == {CHANGELOG: 11}
    assert fake._read_offset == {CHANGELOG: 11}
    assert held == set()


@pytest.mark.parametrize(
    ("active", "flow", "generation"),
    [
        ({SOURCE}, True, 3),  # the changelog partition is paused
        ({CHANGELOG, SOURCE}, False, 3),  # the flow stopped (a rebalance)
        ({CHANGELOG, SOURCE}, True, 4),  # fetched under the previous generation
    ],
)
def test_a_changelog_batch_that_may_not_be_delivered_is_held_back_not_restored(
    active: set[TP], flow: bool, generation: int
) -> None:
    restorer = Restorer({CHANGELOG})
    fake = consumer(restorer, flow=flow, generation=generation)
    delivered: dict[TP, int] = {}
    held: set[TP] = set()
    rest = Consumer._restore_changelog_batches(fake, batches(), active, delivered, held, 3)
    assert restorer.restored == []
    assert held == {CHANGELOG}  # getmany seeks it back to its first record
    assert CHANGELOG not in rest
    assert delivered == {}


def test_without_a_batch_restorer_every_record_goes_the_per_record_way() -> None:
    for restorer in (None, Restorer(set())):
        delivered: dict[TP, int] = {}
        held: set[TP] = set()
        records = {
            tp: [consumer_record(tp, r.offset, r.key, r.value) for r in batch]
            for tp, batch in batches().items()
        }
        rest = Consumer._restore_changelog_batches(
            consumer(restorer), records, {CHANGELOG, SOURCE}, delivered, held, 3
        )
        assert rest == records
        assert delivered == {}
        assert held == set()


def test_the_first_undelivered_record_of_a_batch() -> None:
    batch = [record(n, b"k", b"v") for n in (4, 5, 7, 8)]
    assert _first_undelivered(batch, -1) == 4
    assert _first_undelivered(batch, 5) == 7
    assert _first_undelivered(batch, 6) == 7
    assert _first_undelivered(batch, 8) is None  # delivered whole
    assert _first_undelivered([], -1) is None


def test_a_standby_batch_is_logged_only_on_faust_s_store(tmp_path: Path) -> None:
    ours = table(tmp_path / "ours", "csrocksdb://").data
    faust_s = table(tmp_path / "faust", "rocksdb://").data
    assert [logs(ours, active=False), logs(ours, active=True)] == [False, False]
    assert [logs(faust_s, active=False), logs(faust_s, active=True)] == [True, False]


class FlushedDb:
    def __init__(self) -> None:
        self.flushes: list[bool] = []

    def flush(self, wait: bool) -> None:
        self.flushes.append(wait)


def test_the_end_of_recovery_flush_is_waited_for_only_on_faust_s_store(tmp_path: Path) -> None:
    """Faust's store logs the agents' writes: its restored batches must be on disk before
    the streams resume. Ours logs nothing, so its flush is only started."""
    ours = table(tmp_path / "ours", "csrocksdb://").data
    faust_s = table(tmp_path / "faust", "rocksdb://").data
    dbs = {}
    for store in (ours, faust_s):
        dbs[store] = store._dbs[1] = FlushedDb()
    revoked = table(tmp_path / "revoked", "csrocksdb://").data  # no db: closing flushed it
    fake = SimpleNamespace(_unlogged={(ours, 1), (faust_s, 1), (revoked, 1)})
    Recovery._flush_unlogged(fake)  # type: ignore[arg-type]
    assert dbs[ours].flushes == [False]
    assert dbs[faust_s].flushes == [True]
    assert fake._unlogged == set()

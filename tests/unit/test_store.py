"""stream/tables/store.py: every write of the product's RocksDB store skips the write-ahead
log, and what the memtables hold reaches disk when the store stops or lets a partition go."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import rocksdict
from faust.types import TP

from stream.settings import Settings
from stream.tables import base, changelog
from stream.tables.store import Store
from tests.unit.tables import table


def write_every_way(things: Any, partition: int, tag: bytes) -> None:
    """Our direct write, Faust's write, a restored changelog batch and a persisted offset."""
    changelog.ChangelogWrites().set(things, f"t|direct-{partition}", b"direct-" + tag)
    things.data[f"t|faust-{partition}"] = b"faust-" + tag
    restored = SimpleNamespace(
        message=SimpleNamespace(
            tp=TP("things-changelog", partition),
            offset=7,
            partition=partition,
            key=f"t|restored-{partition}".encode(),
            value=b"restored-" + tag,
        )
    )
    things.data.apply_changelog_batch([restored], lambda k: k, lambda v: v)


def log_bytes(things: Any, partition: int) -> int:
    """Bytes in the partition database's write-ahead log files."""
    path = things.data.partition_path(partition)
    return sum(f.stat().st_size for f in path.glob("*.log"))


def on_disk(things: Any, partition: int) -> dict[bytes, bytes]:
    """What a reader of the files finds (a read-only open sees no memtable)."""
    path = str(things.data.partition_path(partition))
    options = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(path, options, access_type=rocksdict.AccessType.read_only())
    try:
        return {k: v for k, v in db.items() if not k.startswith(b"__faust")}
    finally:
        db.close()


def test_the_default_store_is_ours_and_it_is_faust_s_rocksdb_store(tmp_path: Path) -> None:
    things = table(tmp_path, Settings.model_fields["store"].default)
    assert isinstance(things.data, Store)
    assert isinstance(things.data, base.RocksDBStore)  # the direct paths take it
    assert base.partition_db(things, 0) is not None


def test_no_write_goes_to_the_log_where_faust_s_store_logs_each(
    tmp_path: Path, on_partition: Any
) -> None:
    ours = table(tmp_path / "ours", "csrocksdb://")
    stock = table(tmp_path / "stock", "rocksdb://")
    on_partition(2)
    for things in (ours, stock):
        write_every_way(things, 2, b"1")
        assert things.get("t|direct-2") == b"direct-1"
        assert things.data["t|faust-2"] == b"faust-1"
        assert things.get("t|restored-2") == b"restored-1"
        assert things.data.persisted_offset(TP("things-changelog", 2)) == 7
    assert log_bytes(stock, 2) > 0
    assert log_bytes(ours, 2) == 0


def test_a_stop_flushes_every_open_database(tmp_path: Path, on_partition: Any) -> None:
    things = table(tmp_path, "csrocksdb://")
    for partition in (0, 3):
        on_partition(partition)
        write_every_way(things, partition, b"x")
    assert on_disk(things, 0) == {}  # in the memtable only, until the flush
    # Held elsewhere (a reader's `partition_db`), the databases outlive Faust's
    # `_dbs.clear()`: dropped, a database would close, and a close flushes too.
    held = list(things.data._dbs.values())

    asyncio.run(things.data.stop())

    for partition in (0, 3):
        assert on_disk(things, partition) == {
            f"t|direct-{partition}".encode(): b"direct-x",
            f"t|faust-{partition}".encode(): b"faust-x",
            f"t|restored-{partition}".encode(): b"restored-x",
        }
    assert len(held) == 2


def test_a_revoked_partition_is_flushed_and_the_others_are_not(
    tmp_path: Path, on_partition: Any
) -> None:
    things = table(tmp_path, "csrocksdb://")
    for partition in (1, 2):
        on_partition(partition)
        write_every_way(things, partition, b"y")
    topic = things.changelog_topic.get_topic_name()
    held = list(things.data._dbs.values())  # as in the stop test: not closed by a drop

    things.data.revoke_partitions(things, {TP(topic, 1), TP("another-topic", 2)})

    assert 1 not in things.data._dbs
    assert len(on_disk(things, 1)) == 3
    assert 2 in things.data._dbs  # another topic's partition 2: not this table's
    assert on_disk(things, 2) == {}
    assert len(held) == 2

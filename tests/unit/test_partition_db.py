"""stream/tables/base.py `partition_db`: the agents' direct reads and writes of a RocksDB
table are the bytes Faust's own store reads and writes, in the event's partition database,
and a store that is not RocksDB goes Faust's way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from stream.partitioner import partition_for
from stream.tables import base, changelog
from tests.unit.tables import table


def test_a_direct_write_is_what_faust_s_store_reads_and_the_reverse(
    tmp_path: Path, on_partition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    things = table(tmp_path, "rocksdb://")
    store = things.data
    assert base.partition_db(things, 3) is not None
    writes = changelog.ChangelogWrites()

    on_partition(3)
    writes.set(things, "t|ana@example.com", b"direct")
    assert things.get("t|ana@example.com") == b"direct"
    assert len(store._key_index) == 0  # neither went through Faust's key index
    store["t|faust"] = b"faust's"  # Faust's write, under the same event
    assert store["t|ana@example.com"] == b"direct"  # Faust's read of ours
    assert things.get("t|faust") == b"faust's"  # ours of Faust's
    assert things.get("t|missing", b"default") == b"default"

    # Stored in partition 3's database: another partition's event does not see it,
    # and a lookup outside any event finds it without the key index.
    on_partition(1)
    assert things.get("t|ana@example.com") is None
    monkeypatch.setattr(base.faust.stores.rocksdb, "current_event", lambda: None)
    assert store._get_bucket_for_key(b"t|ana@example.com")[1] == b"direct"
    assert [p for p, db in store._dbs.items() if db.get(b"t|ana@example.com")] == [3]
    assert writes.pending == 1


def test_a_store_that_is_not_rocksdb_goes_faust_s_way(tmp_path: Path, on_partition: Any) -> None:
    things = table(tmp_path, "memory://")
    assert base.partition_db(things, 0) is None
    on_partition(0)
    changelog.ChangelogWrites().set(things, "t|k", b"v")
    assert things.data["t|k"] == b"v"
    assert things.get("t|k") == b"v"


def active_get(things: Any, key: str) -> bytes | None:
    """The key's value where `active_db` finds it, as the router reads an entry."""
    found = base.active_db(things, key)
    return None if found is None else found[0].get(found[1])


def test_active_db_reads_the_key_s_own_partition_when_it_is_active(
    tmp_path: Path, on_partition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    things = table(tmp_path, "rocksdb://")
    key = "t|email|ana@example.com"
    mine = partition_for(key.encode(), 4)  # where the table's agent got the key's records
    other = (mine + 1) % 4
    on_partition(mine)
    things.data._db_for_partition(other)  # a second partition database is open
    changelog.ChangelogWrites().set(things, key, b"owner c1")
    topic = things.changelog_topic.get_topic_name()
    actives = {TP(topic, mine), TP(topic, other)}
    monkeypatch.setattr(base, "active_partitions", lambda: frozenset(actives))
    monkeypatch.setattr(base.app, "rebalancing", False)

    assert active_get(things, key) == b"owner c1"
    assert active_get(things, "t|email|nobody@example.com") is None

    monkeypatch.setattr(base.app, "rebalancing", True)
    assert active_get(things, key) is None  # a rebalance: nothing is settled
    monkeypatch.setattr(base.app, "rebalancing", False)

    actives.discard(TP(topic, mine))  # the key's partition is a standby here now
    assert active_get(things, key) is None

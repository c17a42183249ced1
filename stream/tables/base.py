"""How every table of the app is declared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import faust
from faust import current_event
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, TableT

from stream.app import app, settings
from stream.partitioner import partition_for


class StrKeyTable(faust.Table[str, bytes]):
    """A Table whose keys restored from the changelog are str, like the ones the agents write.

    With key_type bytes (the raw codec, below) Faust hands the memory store the
    changelog's keys as bytes while the agents look up str keys, so a worker
    on `memory://` lost every contact on restart (found by bench/timers.py;
    RocksDB was unaffected: it stores both as the same bytes).
    """

    def _to_key(self, k: Any) -> Any:
        return k.decode() if isinstance(k, bytes) else super()._to_key(k)

    def get(self, key: str, default: Any = None) -> Any:
        """One store lookup: Faust's `get` asks the store `in` and then `[]`, two RocksDB reads.

        Same result (these tables have no default factory, so a missing key is
        `default`) and the same get sensors. While an agent processes an event
        the key is read from that event's partition database directly (see
        `partition_db`), as Faust's store reads it.
        """
        self.on_key_get(key)
        event = current_event()
        if event is not None:
            db = partition_db(self, event.message.partition)
            if db is not None:
                value = db.get(key.encode())
                return default if value is None else value
        try:
            return self.data[key]
        except KeyError:
            return default


def partition_db(table: TableT[str, bytes], partition: int) -> Any | None:
    """The RocksDB database of `table`'s `partition`, for a direct read or write; else None.

    Faust's RocksDB store does per key what these tables do not need: its
    codec (the raw one: a str key is its UTF-8 bytes, a bytes value itself)
    and, on every read and write, an update of its LRU key index (a
    lock-guarded dict that only speeds up lookups made outside an event).
    With the database in hand a read or write is one `get` or `put`: the same
    bytes in the same partition database as Faust's `_get`/`_set` under the
    event's partition. A store that is not rocksdict-backed RocksDB (e.g.
    `memory://`), a global table and one with its own partitioner give None:
    the caller goes Faust's way.
    """
    store = table.data
    if not (
        isinstance(store, RocksDBStore)
        and store.use_rocksdict
        and not table.is_global
        and not table.use_partitioner
    ):
        return None
    return store._db_for_partition(partition)


def bytes_table(name: str, help_text: str) -> TableT[str, bytes]:
    """A table of bytes values, co-partitioned with the agent that writes it.

    key_type/value_type bytes is what makes Faust use the raw codec for the
    store and the changelog topic (else json, which a raw `Schema` does not
    change); str keys are encoded as UTF-8. Values are always reassigned,
    never mutated in place (in-place mutation skips the changelog).
    """
    table = StrKeyTable(
        app,
        name=name,
        default=None,
        beacon=app.tables.beacon,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help=help_text,
    )
    return cast(TableT[str, bytes], app.tables.add(table))


_actives: tuple[int, frozenset[TP]] = (-1, frozenset())


def active_partitions() -> frozenset[TP]:
    """The partitions this worker holds as active, rebuilt once per rebalance generation."""
    global _actives
    generation = app.consumer_generation_id
    if _actives[0] != generation:
        _actives = (generation, frozenset(app.assignor.assigned_actives()))
    return _actives[1]


def active_db(table: TableT[str, bytes], key: str) -> tuple[Any, bytes] | None:
    """The database holding the key, if this worker holds its partition as active and settled.

    Returned with the key as stored (a rocksdict `Rdict` and the encoded
    key), else None. For a reader outside the agent that writes the table
    (its partition not the reader's event's): the key's partition is the one
    the table's agent got it on (its topic's records are sent by key with
    Kafka's partitioner, stream/partitioner.py), and it is given only if
    that partition is an active one of this worker, no rebalance is under
    way and no recovery is running. A standby's copy, a partition being
    restored or one held by another worker gives None, as does a store
    other than RocksDB. One database: looking through every partition's
    cost a read per partition before the key's.
    """
    store = table.data
    if not (isinstance(store, RocksDBStore) and store.use_rocksdict):
        return None
    # Faust's recovery sets `app.in_recovery` while it restores.
    if app.rebalancing or getattr(app, "in_recovery", False):
        return None
    raw = store._encode_key(key)
    changelog = table.changelog_topic
    partition = partition_for(raw, changelog.partitions or settings.partitions)
    if TP(changelog.get_topic_name(), partition) not in active_partitions():
        return None
    db = store._dbs.get(partition)
    return None if db is None else (db, raw)


def scan_items(table: TableT[str, bytes]) -> Iterator[tuple[bytes | str, bytes]]:
    """Every (key, value) of the partitions this worker owns, safe to read while agents write.

    RocksDB: one iterator per partition, each on the database as it was when
    the iterator opened (later writes are not seen), the partitions taken
    when the scan starts (a rebalance meanwhile cannot change the dict under
    it), and blocks read for the scan are not kept in the block cache: a full
    scan would otherwise fill it with the whole table (a cold start of 1 M
    contacts peaked ~570 MB higher, bench/README.md). Other stores: a copy of the
    items taken at once.
    """
    store = table.data
    if isinstance(store, RocksDBStore) and store.use_rocksdict:
        import rocksdict  # the store is rocksdict's

        dbs = list(store._dbs_for_actives())
        read = rocksdict.ReadOptions()
        read.fill_cache(False)  # type: ignore[call-arg]  # the stub lacks the flag
        for db in dbs:
            for key, value in db.items(read_opt=read):
                if key != store.offset_key:
                    yield key, value
    else:
        yield from list(table.items())

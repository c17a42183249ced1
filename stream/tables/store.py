"""The product's table store: Faust's RocksDB store, written without RocksDB's write-ahead log.

Registered under the ``faust.stores`` entry point as ``csrocksdb`` and used by
default (``CS_STORE``); ``rocksdb://`` selects Faust's stock store.

RocksDB appends every write to its write-ahead log: one `write()` system
call per `put`, made while the event loop's thread holds the GIL. The log
is what lets a killed process find its last writes on restart, and a
killed worker here never uses them: a start after an unclean stop discards
the tables' local files and restores them from the changelogs
(stream/tables/local_state.py), because local files may hold writes the
changelogs never got. So the log is written and never read. On the
engagement workload the `write()` calls were ~5 % of the worker's GIL
samples, and without them a worker took 9.8 % less CPU per input in four
pairs (docs/performance.md, session 29).

Every database this store opens writes without the log
(`Rdict.set_write_options`): the agents' direct writes
(stream/tables/base.py, stream/tables/changelog.py), Faust's own writes and
persisted offsets, and the recoveries' batches (stream/tables/recovery.py
asks for the log only on Faust's store). What a process that dies
loses is then every write since its memtables were last flushed to disk,
the persisted offsets included: a prefix of its writes is left (a memtable
flush persists writes in order, and a partition's offsets live in its own
database). That prefix plus the changelog from its persisted offset is the
same state, so even a start that kept the files would restore correctly,
only from further back.

A clean stop and a revoked partition flush their databases' memtables
before Faust lets go of them, so the next start, or the next assignment
here, reads them from disk rather than from the changelog. Faust never
closes a database; once nothing refers to it, its close flushes it too,
but a reader may still hold it then (`stream.tables.base.partition_db`).

A store with python-rocksdb instead of rocksdict (Faust's other driver)
keeps the log: that driver has no default write options to set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.stores.rocksdb import Store as FaustRocksDBStore
from faust.types import TP, CollectionT


def _without_log() -> Any:
    import rocksdict  # this store's driver when `use_rocksdict`

    options = rocksdict.WriteOptions()
    # A property at run time; rocksdict's stub declares it a method.
    options.disable_wal = True  # type: ignore[method-assign, assignment]
    return options


class Store(FaustRocksDBStore):
    """Faust's RocksDB store whose databases write without the log and are flushed when let go."""

    def _open_for_partition(self, partition: int) -> Any:
        db = super()._open_for_partition(partition)
        if self.use_rocksdict:
            db.set_write_options(_without_log())
        return db

    def flush(self, partitions: Iterable[int] | None = None) -> None:
        """Write the memtables of the open databases (of `partitions`, else all) to disk."""
        if not self.use_rocksdict:
            return
        wanted = self._dbs.keys() if partitions is None else partitions
        for partition in list(wanted):
            db = self._dbs.get(partition)
            if db is not None:
                db.flush()

    def revoke_partitions(self, table: CollectionT, tps: set[TP]) -> None:
        changelogs = table.changelog_topic.topics
        self.flush(tp.partition for tp in tps if tp.topic in changelogs)
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        self.flush()
        await super().stop()

"""Table recovery: whole fetched batches of a changelog written to RocksDB in one write.

Faust restores a table one record at a time: the fetched record becomes a
message, the conductor decodes it into an event and queues it, and the
recovery task takes it off the queue (`asyncio.wait_for`, a task per
record), logs it at debug level (two f-strings built whatever the level),
recomputes the remaining offsets of every partition (a `Counter`) and
buffers it; every 1,000 events the buffer becomes one RocksDB write. That
ran at ~5,000 records/s here against ~100,000 for a bare read of the same
topic (bench/README.md, "Recovery vs a bare read").

`Recovery.restore_records` takes what the consumer fetched for one
changelog partition, as aiokafka returned it, and writes the records past
the partition's recovered offset, with that offset, in one RocksDB
`WriteBatch` (atomic: the data and its offset land together, where Faust
wrote the offset after its data). The consumer (stream/transport.py) calls
it for each fetched batch of a changelog partition, in fetch order, before
anything else sees the batch; the records never become events. What is
restored is exactly what Faust's `Store.apply_changelog_batch` writes:
the record's key and value bytes as they are, a null value (a tombstone)
as a delete. Only tables whose store is Faust's rocksdict RocksDB store
and that have no changelog-event callback take this path; any other
changelog partition goes Faust's way, so one partition never takes both.

An active partition's batches are written without RocksDB's write-ahead
log, and every database written so is flushed when the recovery ends
(`Recovery._set_recovery_ended`). Killed before the flush, a worker loses
the unflushed batches and their offsets together (one `WriteBatch` each,
and a memtable flush persists whole batches in order), so it restores them
again. On Faust's store the streams resume only once the flush is done, so
the batches are on disk before any logged write (the agents' table writes,
whose persisted offsets would otherwise claim records a kill could still
lose). The product's store (stream/tables/store.py) logs no write at all:
what a kill leaves of its databases is a prefix of their writes, offsets
included, whenever it comes, so its flush is started and not waited for
(0.4 s of a 1 M-contact cold start, docs/performance.md, session 32). A
start after a kill discards the local files either way
(stream/tables/local_state.py). A revoked partition's
database is closed by Faust, and RocksDB flushes unlogged data on close.
Standby partitions, restored while their active copies run elsewhere, keep
the log, unless the store is the product's (stream/tables/store.py), which
writes nothing to it: a database there is written one way only. On a
cold start of 1 M contacts the log was ~1 s of a 9-11 s restore
(docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import monotonic
from typing import Any, Protocol

from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.types import TP
from faust.types.tables import CollectionT

from stream.tables.store import Store as UnloggedStore

log = logging.getLogger(__name__)


class ChangelogRecord(Protocol):
    """What restore needs of an aiokafka `ConsumerRecord`."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def records_past(records: Sequence[ChangelogRecord], seen: int | None) -> Sequence[ChangelogRecord]:
    """The records above offset `seen` (None: all), in order.

    A fetched batch is in offset order; after a seek back (a rebalance, our
    transport's refetch) it may start at or below what was restored already.
    """
    if seen is None or not records or records[0].offset > seen:
        return records
    return [r for r in records if r.offset > seen]


def fast_store(table: CollectionT) -> RocksDBStore | None:
    """The table's RocksDB store if its changelog may be restored by `restore_records`."""
    store = getattr(table, "data", None)
    if (
        isinstance(store, RocksDBStore)
        and store.use_rocksdict
        and getattr(table, "_on_changelog_event", None) is None
    ):
        return store
    return None


class Recovery(FaustRecovery):
    """Faust's recovery service, plus a restore path for whole fetched batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast: dict[CollectionT, RocksDBStore | None] = {}
        self._restored = 0  # records written by batches since the recovery began
        # Active partitions written without the write-ahead log since the last flush.
        self._unlogged: set[tuple[RocksDBStore, int]] = set()

    def takes_batches(self, tp: TP) -> bool:
        """True if `restore_records` restores this changelog partition now.

        It must be an active or standby partition of this assignment, of a
        table `fast_store` accepts; any other goes Faust's way (which warns
        about a changelog partition that is neither).
        """
        table = self.tp_to_table.get(tp)
        if table is None or (tp not in self.active_tps and tp not in self.standby_tps):
            return False
        try:
            return self._fast[table] is not None
        except KeyError:
            store = self._fast[table] = fast_store(table)
            return store is not None

    def restore_records(self, tp: TP, records: Sequence[ChangelogRecord]) -> None:
        """Write one fetched batch of changelog partition `tp` (`takes_batches(tp)` is true).

        The records past the partition's recovered offset go to its RocksDB in
        one write, with the new offset; then, as Faust's recovery task does
        after each event, recovery ends if no active partition has anything
        left to read.
        """
        table = self.tp_to_table[tp]
        store = self._fast.get(table)
        if store is None:
            raise RuntimeError(f"{tp} is not restored by batches (check takes_batches first)")
        active = tp in self.active_tps
        offsets = self.active_offsets if active else self.standby_offsets
        fresh = records_past(records, offsets.get(tp))
        if fresh:
            last = fresh[-1].offset
            write_changelog_batch(store, tp, fresh, last, logged=logs(store, active))
            if active:
                self._unlogged.add((store, tp.partition))
            offsets[tp] = last
            self._restored += len(fresh)
            now = monotonic()
            self._last_flush_at = now
            if active:
                self._active_events_received_at[tp] = now
            else:
                self._standby_events_received_at[tp] = now
        self._check_done()

    def _set_recovery_ended(self) -> None:
        # Every way a recovery ends (here, Faust's `_slurp_changelogs`, a stop)
        # comes through this, before the streams resume.
        self._flush_unlogged()
        super()._set_recovery_ended()

    def _set_recovery_started(self) -> None:
        super()._set_recovery_started()
        self._restored = 0  # a recovery started again counts from zero

    def _check_done(self) -> None:
        # Faust's `_slurp_changelogs` does this after every event it takes.
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()  # events of other tables taken Faust's way
            log.info(
                "restored %d changelog records by batches in %.2fs",
                self._restored,
                monotonic() - (self._recovery_started_at or monotonic()),
            )
            self._set_recovery_ended()
            self.signal_recovery_end.set()
        if not self.tables.standbys_ready:
            try:
                remaining = self.standby_remaining_total()
            except TypeError:  # a standby partition whose offset is not known yet
                return
            if not remaining:
                self.tables.on_standbys_ready()

    def _flush_unlogged(self) -> None:
        """Put what was written without the log on disk (module docstring).

        Waited for on Faust's store; on ours, started in RocksDB's background.
        """
        started = monotonic()
        waited = 0
        for store, partition in self._unlogged:
            db = store._dbs.get(partition)
            if db is not None:  # else revoked: closing it flushed it
                wait = writes_log(store)
                db.flush(wait)
                waited += wait
        if self._unlogged:
            log.info(
                "flushing %d restored partitions (%d waited for) took %.2fs",
                len(self._unlogged),
                waited,
                monotonic() - started,
            )
        self._unlogged.clear()


def write_changelog_batch(
    store: RocksDBStore,
    tp: TP,
    records: Sequence[ChangelogRecord],
    offset: int,
    *,
    logged: bool = True,
) -> None:
    """Faust's `Store.apply_changelog_batch` for one partition's records, offset included.

    `logged=False` writes without RocksDB's write-ahead log: the caller flushes.
    """
    import rocksdict  # Faust's rocksdict store is the only one `fast_store` accepts

    batch = rocksdict.WriteBatch(raw_mode=True)
    put, delete = batch.put, batch.delete
    for record in records:
        key, value = record.key, record.value
        if key is None:  # as Faust's stores: a table entry has a key
            raise TypeError(f"changelog record without a key at {tp} offset {record.offset}")
        if value is None:
            delete(key)
        else:
            put(key, value)
    batch.put(store.offset_key, str(offset).encode())
    options = rocksdict.WriteOptions()
    # A property at run time; rocksdict's stub declares it a method.
    options.disable_wal = not logged  # type: ignore[method-assign, assignment]
    store._db_for_partition(tp.partition).write(batch, options)


def writes_log(store: RocksDBStore) -> bool:
    """Whether the store's own writes go to RocksDB's write-ahead log: Faust's store's do,
    ours log nothing (stream/tables/store.py)."""
    return not isinstance(store, UnloggedStore)


def logs(store: RocksDBStore, active: bool) -> bool:
    """Whether a restored batch goes to RocksDB's write-ahead log: a standby's, on a
    store whose own writes are logged (`writes_log`)."""
    return not active and writes_log(store)


class TableManager(FaustTableManager):
    """Faust's table manager with the recovery service above, started without a pause."""

    async def on_start(self) -> None:
        """Faust's, without its first `sleep(1.0)`.

        The pause leaves time to declare tables once the app has started;
        ours are all declared when stream.worker is imported, before the app
        starts (one declared later would fail loudly: "Too late to add
        tables"). It was a second of every worker start, before recovery.
        """
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]

"""Table writes whose changelog records go straight to the producer when the operation ends.

Faust's table write (`table[key] = value`) stores the value and queues its
changelog record through `Topic.send_soon`: a `PendingMessage`, a
`FutureMessage`, Faust's producer buffer and its task, `publish_message`
with the sensors, then a callback that stores the persisted offset. On the
engagement path every input writes two records of the `contacts` table
(the applied record and the contact), and that path was ~1/10 of the
worker's CPU (docs/performance.md, recipe item 5).

`ChangelogWrites.set` stores the value at once (readers see it, as with
Faust's write) and keeps the record; `send` sends what was kept, one record
per key with its last value, in the order the keys were last written, each
pre-serialized to the producer (stream/produce.py) on the partition of the
event being processed (Faust's choice), and stores the persisted offset when
the broker acknowledges it (Faust's `_on_changelog_sent`), once per partition
for the acknowledgements that arrive together. The caller sends before
anything that must follow the records: the contact agent sends after each
operation, before its follow-ups are handed to the pump, whose flush then
covers them; every commit flushes the producer first, as before.

Under `exactly_once` a write goes Faust's way: its record must join the
partition's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, cast

from faust import current_event
from faust.types import TP, TableT
from faust.types.stores import StoreT

from stream.app import app
from stream.produce import produce
from stream.tables.base import partition_db

log = logging.getLogger(__name__)


class ChangelogWrites:
    """Values stored now; their changelog records sent by `send`, last value per key."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], tuple[TableT[str, bytes], int, bytes]] = {}

    def set(self, table: TableT[str, bytes], key: str, value: bytes) -> None:
        """`table[key] = value`, its changelog record kept for `send`."""
        if app.in_transaction:
            table[key] = value
            return
        event = current_event()
        if event is None:
            raise RuntimeError("a table is written while an agent processes an event")
        partition = event.message.partition
        db = partition_db(table, partition)
        if db is None:
            table.data[key] = value
        else:
            db.put(key.encode(), value)  # what `table.data[key] = value` stores (partition_db)
        kept = (table.name, key)
        self._kept.pop(kept, None)  # a key written again goes where it was written last
        self._kept[kept] = (table, partition, value)

    @property
    def pending(self) -> int:
        return len(self._kept)

    async def send(self) -> None:
        """Send the kept records, in order; each is removed once handed to the producer."""
        while self._kept:
            kept = next(iter(self._kept))
            table, partition, value = self._kept[kept]
            topic = table.changelog_topic.get_topic_name()
            sent = await produce(topic, kept[1].encode(), value, partition)
            del self._kept[kept]
            sent.add_done_callback(
                partial(_acked, cast(StoreT[Any, Any], table.data), TP(topic, partition))
            )


# The highest acknowledged offset per store and changelog partition, not yet
# stored. Faust stores each record's offset as it is acknowledged: a RocksDB
# put per record. The acknowledgements of one produce response arrive in one
# pass of the loop, so they are stored once, at the next pass: the stored
# offset may lag the data by that long, which a recovery only pays for by
# reading a few records again (it restores from the stored offset to the end).
_pending: dict[tuple[int, TP], tuple[StoreT[Any, Any], int]] = {}


def _acked(store: StoreT[Any, Any], tp: TP, sent: asyncio.Future[Any]) -> None:
    if sent.cancelled():
        return
    if sent.exception() is not None:
        # The commit's flush fails too, so the input is not committed past it.
        log.error("a changelog send to %s failed: %s", tp, type(sent.exception()).__name__)
        return
    offset = sent.result().offset
    if not _pending:
        asyncio.get_running_loop().call_soon(_store_offsets)
    held = _pending.get((id(store), tp))
    if held is None or offset > held[1]:
        _pending[id(store), tp] = (store, offset)


def _store_offsets() -> None:
    for (_, tp), (store, offset) in _pending.items():
        store.set_persisted_offset(tp, offset)
    _pending.clear()


# The contact partitions' writes (stream/agents/applied.py), sent by apply_contact_ops.
contact_writes = ChangelogWrites()

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
event being processed (Faust's choice); the table's persisted offset follows
the broker's acknowledgements (Faust's `_on_changelog_sent`), once per
produce batch rather than once per record (stream/produce.py). It may lag the
data by a batch, which a recovery only pays for by reading a few records
again (it restores from the stored offset to the end). The caller sends before
anything that must follow the records: the contact agent sends after each
operation, before its follow-ups are handed to the pump, whose flush then
covers them; every commit flushes the producer first, as before.

`delete` is Faust's `del table[key]` the same way: the key removed now, a
tombstone (a null value) sent by `send`.

Under `exactly_once` a write goes Faust's way: its record must join the
partition's transaction.

The contact agent's writes went this way first. The identity
table's followed in session 28: in a GIL profile of the engagement workload
its writes through Faust (`send_soon`, the producer buffer,
`publish_message`, a persisted offset stored per record) were ~7 % of the
samples, for the 10 % of inputs that are intakes.
"""

from __future__ import annotations

from typing import Any, cast

from faust import current_event
from faust.types import TableT
from faust.types.stores import StoreT

from stream.app import app
from stream.produce import produce
from stream.tables.base import partition_db


class ChangelogWrites:
    """Values stored now; their changelog records sent by `send`, last value per key."""

    def __init__(self) -> None:
        # A None value is a deletion: its record is a tombstone.
        self._kept: dict[tuple[str, str], tuple[TableT[str, bytes], int, bytes | None]] = {}

    def set(self, table: TableT[str, bytes], key: str, value: bytes) -> None:
        """`table[key] = value`, its changelog record kept for `send`."""
        if app.in_transaction:
            table[key] = value
            return
        partition = _event_partition()
        db = partition_db(table, partition)
        if db is None:
            table.data[key] = value
        else:
            db.put(key.encode(), value)  # what `table.data[key] = value` stores (partition_db)
        self._keep(table, key, partition, value)

    def delete(self, table: TableT[str, bytes], key: str) -> None:
        """`del table[key]`, its tombstone kept for `send`."""
        if app.in_transaction:
            del table[key]
            return
        partition = _event_partition()
        db = partition_db(table, partition)
        if db is None:
            table.data.pop(key, None)
        else:
            db.delete(key.encode())
        self._keep(table, key, partition, None)

    def _keep(
        self, table: TableT[str, bytes], key: str, partition: int, value: bytes | None
    ) -> None:
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
            store = cast(StoreT[Any, Any], table.data)
            await produce(topic, kept[1].encode(), value, partition, offsets=store)
            del self._kept[kept]


def _event_partition() -> int:
    event = current_event()
    if event is None:
        raise RuntimeError("a table is written while an agent processes an event")
    partition: int = event.message.partition
    return partition


# The contact partitions' writes (stream/agents/applied.py), sent by apply_contact_ops.
contact_writes = ChangelogWrites()
# The identity table's writes (stream/agents/identity.py), sent by resolve_identity.
identity_writes = ChangelogWrites()

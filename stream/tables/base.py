"""How every table of the app is declared."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TableT

from stream.app import app, settings


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
        `default`) and the same get sensors.
        """
        self.on_key_get(key)
        try:
            return self.data[key]
        except KeyError:
            return default


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

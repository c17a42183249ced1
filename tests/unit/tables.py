"""A RocksDB-or-memory table of the product's kind, and the agents' current event, for
the unit tests of the table paths (test_partition_db, test_store)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust

from stream.tables import base


def event(partition: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


def table(tmp_path: Path, store: str) -> Any:
    """A `StrKeyTable` of bytes on `store`, 4 partitions, in an app of its own under tmp_path."""
    app = faust.App(f"tables-{tmp_path.name}", datadir=str(tmp_path), store=store)
    return base.StrKeyTable(
        app, name="things", default=None, key_type=bytes, value_type=bytes, partitions=4
    )

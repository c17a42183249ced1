"""The tables' local files are trusted only after a clean stop.

A table write goes to the local RocksDB at once and to its changelog topic
later (Faust buffers changelog records). A worker killed in between restarts
with local state the changelog never got; the input that made the write is
processed again (its offset was not committed), finds the write already
there and, being idempotent, writes nothing: the changelog stays without it
for good, and the next worker to restore that partition from the changelog
(a fresh data dir, a rebalance) restores the state from before the write.
The crash workload found an identifier left locked that way: its unlock was
applied locally, killed before the changelog record went out, and replayed
as a no-op.

So, as Kafka Streams does after an unclean shutdown, a worker that did not
stop cleanly discards its tables' local files and restores them from the
changelogs: the changelogs are the state. A clean stop (streams drained,
offsets committed, producer flushed) leaves a marker; starting removes it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "clean-shutdown"


def open_local_state(tabledir: Path) -> bool:
    """Before the tables open: keep their files only after a clean stop. True if kept."""
    marker = tabledir.parent / MARKER
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    if clean or not tabledir.exists() or not any(tabledir.iterdir()):
        return True
    size = sum(f.stat().st_size for f in tabledir.rglob("*") if f.is_file())
    log.warning(
        "the last stop was not clean: discarding %d MB of local table state,"
        " restoring it from the changelogs",
        size // 1_000_000,
    )
    shutil.rmtree(tabledir)
    return False


def mark_clean(tabledir: Path) -> None:
    """After a clean stop: the local files hold nothing the changelogs lack."""
    tabledir.parent.mkdir(parents=True, exist_ok=True)
    (tabledir.parent / MARKER).touch()

"""The engagement-scoring step on the product's own stack: Quix's peer, like for like.

Run by bench/quix_scoring.py as `python bench/scoring_app.py worker -l warn
--without-web`, after Quix has scored the same input topic. It is the
product's app (stream/app.py: our transport, RocksDB tables, the product's
producer, logger and GC settings), with one agent of its own instead of the
product's: per event, the key's stored engagement is read from a bytes table
(`stream.tables.base.bytes_table`, RocksDB with its changelog), Quix's
`score` function (bench/quix_scoring.py's `scorer`: the product's pure rule,
the same state dict, the same output) runs on it, the new state is written
with its changelog record sent straight to the producer
(`stream.tables.changelog.ChangelogWrites`, as the contact agent does) and
the output is sent pre-serialized (`stream.produce.produce`, as `send_raw` does).
Events are taken as the product's agents take them (`stream.agents.batches`:
`CS_AGENT_BATCH` at a time; 1 for Faust's one at a time).

Environment: the product's settings (CS_APP_ID, CS_TOPIC_PREFIX, CS_DATADIR,
CS_KAFKA_BOOTSTRAP, set by the caller), BENCH_SOURCE and BENCH_SINK (topic
names), BENCH_EVENTS and BENCH_NOW_MS (the `now` Quix's run started from) and
BENCH_OUT, where the figures go once every event is scored.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quix_scoring import scorer

from stream.agents import batches
from stream.app import app
from stream.produce import produce
from stream.tables.base import bytes_table
from stream.tables.changelog import ChangelogWrites

SOURCE = os.environ["BENCH_SOURCE"]
SINK = os.environ["BENCH_SINK"]
EVENTS = int(os.environ["BENCH_EVENTS"])
OUT = Path(os.environ["BENCH_OUT"])

inputs = app.topic(SOURCE, value_serializer="raw", key_serializer="raw")
scores = bytes_table("bench-scores", "the scoring step's engagement per email")
writes = ChangelogWrites()
score = scorer(int(os.environ["BENCH_NOW_MS"]))


class KeyState:
    """Quix's per-key state interface (`get`/`set` by name) on one table value."""

    __slots__ = ("stored",)

    def __init__(self, raw: bytes | None) -> None:
        self.stored: Any = None if raw is None else orjson.loads(raw)

    def get(self, name: str) -> Any:
        return self.stored

    def set(self, name: str, value: Any) -> None:
        self.stored = value


def timestamp_ms(event: Any) -> int:
    """The record's timestamp as Quix gives it (ms); Faust's is in seconds."""
    return int(event.message.timestamp * 1000)


def score_one(event: Any) -> Any:
    key = event.key
    text = key.decode()
    state = KeyState(scores.get(text))
    output = score(orjson.loads(event.value), text, timestamp_ms(event), None, state)
    writes.set(scores, text, orjson.dumps(state.stored))
    return output


@app.agent(inputs, name="bench-score")
async def score_step(stream: Any) -> None:
    """As the product's agents: `CS_AGENT_BATCH` events at a time (stream/agents/batches.py)."""
    progress = Progress()
    async for event in batches.events(stream, "bench-score"):
        output = score_one(event)
        await produce(SINK, event.key, orjson.dumps(output))
        await writes.send()
        await progress.count()


class Progress:
    def __init__(self) -> None:
        self.seen = 0
        self.first = self.cpu = 0.0

    async def count(self) -> None:
        """One more event scored; once all are, the figures go to BENCH_OUT."""
        if self.seen == 0:
            self.first, self.cpu = time.perf_counter(), time.process_time()
        self.seen += 1
        if self.seen == EVENTS:
            await app.producer.flush()
            figures = {
                "processed": self.seen,
                "seconds": time.perf_counter() - self.first,
                "cpu_s": time.process_time() - self.cpu,
            }
            partial = OUT.with_suffix(".partial")
            partial.write_bytes(orjson.dumps(figures))
            partial.rename(OUT)  # the caller polls for OUT: it appears whole


if __name__ == "__main__":
    app.main()

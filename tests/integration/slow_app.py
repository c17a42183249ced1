"""A Faust app with one slow agent and tiny buffers, for tests/integration/test_transport.py.

The agent takes `SLOW_SECONDS` per record and forwards it, with its process
id, to the output topic; with a buffer of 4 the transport's drain
loop spends nearly all its time blocked in the conductor's callback waiting
for room, which is where a rebalance has to interrupt it.

`SLOW_LOSE_COMMIT=N` makes the worker's Nth offset commit lose its offsets
after Faust has taken their acknowledgements (our transport's consumer only):
the state a worker was seen in once after a broker outage, its commits
stopped behind a hole nothing fills (docs/reliability.md, transport fix 6).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust
import orjson

app = faust.App(
    os.environ["SLOW_APP_ID"],
    broker=f"{os.environ['SLOW_TRANSPORT']}://{os.environ['CS_KAFKA_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    stream_buffer_maxsize=4,
    broker_session_timeout=10,
    producer_linger=0,
)


def _lose_a_commit(nth: int) -> None:
    from stream.transport import Consumer

    original = Consumer._commit_offsets
    calls = 0

    async def commit_offsets(self: Consumer, offsets: Any, *args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == nth:  # `_new_offset` has removed these acks already
            logging.getLogger("slow_app").warning("slow-app lost the commit of %r", offsets)
            return False
        return await original(self, offsets, *args, **kwargs)

    Consumer._commit_offsets = commit_offsets  # type: ignore[method-assign]


if os.environ.get("SLOW_LOSE_COMMIT"):
    _lose_a_commit(int(os.environ["SLOW_LOSE_COMMIT"]))

source = app.topic(os.environ["SLOW_IN"], value_serializer="raw")
sink = app.topic(os.environ["SLOW_OUT"], value_serializer="raw")
SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "0.02"))


@app.on_rebalance_complete.connect
async def _ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    logging.getLogger("slow_app").warning("slow-app ready")


@app.agent(source)
async def slow(stream: Any) -> None:
    pid = os.getpid()
    async for value in stream:
        await asyncio.sleep(SLOW_SECONDS)
        await sink.send(value=orjson.dumps({"n": value.decode(), "pid": pid}))


if __name__ == "__main__":
    app.main()

"""An agent's events taken a batch at a time, handled back to back.

Faust's stream yields to the event loop before every event
(`Stream._c_aiter`), so the loop's other tasks (the producer's sender among
them) run between any two events. `Stream.take_events` gathers up to
`CS_AGENT_BATCH` events (or what came within `CS_AGENT_BATCH_WAIT` seconds)
while the agent works on the previous batch; the agent then handles them one
by one without yielding in between unless its own work waits, and their
records fill produce batches (`CS_PRODUCER_MAX_BATCH_BYTES`) before the
sender takes them. The scoring step alone went from 191-212 to 110-121 µs
of CPU per event, the engagement workload 1.07-1.21x further, at the price
of up to `CS_AGENT_BATCH_WAIT` per hop for an event that arrives alone
(docs/performance.md, session 23).

What stays as it was:
- each event is handled in order, and is Faust's current event while it is
  (`faust.current_event()`: the changelog writes take its partition from it);
- an event is acked once its whole batch is handled, so a commit never
  covers an event not yet handled; a crash replays at most a batch more;
- a rebalance waits for the events handed over to be acked
  (`Consumer.wait_empty`), as it waits for a single event's.

`CS_AGENT_BATCH=1` keeps Faust's event-at-a-time stream.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.streams import Stream, _current_event
from faust.types import EventT, StreamT

from stream import metrics
from stream.app import settings


async def events(stream: StreamT[Any], agent: str) -> AsyncIterator[EventT[Any]]:
    """The stream's events in order, taken a batch at a time unless CS_AGENT_BATCH is 1."""
    sizes = metrics.child(metrics.AGENT_BATCH, agent)
    if settings.agent_batch <= 1:
        async for event in stream.events():
            sizes.observe(1)
            yield event
        return
    taken = cast(Stream[Any], stream).take_events  # StreamT does not declare it
    async for batch in taken(settings.agent_batch, within=settings.agent_batch_wait):
        sizes.observe(len(batch))
        for event in batch:
            # take_events fills its batch in another task: the agent's task
            # never saw these events become current.
            _current_event.set(weakref.ref(event))
            yield event

"""An agent's events taken a batch at a time, handled back to back.

Faust's stream yields to the event loop before every event
(`Stream._c_aiter`), so the loop's other tasks (the producer's sender among
them) run between any two events. Taken a batch at a time, the agent
handles them one by one without yielding in between unless its own work
waits, and their records fill produce batches (`CS_PRODUCER_MAX_BATCH_BYTES`)
before the sender takes them. The scoring step alone went from 191-212 to
110-121 µs of CPU per event, the engagement workload 1.07-1.21x further
(docs/performance.md, session 23).

Since session 26 an agent on a topic takes its events straight from its
channel's queue, where the conductor puts them: whatever is queued, up to
`CS_AGENT_BATCH`, at once, or the first to come when none is. Faust's
`take_events` (still used for a stream that is not a plain topic's) moved
each event through the stream's iterator in a task of its own first: a
pass of the event loop (`sleep(0)`), the channel's `get` coroutines and a
processor coroutine per event, then a wait of up to `CS_AGENT_BATCH_WAIT`
for the batch to fill. Each event taken gets what the stream's iterator
gives it (Faust's `StreamIterator._prepare_event`): an event of an older
generation, or one taken while the flow is stopped (a rebalance), is
dropped unacked; the others are tracked as unacknowledged by the consumer
and passed to the sensors. The batches end as the stream's iteration ends:
when the actor stops, Faust throws `StopAsyncIteration` into the queue.

What stays as it was:
- each event is handled in order, and is Faust's current event while it is
  (`faust.current_event()`: the changelog writes take its partition from it);
- an event is acked once its whole batch is handled, so a commit never
  covers an event not yet handled; a crash replays at most a batch more. A
  batch the agent leaves unfinished (it raised, or was cancelled at a stop)
  is not acked at all: Faust's `take_events` acked the whole batch in a
  `finally`, handled or not;
- a rebalance waits for the events handed over to be acked
  (`Consumer.wait_empty`), as it waits for a single event's.

`CS_AGENT_BATCH=1` keeps Faust's event-at-a-time stream.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from faust.streams import Stream, _current_event
from faust.types import EventT, StreamT, TopicT
from mode.utils.queues import ThrowableQueue

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
    faust_stream = cast(Stream[Any], stream)  # StreamT declares neither take_events nor this
    batches: AsyncIterator[Sequence[EventT[Any]]]
    if _takes_from_queue(faust_stream):
        batches = _taken(faust_stream, settings.agent_batch)
    else:
        batches = faust_stream.take_events(settings.agent_batch, within=settings.agent_batch_wait)
    async for batch in batches:
        sizes.observe(len(batch))
        for event in batch:
            # Taken outside the stream's iterator: the agent's task never saw
            # these events become current.
            _current_event.set(weakref.ref(event))
            faust_stream.current_event = event
            yield event


def _takes_from_queue(stream: Stream[Any]) -> bool:
    """A plain topic's stream, acking its events: its channel's queue holds only events."""
    return (
        isinstance(stream.channel, TopicT)
        and isinstance(stream.channel.queue, ThrowableQueue)
        and not stream._processors
        and not stream.combined
        and stream.enable_acks
    )


async def _taken(stream: Stream[Any], most: int) -> AsyncIterator[list[EventT[Any]]]:
    """Batches of the events queued for `stream`: all there are, up to `most`, or the next one."""
    app = stream.app
    queue = cast(TopicT, stream.channel).queue
    flow_active = app.flow_control.is_active
    acking_topics = app.topics.acking_topics
    unacked = app.consumer._unacked_messages  # type: ignore[attr-defined]
    on_message_in, on_event_in = stream._on_message_in, stream._on_stream_event_in
    while True:
        try:
            event: EventT[Any] = await queue.get()
        except StopAsyncIteration:
            return  # the actor is stopping (Faust's `Actor.cancel` throws it into the queue)
        batch: list[EventT[Any]] = []
        while True:
            message = event.message
            if flow_active() and message.generation_id == app.consumer_generation_id:
                tp, offset = message.tp, message.offset
                if message.topic in acking_topics and not message.tracked:
                    message.tracked = True
                    unacked.add(message)
                    on_message_in(tp, offset, message)
                on_event_in(tp, offset, stream, event)
                batch.append(event)
            if len(batch) >= most or queue.empty():
                break
            event = queue.get_nowait()
        if not batch:
            continue
        yield batch
        # Reached only once the agent has handled the whole batch.
        for event in batch:
            await stream.ack(event)

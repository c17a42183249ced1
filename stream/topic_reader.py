"""Consumers of the worker's own services: started through a broker outage, whole topics read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    IncompatibleBrokerVersion,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnrecognizedBrokerVersion,
    UnsupportedSaslMechanismError,
)

log = logging.getLogger(__name__)

# What a broker that is down, restarting or still electing leaders raises; retried
# (`retried`), except its refusals below.
BROKER_FAULTS = (KafkaError, OSError, asyncio.TimeoutError)

# Among those, the broker's refusals: it answers, and asking again cannot change
# the answer (credentials, ACLs, a protocol it does not speak). Raised at once,
# so the service's start fails with its cause instead of retrying forever.
REFUSALS = (
    AuthenticationFailedError,
    IllegalSaslStateError,
    UnsupportedSaslMechanismError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnrecognizedBrokerVersion,
    IncompatibleBrokerVersion,
)


def retried(exc: BaseException) -> bool:
    """Whether a broker fault is worth another try: any but a refusal."""
    return isinstance(exc, BROKER_FAULTS) and not isinstance(exc, REFUSALS)


async def start_consumer(
    make: Callable[[], AIOKafkaConsumer],
    what: str,
    stopping: Callable[[], bool],
    setup: Callable[[AIOKafkaConsumer], Awaitable[None]] | None = None,
) -> AIOKafkaConsumer:
    """A consumer from `make`, started (and `setup` run on it) once the broker answers.

    aiokafka's `start` gives up when the broker is down or does not yet know
    a topic (`request_timeout_ms`, 40 s), and a service of the worker (the
    projection, the change relay, the tenant configs) may start while a
    worker already running loses its broker: the worker then died, taking its
    agents with it (CI, stop 23). Here a broker fault closes that consumer
    and a new one is tried, with a back-off up to 5 s, until the broker is
    back or the worker stops (then the fault is raised). A refusal
    (`REFUSALS`: credentials, ACLs) is raised at once.
    """
    delay = 0.5
    while True:
        consumer = make()
        try:
            await consumer.start()
            if setup is not None:
                await setup(consumer)
            return consumer
        except BROKER_FAULTS as exc:
            await consumer.stop()
            if stopping() or not retried(exc):
                raise
            log.warning(
                "%s: no broker to start its consumer (%s); retrying in %.1fs",
                what,
                type(exc).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def assign_from_beginning(
    consumer: AIOKafkaConsumer, topic: str, attempts: int = 100
) -> dict[TopicPartition, int]:
    """Assign every partition of `topic` at its beginning; returns their end offsets now.

    The topic's metadata may not be known yet (a worker creates it as it
    starts): it is asked for every 0.1 s, `attempts` times, before LookupError.
    """
    for _ in range(attempts):
        found = consumer.partitions_for_topic(topic)
        if found:
            partitions = [TopicPartition(topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            return ends
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {topic} not found")


async def reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether the consumer's position is at or past each of these end offsets."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True

"""Sending results: change events, snapshots and dead letters, pre-serialized."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from faust.types import EventT

from stream import metrics
from stream.domain.contact import Contact, snapshot
from stream.domain.timefmt import format_ms
from stream.models import dead_letter_raw
from stream.tables.contacts import contact_key
from stream.topics import OUTBOX, deadletter_topic, outbox_topic, send_raw, snapshots_topic

log = logging.getLogger(__name__)


def origin_of(event: EventT[Any]) -> dict[str, Any]:
    """Where an input came from, as its dead letter shows it (SPEC §2.7)."""
    message = event.message
    key = message.key
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": None if key is None else dead_letter_raw(key),
        "raw": dead_letter_raw(message.value),
        # The broker timestamp, not the wall clock: a replay writes the same letter.
        "at": format_ms(int(message.timestamp * 1000)),
    }


async def send_dead_letter(event: EventT[Any], reason: str, detail: str) -> None:
    """One dead letter per rejected input, carrying where it came from (SPEC §2.7)."""
    await send_dead_letter_from(origin_of(event), reason, detail, event.message.key)


async def send_dead_letter_from(
    origin: dict[str, Any], reason: str, detail: str, key: bytes | None = None
) -> None:
    """A dead letter from the input's recorded origin, keyed like the input.

    A later hop has only the origin's text form of the key (`key` None): the
    record key is then that text, which differs only for a key that is not UTF-8.
    """
    letter = {"reason": reason, "detail": detail, **origin}
    metrics.DEAD_LETTERS.labels(reason).inc()
    log.info(
        "dead letter %s from %s[%d]@%d",
        reason,
        origin["topic"],
        origin["partition"],
        origin["offset"],
    )
    if key is None and origin["key"] is not None:
        key = origin["key"].encode()
    await send_raw(deadletter_topic, key, orjson.dumps(letter))
    metrics.OUTPUTS.labels(deadletter_topic.get_topic_name()).inc()


async def publish(
    changes: Sequence[str],
    tenant_id: str,
    contact_id: str,
    contact: Contact | None,
    types: Sequence[str] | None = None,
) -> None:
    """Change events (JSON text, in version order), then the contact's latest snapshot.

    The changes go to the outbox, from which the change relay (stream/relay.py)
    publishes each once on the changes topic.

    `types` are the changes' types when the caller has them (else each text is
    decoded again for its metric).
    """
    if not changes:
        return
    key = contact_key(tenant_id, contact_id).encode()
    for change in changes:
        await send_raw(outbox_topic, key, change.encode())
    for change_type in types if types is not None else [_type_of(c) for c in changes]:
        metrics.child(metrics.CHANGES, change_type).inc()
    metrics.child(metrics.OUTPUTS, OUTBOX).inc(len(changes))
    if contact is not None:
        await send_raw(snapshots_topic, key, orjson.dumps(snapshot(contact)))
        metrics.child(metrics.OUTPUTS, snapshots_topic.get_topic_name()).inc()


def _type_of(change: str) -> str:
    return str(orjson.loads(change)["type"])

"""resolve_identity: the identity hops of the lock protocol (stream/domain/locking.py).

An intake visits its identifiers in lock order, each on its own partition;
at the last one it knows every owner while holding every lock, decides which
contact it belongs to (SPEC §3.2.3) and goes to that contact's partition.
The contact partition sends `unlock` back to each identifier when done.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
from faust.types import StreamT

from stream import metrics
from stream.agents import batches
from stream.agents.output import send_dead_letter_from
from stream.app import app
from stream.domain.contact import derive_contact_id
from stream.domain.identity import find_match
from stream.domain.locking import Entry, lock_order, lookup, release, unlock, visit
from stream.domain.normalize import Identifier, Kind, Normalized
from stream.tables.changelog import identity_writes
from stream.tables.contacts import contact_key
from stream.tables.identities import (
    decode_entry,
    identities,
    identity_key,
    local_entry,
    write_entry,
)
from stream.topics import contact_ops_topic, identity_ops_topic, send_raw


async def send_identity_op(key: str, message: dict[str, Any]) -> None:
    await send_raw(identity_ops_topic, key.encode(), orjson.dumps({**message, "key": key}))


# Lookups this process sent through the identity hop for identifiers whose
# partition it holds, still in flight (by identity key): while one is, a
# later engagement for the identifier takes the hop too, behind it.
_lookups_in_flight: Counter[str] = Counter()
# Marks this process's counted lookups; a lookup of another process (or of
# this one before a restart) is not counted here.
_LOOKUP_MARK = uuid.uuid4().hex[:12]
# The rebalance generation the count is of: a rebalance may move the
# partitions the counted lookups went to, and their answers with them, so
# the count starts again (around a rebalance an engagement may overtake an
# earlier one of the same identifier, as after a crash).
_lookups_generation = -1


async def send_engagement(key: str, operation: dict[str, Any]) -> None:
    """An engagement by email or phone to its contact: read here, or through the lookup hop.

    Read here when this worker holds the identifier's partition as active and
    settled (`local_entry`), the entry has an owner, no lock and nobody
    parked, and no lookup of ours for it is still in flight: the hop would
    find the same entry and send the engagement on to the same contact, so
    it goes there at once (docs/architecture.md, engagement path). Else it
    takes the hop; a lookup sent because the entry here was busy, or behind
    one that was, is counted in flight until the hop answers it, so a later
    engagement for the identifier cannot overtake it.
    """
    global _lookups_generation
    if app.consumer_generation_id != _lookups_generation:
        _lookups_in_flight.clear()
        _lookups_generation = app.consumer_generation_id
    counted = key in _lookups_in_flight
    if not counted and (entry := local_entry(key)) is not None:
        if entry.lock is None and not entry.parked and entry.owner is not None:
            metrics.LOOKUPS_LOCAL.inc()
            await send_contact_op({**operation, "target": entry.owner})
            return
        counted = True
    message = {**operation, "kind": "lookup"}
    if counted:
        _lookups_in_flight[key] += 1
        message["mark"] = _LOOKUP_MARK
    await send_identity_op(key, message)


def _lookup_answered(key: str, message: dict[str, Any]) -> None:
    if message.get("mark") == _LOOKUP_MARK and key in _lookups_in_flight:
        _lookups_in_flight[key] -= 1
        if _lookups_in_flight[key] <= 0:
            del _lookups_in_flight[key]


async def send_contact_op(operation: dict[str, Any]) -> None:
    """To the partition of the contact the operation is about."""
    if "command" in operation:
        command = operation["command"]
        key = contact_key(command["tenant_id"], command["contact_id"])
    else:
        source = operation["intake"] if "intake" in operation else operation["engagement"]
        key = contact_key(source["tenant_id"], operation["target"])
    await send_raw(contact_ops_topic, key.encode(), orjson.dumps(operation))


async def start_visit(intake: dict[str, Any]) -> None:
    """Send a routed intake to its first identifier, in lock order."""
    tenant = intake["tenant_id"]
    keys = lock_order(
        [identity_key(tenant, Kind.EMAIL.value, e) for e in intake["emails"]]
        + [identity_key(tenant, Kind.PHONE.value, p) for p in intake["phones"]]
    )
    # The operation id is the id a new contact would get: unique per input
    # record, and the same when the record is replayed (SPEC §3.2.10).
    op_id = derive_contact_id(tenant, intake["event_id"], *intake["origin"])
    message = {"kind": "visit", "op": op_id, "keys": keys, "i": 0, "owners": {}, "intake": intake}
    await send_identity_op(keys[0], message)


def target_contact(intake: dict[str, Any], owners: dict[str, str | None], op_id: str) -> str:
    """The matched contact (first owned email, else phone), or the new contact's id."""
    tenant = intake["tenant_id"]
    by_identifier = {
        Identifier(kind, value): owner
        for kind, values in ((Kind.EMAIL, intake["emails"]), (Kind.PHONE, intake["phones"]))
        for value in values
        if (owner := owners.get(identity_key(tenant, kind.value, value))) is not None
    }
    normalized = Normalized(tuple(intake["emails"]), tuple(intake["phones"]), ())
    match = find_match(normalized, by_identifier)
    return op_id if match is None else match.contact_id


@app.agent(identity_ops_topic, name="resolve-identity")
async def resolve_identity(stream: StreamT[bytes]) -> None:
    async for event in batches.events(stream, "resolve-identity"):
        try:
            await _resolve(orjson.loads(event.value))
        finally:
            # The message's identity records, before the next message's: a
            # commit's flush covers them (stream/tables/changelog.py).
            await identity_writes.send()


async def _resolve(message: dict[str, Any]) -> None:
    key = message["key"]
    entry = decode_entry(identities.get(key))
    if message["kind"] == "visit":
        result = visit(entry, message["op"], message)
        _store(key, entry, result.entry)
        if result.parked:
            metrics.child(metrics.PARKED, "identifier").inc()
        else:
            await _after_visit(message, {**message["owners"], key: result.owner})
    elif message["kind"] == "lookup":
        result = lookup(entry, message["op"], message)
        _store(key, entry, result.entry)
        if not result.parked:
            _lookup_answered(key, message)
            await _after_lookup(message, result.owner)
    elif message["kind"] == "release":
        _store(key, entry, release(entry, message["contact"]))
    else:
        freed = unlock(entry, message["op"], message["set"], message["owner"])
        # The released visits are durable before the entry says released:
        # the store writes RocksDB at once, and a worker killed in between
        # would restart "released" with the visits lost and their locks
        # held for ever (a SIGKILL test found it). Killed before the store,
        # the repeated unlock releases them again; a duplicate visit is harmless.
        for parked in freed.released:
            await send_identity_op(key, dict(parked))
        if freed.released:
            await app.producer.flush()
        _store(key, entry, freed.entry)


def _store(key: str, before: Entry, after: Entry) -> None:
    if after == before:
        return
    metrics.LOCKS_HELD.inc((after.lock is not None) - (before.lock is not None))
    metrics.LOCKS_WAITING.inc(len(after.parked) - len(before.parked))
    write_entry(key, after)


async def _after_lookup(message: dict[str, Any], owner: str | None) -> None:
    """An engagement found its contact, or nobody owns the identifier (SPEC §3.5.1)."""
    if owner is None:
        await send_dead_letter_from(
            message["origin"], "unknown_contact", "no contact holds this email or phone"
        )
        return
    operation = {k: v for k, v in message.items() if k not in ("key", "mark")}
    await send_contact_op({**operation, "kind": "engagement", "target": owner})


async def _after_visit(message: dict[str, Any], owners: dict[str, str | None]) -> None:
    keys, position = message["keys"], message["i"] + 1
    if position < len(keys):
        await send_identity_op(keys[position], {**message, "i": position, "owners": owners})
        return
    if "merge" in message:
        # Imported here: the merge hops send identity ops through this module.
        from stream.agents.merge import freeze_start, send_after

        await send_after(freeze_start(message, keys))
    elif "command" in message:
        # A command names its contact: it only needed the locks and owners.
        await send_contact_op({**message, "kind": "command", "owners": owners})
    else:
        target = target_contact(message["intake"], owners, message["op"])
        await send_contact_op({**message, "kind": "intake", "owners": owners, "target": target})

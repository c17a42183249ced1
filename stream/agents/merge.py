"""merge_contacts across partitions (SPEC §3.3.5): collect, lock, freeze, decide, finish.

A merge reads and writes several contacts (each on its own partition) and
moves the merged contacts' identifiers to the survivor. It runs as hops on
`contact-ops` and `identity-ops`, in an order that cannot deadlock with the
identifier locks of intakes and commands (stream/domain/locking.py):

1. collect: visit each merged contact and read its identifiers (no lock);
2. lock those identifiers, in lock order, like an intake does; from here no
   intake or command can hand one of them to or from a merged contact;
3. freeze every participant, survivor included, in sorted id order: the
   contact's `merge_locks` entry names the merge and parks every other
   operation on it. A merged contact that gained an identifier since step 1
   (an `update_contact` adds one without locking the contact's others)
   aborts this attempt: everything is unlocked and the merge starts again;
4. decide on the survivor's partition (stream/domain/merge.py) with the
   frozen snapshots; store and publish the survivor;
5. finish: each merged contact becomes a tombstone with its `contact.merged`,
   the identifiers are unlocked with their new owner (the survivor, or none
   beyond the limits), and every participant is unfrozen: its parked
   operations run again and, on a merged contact, follow `merged_into`.

A merge holds identifier locks before any freeze and waits for nothing once
it freezes but other merges' freezes, taken in one global order: no cycle.
Every hop is idempotent under redelivery (a visit by the lock holder goes
on; decide and finish replay their recorded effects), as for intakes.

Known gap: an aborted attempt's freeze hop redelivered after a crash, and
reaching the decision before the new attempt does, would decide without
holding its identifier locks (its op id is the old attempt's). It needs a
crash at that very moment; no test produces it yet.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from stream import metrics
from stream.agents import applied
from stream.agents.identity import send_identity_op
from stream.agents.output import publish
from stream.app import app
from stream.domain.commands import reject_unversioned
from stream.domain.contact import Cause, Change, Contact
from stream.domain.locking import lock_order, unlock, visit
from stream.domain.merge import MERGE, merge_contacts
from stream.domain.normalize import Identifier
from stream.tables.codec import decode_contact, encode_contact
from stream.tables.contacts import applied_key, contact_key, merge_locks
from stream.tables.identities import decode_entry, encode_entry, identity_key
from stream.tables.quota import QUOTA_OPS, quota_message
from stream.tables.tenant_configs import engagement_config, identity_config, tenant_configs
from stream.topics import contact_ops_topic, quota_ops_topic, send_raw

log = logging.getLogger(__name__)

KINDS = frozenset(
    {"merge-collect", "merge-freeze", "merge-decide", "merge-finish", "merge-unfreeze"}
)

Messages = list[list[Any]]


def start(merge: dict[str, Any], op_id: str) -> tuple[str, dict[str, Any]]:
    """The first hop of a routed `merge_contacts` (its contact key and message)."""
    return _collect_message(merge, op_id, attempt=0)


async def send_hop(contact_id: str, message: dict[str, Any]) -> None:
    """A merge hop to a participant's partition."""
    key = contact_key(message["merge"]["tenant_id"], contact_id)
    await send_raw(contact_ops_topic, key.encode(), orjson.dumps(message))


CONTACT_OPS = "contact-ops"


def hop(key: str, message: dict[str, Any]) -> list[Any]:
    """An entry of `after` for the contact-ops topic (the others go to identity-ops)."""
    return [key, message, CONTACT_OPS]


async def send_after(entry: list[Any]) -> None:
    """Send one entry of an operation's `after`, once the operation is durable."""
    key, message = entry[0], entry[1]
    if entry[2:] == [CONTACT_OPS]:
        await send_raw(contact_ops_topic, key.encode(), orjson.dumps(message))
    elif entry[2:] == [QUOTA_OPS]:
        await send_raw(quota_ops_topic, key.encode(), orjson.dumps(message))
    else:
        await send_identity_op(key, message)


def frozen_by_other(key: str, operation: dict[str, Any]) -> bool:
    """Park `operation` if a merge freezes its contact; true when parked."""
    entry = decode_entry(merge_locks.get(key))
    if entry.lock is None or entry.lock == operation["op"]:
        return False
    result = visit(entry, operation["op"], operation)
    merge_locks[key] = encode_entry(result.entry)
    log.debug("%s %s waits for merge %s", operation["kind"], operation["op"], entry.lock)
    metrics.PARKED.labels("contact").inc()
    return True


async def apply(operation: dict[str, Any]) -> Messages:
    """One merge hop on this partition; returns what to send once it is durable."""
    kind = operation["kind"]
    if kind == "merge-collect":
        return _collect(operation)
    if kind == "merge-freeze":
        return _freeze(operation)
    if kind == "merge-decide":
        return await _decide(operation)
    if kind == "merge-finish":
        return await _finish(operation)
    await _unfreeze(operation)
    return []


def _collect_message(merge: dict[str, Any], op_id: str, attempt: int) -> tuple[str, dict[str, Any]]:
    merged = list(dict.fromkeys(merge["merged_ids"]))
    message = {
        "kind": "merge-collect",
        "op": f"{op_id}~{attempt}" if attempt else op_id,
        "base_op": op_id,
        "attempt": attempt,
        "merge": merge,
        "i": 0,
        "identifiers": [],
    }
    return contact_key(merge["tenant_id"], merged[0]), message


def _participants(merge: dict[str, Any]) -> list[str]:
    """Survivor and merged ids, each once, in the one global freezing order."""
    return sorted({merge["survivor_id"], *merge["merged_ids"]})


_load = applied.load


def _keys_of(contact: Contact) -> list[str]:
    return [identity_key(contact.tenant_id, i.kind.value, i.value) for i in contact.identifiers]


def _collect(operation: dict[str, Any]) -> Messages:
    merge, position = operation["merge"], operation["i"]
    merged = list(dict.fromkeys(merge["merged_ids"]))
    contact = _load(merge["tenant_id"], merged[position])
    found = list(operation["identifiers"])
    if contact is not None and contact.holds_identifiers:
        found.extend(_keys_of(contact))
    if position + 1 < len(merged):
        nxt = {**operation, "i": position + 1, "identifiers": found}
        return [hop(contact_key(merge["tenant_id"], merged[position + 1]), nxt)]
    keys = list(lock_order(found))
    if keys:
        visit_message = {**operation, "kind": "visit", "keys": keys, "i": 0, "owners": {}}
        del visit_message["identifiers"]
        return [[keys[0], visit_message]]
    return [freeze_start(operation, keys)]


def freeze_start(operation: dict[str, Any], keys: list[str]) -> list[Any]:
    """The first freeze hop, once the merged contacts' identifiers are locked."""
    merge = operation["merge"]
    order = _participants(merge)
    message = {
        "kind": "merge-freeze",
        "op": operation["op"],
        "base_op": operation["base_op"],
        "attempt": operation["attempt"],
        "merge": merge,
        "keys": keys,
        "order": order,
        "i": 0,
        "snapshots": {},
    }
    return hop(contact_key(merge["tenant_id"], order[0]), message)


def _freeze(operation: dict[str, Any]) -> Messages:
    merge, order, position = operation["merge"], operation["order"], operation["i"]
    tenant, contact_id = merge["tenant_id"], order[position]
    key = contact_key(tenant, contact_id)
    before = decode_entry(merge_locks.get(key))
    result = visit(before, operation["op"], operation)
    if result.entry != before:
        merge_locks[key] = encode_entry(result.entry)
    if result.parked:
        return []  # another merge holds it; its unfreeze sends this hop again
    contact = _load(tenant, contact_id)
    if (
        contact_id != merge["survivor_id"]
        and contact is not None
        and contact.holds_identifiers
        and not set(_keys_of(contact)) <= set(operation["keys"])
    ):
        return _abort(operation, position)
    snapshots = dict(operation["snapshots"])
    if contact_id != merge["survivor_id"]:
        snapshots[contact_id] = None if contact is None else encode_contact(contact).decode()
    if position + 1 < len(order):
        nxt = {**operation, "i": position + 1, "snapshots": snapshots}
        return [hop(contact_key(tenant, order[position + 1]), nxt)]
    decide = {**operation, "kind": "merge-decide", "snapshots": snapshots}
    return [hop(contact_key(tenant, merge["survivor_id"]), decide)]


def _abort(operation: dict[str, Any], position: int) -> Messages:
    """A merged contact's identifiers changed since they were collected: start again."""
    merge = operation["merge"]
    log.info(
        "merge %s: identifiers changed while locking, attempt %d",
        operation["base_op"],
        operation["attempt"] + 1,
    )
    out = _unfreezes(operation, operation["order"][: position + 1])
    out += _unlocks(operation, {}, ())
    out.append(hop(*_collect_message(merge, operation["base_op"], operation["attempt"] + 1)))
    return out


def _unfreezes(operation: dict[str, Any], contact_ids: list[str]) -> Messages:
    tenant = operation["merge"]["tenant_id"]
    return [
        hop(
            contact_key(tenant, cid),
            {
                "kind": "merge-unfreeze",
                "op": operation["op"],
                "merge": operation["merge"],
                "contact": cid,
            },
        )
        for cid in contact_ids
    ]


def _unlocks(
    operation: dict[str, Any], claimed: dict[str, str], released: tuple[Identifier, ...]
) -> Messages:
    """One unlock per locked identifier; `claimed` maps keys to their new owner."""
    tenant = operation["merge"]["tenant_id"]
    released_keys = {identity_key(tenant, i.kind.value, i.value) for i in released}
    out: Messages = []
    for key in operation["keys"]:
        message: dict[str, Any] = {
            "kind": "unlock",
            "op": operation["op"],
            "set": False,
            "owner": None,
        }
        if key in claimed:
            message.update(set=True, owner=claimed[key])
        elif key in released_keys:
            message["set"] = True
        out.append([key, message])
    return out


def _let_go(operation: dict[str, Any]) -> Messages:
    """A merge that changes nothing: every participant unfrozen, every identifier unlocked."""
    return _unfreezes(operation, operation["order"]) + _unlocks(operation, {}, ())


async def _decide(operation: dict[str, Any]) -> Messages:
    merge = operation["merge"]
    tenant, survivor_id = merge["tenant_id"], merge["survivor_id"]
    seen_key = applied_key(tenant, f"{merge['event_id']}|{survivor_id}")
    seen = applied.seen(seen_key)
    if seen is not None:
        if seen["op"] == operation["op"]:
            restored = applied.restore(tenant, seen)
            await _publish_all(seen["changes"], tenant, {survivor_id: restored})
            return list(seen["after"])
        # The same event_id from another record: no effect, only let go.
        return _let_go(operation)
    cause = Cause("command", merge["event_id"], merge["clamped"])
    survivor = _load(tenant, survivor_id)
    # The survivor among the merged ids reads as itself: the domain rejects it.
    loaded = {
        **{
            cid: None if raw is None else decode_contact(raw.encode())
            for cid, raw in operation["snapshots"].items()
        },
        survivor_id: survivor,
    }
    unknown = [cid for cid in _participants(merge) if loaded.get(cid) is None]
    after: Messages
    if survivor is None or unknown:
        changes: list[Change] = [
            reject_unversioned(tenant, cid, MERGE, "unknown_contact", merge["at"], cause)
            for cid in unknown
        ]
        after = _let_go(operation)
        stored = survivor
    else:
        merged = [m for cid in merge["merged_ids"] if (m := loaded[cid]) is not None]
        tenant_config = tenant_configs.get(tenant)
        decision = merge_contacts(
            survivor,
            merged,
            identity_config(tenant_config),
            merge["at"],
            cause,
            engagement_config(tenant_config),
        )
        changes = list(decision.changes)
        stored = decision.survivor
        if decision.rejected:
            after = _let_go(operation)
        else:
            claimed = {
                identity_key(tenant, i.kind.value, i.value): survivor_id for i in decision.claimed
            }
            after = [
                hop(
                    contact_key(tenant, m.contact_id),
                    _finish_message(operation, m, decision.changes_of(m.contact_id)),
                )
                for m in decision.merged
            ]
            after += _unlocks(operation, claimed, decision.released)
            # Slots move before the survivor takes other operations again.
            after += [quota_message(tenant, cid, op) for cid, op in decision.quota]
            after += _unfreezes(operation, [survivor_id])
    encoded = [
        orjson.dumps(c.as_json()).decode()
        for c in changes
        if c.contact_id == survivor_id or c.version == 0
    ]
    applied.record(seen_key, merge["at"], operation, stored, survivor_id, encoded, after)
    await _publish_all(encoded, tenant, {survivor_id: stored})
    return after


def _finish_message(
    operation: dict[str, Any], merged: Contact, changes: tuple[Change, ...]
) -> dict[str, Any]:
    return {
        "kind": "merge-finish",
        "op": operation["op"],
        "merge": operation["merge"],
        "contact": merged.contact_id,
        "tombstone": encode_contact(merged).decode(),
        "changes": [orjson.dumps(c.as_json()).decode() for c in changes],
    }


async def _finish(operation: dict[str, Any]) -> Messages:
    """The merged contact becomes a tombstone naming its survivor; then it is unfrozen."""
    merge, contact_id = operation["merge"], operation["contact"]
    tenant = merge["tenant_id"]
    seen_key = applied_key(tenant, f"{merge['event_id']}|{contact_id}")
    tombstone = decode_contact(operation["tombstone"].encode())
    seen = applied.seen(seen_key)
    if seen is None:
        changes = operation["changes"]
        applied.record(seen_key, merge["at"], operation, tombstone, contact_id, changes, [])
    else:
        applied.restore(tenant, seen)
    await publish(operation["changes"], tenant, contact_id, tombstone)
    return _unfreezes(operation, [contact_id])


async def _unfreeze(operation: dict[str, Any]) -> None:
    """Let the contact go; the operations parked on it are sent again, in order.

    They are durable before the entry says unfrozen, as for identity unlocks
    (stream/agents/identity.py): stored first, a kill in between would lose them.
    """
    key = contact_key(operation["merge"]["tenant_id"], operation["contact"])
    before = decode_entry(merge_locks.get(key))
    freed = unlock(before, operation["op"], False, None)
    for parked in freed.released:
        await send_raw(contact_ops_topic, key.encode(), orjson.dumps(parked))
    if freed.released:
        await app.producer.flush()
    if freed.entry != before:
        if freed.entry.is_empty:
            del merge_locks[key]
        else:
            merge_locks[key] = encode_entry(freed.entry)


async def _publish_all(encoded: list[str], tenant: str, stored: dict[str, Contact | None]) -> None:
    """Change events grouped by their contact, each with its snapshot when stored here."""
    by_contact: dict[str, list[str]] = {}
    for text in encoded:
        by_contact.setdefault(orjson.loads(text)["contact_id"], []).append(text)
    for contact_id, texts in by_contact.items():
        await publish(texts, tenant, contact_id, stored.get(contact_id))

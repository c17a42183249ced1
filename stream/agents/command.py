"""route_commands: validate commands and send each to its contact's partition.

A command naming several contacts fans out, one operation per contact id
(repeats count once). `update_contact` adding or removing identifiers first
takes their locks, like an intake (stream/domain/locking.py), so the owners
it sees cannot change under it. `set_marketing` and the list commands fan
out the same way (up to 10,000 ids, SPEC §2.4): an unknown id yields its own
`command.rejected` on the contact partition, the others apply.
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT

from stream import metrics
from stream.agents import merge
from stream.agents.identity import send_contact_op, send_identity_op, start_visit
from stream.agents.intake import routed_intake
from stream.agents.output import send_dead_letter
from stream.app import app
from stream.domain.contact import derive_contact_id
from stream.domain.locking import lock_order
from stream.domain.normalize import Kind, normalize_identifiers
from stream.domain.timefmt import logical_time, to_ms
from stream.models import (
    AddToList,
    Command,
    CreateContact,
    InputRejected,
    MergeContacts,
    RemoveFromList,
    SetMarketing,
    UpdateContact,
    decode_input,
)
from stream.tables.identities import identity_key
from stream.tables.tenant_configs import tenant_configs
from stream.topics import commands_topic


def update_args(command: UpdateContact, region: str, blocked: list[str]) -> dict[str, Any]:
    """The update's arguments with its identifiers normalized (SPEC §3.1)."""
    adds = normalize_identifiers(command.add_emails, command.add_phones, region, blocked)
    removes = normalize_identifiers(command.remove_emails, command.remove_phones, region, blocked)
    primaries = normalize_identifiers(
        [command.primary_email] if command.primary_email else [],
        [command.primary_phone] if command.primary_phone else [],
        region,
        blocked,
    )
    return {
        "fields": command.fields,
        "tags_add": command.tags_add,
        "tags_remove": command.tags_remove,
        "add_emails": adds.emails,
        "add_phones": adds.phones,
        "rejected": [r.as_row() for r in adds.rejected],
        "remove_emails": removes.emails,
        "remove_phones": removes.phones,
        "primary_email": primaries.emails[0] if primaries.emails else None,
        "primary_phone": primaries.phones[0] if primaries.phones else None,
        "sets_owner": command.sets_owner,
        "owner": command.owner,
    }


def command_args(command: Command) -> dict[str, Any]:
    """What a fanned-out command carries besides its contact id."""
    if isinstance(command, SetMarketing):
        return {"marketing": command.marketing, "via": command.via}
    if isinstance(command, AddToList | RemoveFromList):
        return {"list_id": command.list_id}
    return {}


def operations(
    command: Command, topic: str, partition: int, offset: int, broker_ms: int
) -> list[dict[str, Any]]:
    """One operation per named contact, with the keys it must lock."""
    occurred = None if command.occurred_at is None else to_ms(command.occurred_at)
    at, clamped = logical_time(occurred, broker_ms)
    base = {
        "tenant_id": command.tenant_id,
        "event_id": command.event_id,
        "type": command.type,
        "at": at,
        "clamped": clamped,
    }
    config = tenant_configs.get(command.tenant_id)
    if isinstance(command, UpdateContact):
        targets = [
            (command.contact_id, update_args(command, config.default_region, config.blocked_values))
        ]
    else:
        args = command_args(command)
        targets = [(cid, args) for cid in dict.fromkeys(command.contact_ids)]  # type: ignore[union-attr]
    ops = []
    for contact_id, args in targets:
        keys = lock_order(
            [
                identity_key(command.tenant_id, Kind.EMAIL.value, e)
                for e in args.get("add_emails", ())
            ]
            + [
                identity_key(command.tenant_id, Kind.PHONE.value, p)
                for p in args.get("add_phones", ())
            ]
            + [
                identity_key(command.tenant_id, Kind.EMAIL.value, e)
                for e in args.get("remove_emails", ())
            ]
            + [
                identity_key(command.tenant_id, Kind.PHONE.value, p)
                for p in args.get("remove_phones", ())
            ]
        )
        # Unique per input record and contact, the same when the record is replayed.
        op_id = derive_contact_id(
            command.tenant_id, f"{command.event_id}|{contact_id}", topic, partition, offset
        )
        ops.append(
            {
                "op": op_id,
                "keys": keys,
                "owners": {},
                "command": {**base, "contact_id": contact_id, "args": args},
            }
        )
    return ops


def merge_start(
    command: MergeContacts, topic: str, partition: int, offset: int, broker_ms: int
) -> tuple[str, dict[str, Any]]:
    """The first hop of a merge (stream/agents/merge.py)."""
    occurred = None if command.occurred_at is None else to_ms(command.occurred_at)
    at, clamped = logical_time(occurred, broker_ms)
    payload = {
        "tenant_id": command.tenant_id,
        "event_id": command.event_id,
        "survivor_id": command.survivor_id,
        "merged_ids": list(command.merged_ids),
        "at": at,
        "clamped": clamped,
    }
    op_id = derive_contact_id(
        command.tenant_id, f"{command.event_id}|merge", topic, partition, offset
    )
    return merge.start(payload, op_id)


@app.agent(commands_topic, name="route-commands")
async def route_commands(stream: StreamT[bytes]) -> None:
    await tenant_configs.ready()
    async for event in stream.events():
        message = event.message
        metrics.child(metrics.INPUTS, message.topic).inc()
        try:
            command = decode_input("command", message.value)
        except InputRejected as rejected:
            await send_dead_letter(event, rejected.reason, rejected.detail)
            continue
        broker_ms = int(message.timestamp * 1000)
        if isinstance(command, CreateContact):
            payload = routed_intake(
                command, message.topic, message.partition, message.offset, broker_ms
            )
            if payload is None:
                await send_dead_letter(event, "no_valid_identifier", "no valid email or phone")
            else:
                await start_visit(payload)
            continue
        if isinstance(command, MergeContacts):
            key, hop = merge_start(
                command, message.topic, message.partition, message.offset, broker_ms
            )
            await merge.send_after(merge.hop(key, hop))
            continue
        for operation in operations(
            command, message.topic, message.partition, message.offset, broker_ms
        ):
            if operation["keys"]:
                await send_identity_op(operation["keys"][0], {**operation, "kind": "visit", "i": 0})
            else:
                await send_contact_op({**operation, "kind": "command"})

"""apply_contact_ops: apply intakes and commands on their contact's partition, then unlock.

An operation arrives holding the locks of the identifiers it reads, with the
owner each had when locked (stream/agents/identity.py). Here the contact is
loaded, the rules decide (stream/domain/identity.py, commands.py), the
tables are written, the change events published, and only after the
producer has flushed all of that are the unlocks sent: no identifier names a
contact whose state is not yet durable. The actor does not wait for that
flush: it hands the unlocks (and the other follow-ups) to `follow_ups`,
which sends them behind one flush shared by every operation handed over
meanwhile (stream/agents/follow_ups.py).

An intake whose matched contact turns out purged (its identifiers released
while the intake held their locks) goes on as if they were unowned: it is
re-routed, still holding its locks, to the contact it now resolves to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from faust.types import StreamT

from stream import metrics
from stream.agents import applied, batches, merge, quota
from stream.agents.follow_ups import FollowUps
from stream.agents.identity import send_contact_op, target_contact
from stream.agents.output import publish, send_dead_letter_from
from stream.agents.timers import due_index, due_time
from stream.app import app
from stream.domain.activation import MarketingRules
from stream.domain.commands import (
    AddToList,
    Command,
    DeleteContact,
    PurgeContact,
    RemoveFromList,
    RestoreContact,
    SetMarketing,
    SuspendContact,
    UnsuspendContact,
    UpdateContact,
    apply_command,
    fire_timers,
)
from stream.domain.contact import MERGED, PURGED, Cause, Change, Contact
from stream.domain.engage import EngagementInput, apply_engagement
from stream.domain.engagement import EngagementConfig
from stream.domain.identity import IdentityConfig, Intake, Origin, apply_intake
from stream.domain.marketing import QuotaOp
from stream.domain.normalize import Identifier, Kind, Normalized, RejectedIdentifier
from stream.tables.changelog import contact_writes
from stream.tables.contacts import applied_key, contact_key
from stream.tables.identities import identity_key
from stream.tables.quota import grant_from, quota_message
from stream.tables.tenant_configs import (
    dedup_ms,
    engagement_config,
    identity_config,
    marketing_config,
    tenant_configs,
)
from stream.topics import contact_ops_topic

log = logging.getLogger(__name__)


def intake_from_payload(p: dict[str, Any]) -> Intake:
    return Intake(
        tenant_id=p["tenant_id"],
        event_id=p["event_id"],
        source=p["source"],
        identifiers=Normalized(
            emails=tuple(p["emails"]),
            phones=tuple(p["phones"]),
            rejected=tuple(RejectedIdentifier.from_row(row) for row in p["rejected"]),
        ),
        at=p["at"],
        clamped=p["clamped"],
        origin=Origin(*p["origin"]),
        fields=p["fields"],
        tags=tuple(p["tags"]),
        owner=p["owner"],
        on_match=p["on_match"],
        marketing=p["marketing"],
        cause_kind=p.get("cause_kind", "intake"),
    )


def owners_by_identifier(owners: dict[str, str | None]) -> dict[Identifier, str]:
    """Identity keys (`tenant|kind|value`) back to domain identifiers, owned ones only."""
    out: dict[Identifier, str] = {}
    for key, owner in owners.items():
        if owner is not None:
            _, kind, value = key.split("|", 2)
            out[Identifier(Kind(kind), value)] = owner
    return out


def unlock_messages(
    operation: dict[str, Any],
    tenant: str,
    contact_id: str,
    claimed: tuple[Identifier, ...],
    released: tuple[Identifier, ...] = (),
) -> list[list[Any]]:
    """One unlock per locked key, setting the owner of claimed and released ones."""
    claimed_keys = {identity_key(tenant, i.kind.value, i.value) for i in claimed}
    released_keys = {identity_key(tenant, i.kind.value, i.value) for i in released}
    out = []
    for key in operation["keys"]:
        message: dict[str, Any] = {"kind": "unlock", "op": operation["op"], "set": False}
        if key in claimed_keys:
            message.update(set=True, owner=contact_id)
        elif key in released_keys:
            message.update(set=True, owner=None)
        else:
            message["owner"] = None
        out.append([key, message])
    # Identifiers given up without a lock of this operation (a purge).
    for key in sorted(released_keys - set(operation["keys"])):
        out.append([key, {"kind": "release", "op": operation["op"], "contact": contact_id}])
    return out


def _config(tenant: str) -> IdentityConfig:
    return identity_config(tenant_configs.get(tenant))


def _rules(tenant: str, operation: dict[str, Any]) -> MarketingRules:
    """The tenant's marketing rules, with the quota's grant once the operation has one."""
    config = tenant_configs.get(tenant)
    grant = operation.get("grant")
    return MarketingRules(
        marketing_config(config),
        engagement_config(config),
        None if grant is None else grant_from(grant),
    )


def _quota_after(tenant: str, contact_id: str, ops: tuple[QuotaOp, ...]) -> list[list[Any]]:
    return [quota_message(tenant, contact_id, op) for op in ops]


class NeedsGrant(NamedTuple):
    """The operation activates a contact that needs a new slot: ask the quota first."""

    contact_id: str


async def _flush() -> None:
    await app.producer.flush()
    metrics.FOLLOW_UP_FLUSHES.inc()


async def _stop_worker(exc: BaseException) -> None:
    await app._on_agent_error(apply_contact_ops, exc)


# The operations' follow-ups, sent behind shared flushes (stream/agents/follow_ups.py).
follow_ups = FollowUps(_flush, merge.send_after, _stop_worker)
app.before_commit(follow_ups.drain)
metrics.FOLLOW_UPS_WAITING.set_function(lambda: follow_ups.backlog)
# Follow-ups waiting beyond this many: the actor waits for them to go out.
FOLLOW_UPS_LIMIT = 2000


@app.agent(contact_ops_topic, name="apply-contact-ops")
async def apply_contact_ops(stream: StreamT[bytes]) -> None:
    await tenant_configs.ready()
    async for event in batches.events(stream, "apply-contact-ops"):
        operation = orjson.loads(event.value)
        started = time.perf_counter()
        # The record's offset: a slot request id that grows with each of the
        # contact's operations (one partition) and repeats on a replay.
        offset = event.message.offset
        merging = operation["kind"] in merge.KINDS
        if merging:
            await follow_ups.drain()  # a merge hop sends on its own: after what came before
        # Everything _apply did (tables, changes, snapshot) is flushed before
        # its follow-ups go out: no identifier is released to the next
        # operation before the contact's state is durable.
        try:
            after = await _apply(operation, offset)
        finally:
            # The operation's table records, before its follow-ups: the pump's
            # flush must cover them (stream/tables/changelog.py).
            await contact_writes.send()
        follow_ups.put(after)
        if merging or follow_ups.backlog > FOLLOW_UPS_LIMIT:
            await follow_ups.drain()
        metrics.child(metrics.OPERATION_SECONDS, operation["kind"]).observe(
            time.perf_counter() - started
        )


async def _apply(operation: dict[str, Any], offset: int) -> list[list[Any]]:
    """Apply one operation; returns the messages to send once it is durable."""
    if operation["kind"] in merge.KINDS:
        return await merge.apply(operation)
    if merge.frozen_by_other(_target_key(operation), operation):
        return []  # a merge holds the contact: sent again when it lets go
    kind = operation["kind"]
    source = operation[kind]
    tenant = source["tenant_id"]
    if kind == "tick":
        # A tick's op names the contact and the due time: the same tick again
        # is a replay, and a later one for the same due time finds nothing due.
        seen_key, at = applied_key(tenant, operation["op"]), source["due"]
    elif kind in ("intake", "engagement"):
        seen_key, at = applied_key(tenant, source["event_id"]), source["at"]
    else:
        seen_key = applied_key(tenant, f"{source['event_id']}|{source['contact_id']}")
        at = source["at"]
    replay = await _replay(operation, tenant, seen_key, at)
    if replay is not None:
        return replay
    if kind == "engagement":
        return await _apply_engagement(operation, tenant, seen_key)
    if kind == "tick":
        outcome: Outcome | NeedsGrant | None = _decide_tick(operation)
    else:
        outcome = _decide_intake(operation) if kind == "intake" else _decide_command(operation)
    if outcome is None:
        await _reroute(operation)
        return []
    if isinstance(outcome, NeedsGrant):
        # Nothing applied: the quota sends the operation back with its grant,
        # after the slots released before it.
        await follow_ups.drain()
        await quota.request_slot(operation, tenant, outcome.contact_id, offset)
        return []
    contact_id, contact, changes, after = outcome
    if kind == "tick" and not changes:
        # Nothing due (restored, or a stale entry): only the index moves on.
        if contact is not None:
            due_index.schedule(contact_key(tenant, contact_id), due_time(contact))
        return after
    encoded = [orjson.dumps(change.as_json()).decode() for change in changes]
    applied.record(seen_key, at, operation, contact, contact_id, encoded, after)
    await publish(encoded, tenant, contact_id, contact, [change.type for change in changes])
    return after


def _target_key(operation: dict[str, Any]) -> str:
    """The key of the contact an operation applies to."""
    if operation["kind"] == "tick":
        tick = operation["tick"]
        return contact_key(tick["tenant_id"], tick["contact_id"])
    if operation["kind"] in ("intake", "engagement"):
        source = operation[operation["kind"]]
        return contact_key(source["tenant_id"], operation["target"])
    command = operation["command"]
    return contact_key(command["tenant_id"], command["contact_id"])


def _decide_tick(operation: dict[str, Any]) -> Outcome | None:
    """Fire what is due on a contact, with `at` = the due time (SPEC §3.7)."""
    tick = operation["tick"]
    tenant, contact_id = tick["tenant_id"], tick["contact_id"]
    contact = _load(tenant, contact_id)
    if contact is None:
        return contact_id, None, (), []
    decision = fire_timers(contact, tick["due"], _engagement_config(tenant))
    after = unlock_messages(operation, tenant, contact_id, (), decision.released)
    after += _quota_after(tenant, contact_id, decision.quota)
    return contact_id, decision.contact, decision.changes, after


async def _apply_engagement(
    operation: dict[str, Any], tenant: str, seen_key: str
) -> list[list[Any]]:
    """Score an engagement event on its contact (SPEC §3.5, §3.6), or dead-letter it."""
    payload, target = operation["engagement"], operation["target"]
    contact = _load(tenant, target)
    if contact is not None and contact.state == MERGED:
        await follow_ups.drain()
        await send_contact_op({**operation, "target": contact.merged_into})
        return []
    config = tenant_configs.get(tenant)
    rules = engagement_config(config)
    changes: tuple[Change, ...] = ()
    released: tuple[Identifier, ...] = ()
    slots: tuple[QuotaOp, ...] = ()
    if contact is not None and contact.state != PURGED:
        # SPEC §3.7: what is due at or before the event fires first; a purge among it
        # leaves the event without a contact.
        fired = fire_timers(contact, payload["at"], rules)
        contact, changes, released = fired.contact, fired.changes, fired.released
        slots = fired.quota
    if contact is None or contact.state == PURGED:
        await send_dead_letter_from(
            operation["origin"], "unknown_contact", "no contact has this id, or it was purged"
        )
    else:
        decision = apply_engagement(
            contact,
            EngagementInput(payload["type"], payload["occurred_at"], payload["machine_open"]),
            rules,
            payload["at"],
            Cause("engagement", payload["event_id"], payload["clamped"]),
            config.emit_score_updates,
        )
        contact, changes = decision.contact, changes + decision.changes
    after = unlock_messages(operation, tenant, target, (), released)
    after += _quota_after(tenant, target, slots)
    if contact is not None:
        encoded = [orjson.dumps(change.as_json()).decode() for change in changes]
        applied.record(seen_key, payload["at"], operation, contact, target, encoded, after)
        await publish(encoded, tenant, target, contact, [change.type for change in changes])
    return after


def _engagement_config(tenant: str) -> EngagementConfig:
    return engagement_config(tenant_configs.get(tenant))


async def _replay(
    operation: dict[str, Any], tenant: str, seen_key: str, at: int
) -> list[list[Any]] | None:
    """None for a new event; else what a repeated one does (SPEC §2.1 dedup)."""
    seen = applied.seen(seen_key)
    if seen is None:
        return None
    if at - seen["at"] >= dedup_ms(tenant_configs.get(tenant)):
        return None
    if seen["op"] != operation["op"]:
        # The same event_id from another record (a producer's retry): no effect.
        return [
            [key, {"kind": "unlock", "op": operation["op"], "set": False, "owner": None}]
            for key in operation["keys"]
        ]
    # This very record again (a crash before its offset was committed): its
    # effects are sent again with the same ids; nothing is applied twice.
    contact = applied.restore(tenant, seen)
    await publish(seen["changes"], tenant, seen["contact"], contact)
    return list(seen["after"])


async def _reroute(operation: dict[str, Any]) -> None:
    """To where a contact that left went: a merged one's survivor, or none for a purged one."""
    await follow_ups.drain()
    if "command" in operation:
        command = operation["command"]
        merged = _load(command["tenant_id"], command["contact_id"])
        if merged is None or merged.merged_into is None:
            raise RuntimeError("only a command to a merged contact is sent on")
        await send_contact_op(
            {**operation, "command": {**command, "contact_id": merged.merged_into}}
        )
        return
    gone = operation["target"]
    matched = _load(operation["intake"]["tenant_id"], gone)
    heir = None if matched is None else matched.merged_into
    owners = {k: (heir if o == gone else o) for k, o in operation["owners"].items()}
    target = target_contact(operation["intake"], owners, operation["op"])
    await send_contact_op({**operation, "owners": owners, "target": target})


Outcome = tuple[str, Contact | None, tuple[Change, ...], list[list[Any]]]


_load = applied.load


def _decide_intake(operation: dict[str, Any]) -> Outcome | NeedsGrant | None:
    intake = intake_from_payload(operation["intake"])
    tenant, op_id, target = intake.tenant_id, operation["op"], operation["target"]
    owners = owners_by_identifier(operation["owners"])
    matched = None if target == op_id else _load(tenant, target)
    if target != op_id and (matched is None or not matched.holds_identifiers):
        return None
    fired: tuple[Change, ...] = ()
    slots: tuple[QuotaOp, ...] = ()
    if matched is not None:
        # SPEC §3.7: the matched contact's transitions due at or before the
        # intake fire first. (A purge due by then is left to its tick: firing
        # it here would have to release identifiers this intake holds and
        # re-route it; ticks come within ~0.5 s of the due time.)
        due = fire_timers(matched, intake.at, _engagement_config(tenant), purge=False)
        matched, fired, slots = due.contact, due.changes, due.quota
    decision = apply_intake(intake, owners, matched, _config(tenant), _rules(tenant, operation))
    contact = decision.contact
    if decision.needs_grant:
        return NeedsGrant(contact.contact_id)
    after = unlock_messages(
        operation, tenant, contact.contact_id, decision.claimed, decision.released
    )
    after += _quota_after(tenant, contact.contact_id, slots + decision.quota)
    return contact.contact_id, contact, fired + decision.changes, after


# Commands that follow a merged id to its survivor; the others are rejected
# `merged` on it (SPEC §3.3.5).
FOLLOW_MERGE = frozenset(
    {
        "update_contact",
        "suspend_contact",
        "unsuspend_contact",
        "set_marketing",
        "add_to_list",
        "remove_from_list",
    }
)


def _decide_command(operation: dict[str, Any]) -> Outcome | NeedsGrant | None:
    payload = operation["command"]
    tenant, contact_id = payload["tenant_id"], payload["contact_id"]
    cause = Cause("command", payload["event_id"], payload["clamped"])
    contact = _load(tenant, contact_id)
    if contact is not None and contact.state == MERGED and payload["type"] in FOLLOW_MERGE:
        return None
    # SPEC §3.7: what is due at or before the command's time fires first.
    fired = (
        None if contact is None else fire_timers(contact, payload["at"], _engagement_config(tenant))
    )
    if fired is not None:
        contact = fired.contact
    decision = apply_command(
        contact,
        domain_command(payload),
        _config(tenant),
        payload["at"],
        cause,
        owners_by_identifier(operation["owners"]),
        _rules(tenant, operation),
    )
    if decision.needs_grant:
        return NeedsGrant(contact_id)
    changes = (fired.changes if fired else ()) + decision.changes
    released = (fired.released if fired else ()) + decision.released
    after = unlock_messages(operation, tenant, contact_id, decision.claimed, released)
    after += _quota_after(tenant, contact_id, (fired.quota if fired else ()) + decision.quota)
    return contact_id, decision.contact, changes, after


def domain_command(payload: dict[str, Any]) -> Command:
    """The routed command as the domain's dataclass."""
    tenant, contact_id, args = payload["tenant_id"], payload["contact_id"], payload["args"]
    if payload["type"] == "set_marketing":
        return SetMarketing(tenant, contact_id, args["marketing"], args["via"])
    if payload["type"] in LIST_COMMANDS:
        return LIST_COMMANDS[payload["type"]](tenant, contact_id, args["list_id"])
    if payload["type"] != "update_contact":
        return SIMPLE_COMMANDS[payload["type"]](tenant_id=tenant, contact_id=contact_id)
    return UpdateContact(
        tenant_id=tenant,
        contact_id=contact_id,
        fields=args["fields"],
        tags_add=tuple(args["tags_add"]),
        tags_remove=tuple(args["tags_remove"]),
        add_emails=tuple(args["add_emails"]),
        add_phones=tuple(args["add_phones"]),
        rejected=tuple(RejectedIdentifier.from_row(row) for row in args["rejected"]),
        remove_emails=tuple(args["remove_emails"]),
        remove_phones=tuple(args["remove_phones"]),
        primary_email=args["primary_email"],
        primary_phone=args["primary_phone"],
        sets_owner=args["sets_owner"],
        owner=args["owner"],
    )


SIMPLE_COMMANDS: dict[str, Callable[..., Command]] = {
    "delete_contact": DeleteContact,
    "restore_contact": RestoreContact,
    "purge_contact": PurgeContact,
    "suspend_contact": SuspendContact,
    "unsuspend_contact": UnsuspendContact,
}
LIST_COMMANDS: dict[str, Callable[..., Command]] = {
    "add_to_list": AddToList,
    "remove_from_list": RemoveFromList,
}

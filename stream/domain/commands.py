"""Commands on one contact (SPEC §2.4, §3.3): profile edit, trash, restore, purge, suspension.

The shell fans a command's `contact_ids` out to one domain command per
distinct id, resolves a merged id to its survivor for `update_contact`,
`suspend_contact` and `unsuspend_contact` (§3.3.5), loads the contact (None
when unknown) and, for `update_contact`, the owner of each identifier it adds;
`apply_command` decides. `merge_contacts` lives in `stream.domain.merge`, and
the purge timer fires through `fire_purge`.

Commands here are built from plain values, not from the wire models: the
shell normalizes identifiers first (SPEC §3.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from stream.domain import activation, engage
from stream.domain import marketing as mkt
from stream.domain.activation import MarketingRules
from stream.domain.contact import (
    MERGED,
    PURGED,
    TRASHED,
    Cause,
    Change,
    ChangeLog,
    Contact,
    Scalar,
    TimedValue,
    owner_value,
    same_value,
    tombstone,
    unversioned_change,
)
from stream.domain.engagement import EngagementConfig, refresh_tier
from stream.domain.frozen import replace
from stream.domain.identity import (
    IdentityConfig,
    add_identifiers,
    rejected_drops,
    restored,
)
from stream.domain.normalize import Identifier, Kind, RejectedIdentifier
from stream.domain.tiers import TierChange
from stream.domain.timefmt import MS_PER_DAY, format_ms, format_optional_ms

TIMER = Cause("timer", None)


@dataclass(frozen=True, slots=True)
class UpdateContact:
    """`update_contact`: a profile edit (SPEC §2.4, §3.2.5).

    Identifiers are normalized; the ones normalization left out of the adds go
    in `rejected`. `owner` applies only when `sets_owner` (the wire named it),
    and then None clears it, as a None in `fields` clears that field.
    """

    type: ClassVar[str] = "update_contact"
    tenant_id: str
    contact_id: str
    fields: Mapping[str, Scalar] | None = None
    tags_add: tuple[str, ...] = ()
    tags_remove: tuple[str, ...] = ()
    add_emails: tuple[str, ...] = ()
    add_phones: tuple[str, ...] = ()
    rejected: tuple[RejectedIdentifier, ...] = ()
    remove_emails: tuple[str, ...] = ()
    remove_phones: tuple[str, ...] = ()
    primary_email: str | None = None
    primary_phone: str | None = None
    sets_owner: bool = False
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteContact:
    """Move to trash (SPEC §3.3.1)."""

    type: ClassVar[str] = "delete_contact"
    tenant_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class RestoreContact:
    """Back from trash (SPEC §3.3.2)."""

    type: ClassVar[str] = "restore_contact"
    tenant_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class PurgeContact:
    """Empty the trash now, or at the end of the contact's marketing hold (SPEC §3.3.1)."""

    type: ClassVar[str] = "purge_contact"
    tenant_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class SuspendContact:
    """Exclude from sends until unsuspended (SPEC §3.3.6)."""

    type: ClassVar[str] = "suspend_contact"
    tenant_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class UnsuspendContact:
    """Manual reactivation (SPEC §3.3.6): not an interaction."""

    type: ClassVar[str] = "unsuspend_contact"
    tenant_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class SetMarketing:
    """Switch marketing by hand (SPEC §3.4.3); one contact of a bulk selection."""

    type: ClassVar[str] = "set_marketing"
    tenant_id: str
    contact_id: str
    marketing: bool = True
    via: str = "profile"


@dataclass(frozen=True, slots=True)
class AddToList:
    """Add to a static list: marketing contacts only (SPEC §3.4.8)."""

    type: ClassVar[str] = "add_to_list"
    tenant_id: str
    contact_id: str
    list_id: str = ""


@dataclass(frozen=True, slots=True)
class RemoveFromList:
    """Take out of a static list."""

    type: ClassVar[str] = "remove_from_list"
    tenant_id: str
    contact_id: str
    list_id: str = ""


Command = (
    UpdateContact
    | DeleteContact
    | RestoreContact
    | PurgeContact
    | SuspendContact
    | UnsuspendContact
    | SetMarketing
    | AddToList
    | RemoveFromList
)
# On a trashed contact only these commands apply (SPEC §3.3.2), and these are
# the ones a merged id is rejected for (§3.3.5); the shell resolves a merged
# id to its survivor for the others, so a merged contact reaching
# `apply_command` is rejected (`merged`, version 0) whatever the command.
_TRASH_COMMANDS = (DeleteContact, RestoreContact, PurgeContact)


@dataclass(frozen=True, slots=True)
class CommandDecision:
    """A command's effect on one contact.

    `contact` is None when there is nothing to store (an unknown id).
    `released` identifiers are given up by the contact: the shell removes each
    from the identity table while it still names this contact, then writes
    `claimed` ones (the two never overlap).
    """

    contact: Contact | None
    changes: tuple[Change, ...]
    claimed: tuple[Identifier, ...] = ()
    released: tuple[Identifier, ...] = ()
    # For the tenant's quota (stream/domain/marketing.py), in order.
    quota: tuple[mkt.QuotaOp, ...] = ()
    # Nothing was decided: ask the quota for a slot, then decide again with the grant.
    needs_grant: bool = False


def apply_command(
    contact: Contact | None,
    command: Command,
    config: IdentityConfig,
    at: int,
    cause: Cause,
    owners: Mapping[Identifier, str] | None = None,
    rules: MarketingRules | None = None,
) -> CommandDecision:
    """Decide a command on one contact (SPEC §2.4, §3.3, §3.4).

    `contact` is the one `command.contact_id` names, None when unknown.
    `owners` holds the current owner of each identifier `update_contact`
    adds, as for `apply_intake`; other commands ignore it. `rules` carry the
    tenant's marketing rules and, on the second call, the quota's grant.
    """
    if contact is not None and contact.contact_id != command.contact_id:
        raise ValueError("contact does not agree with the command's contact_id")
    if contact is None or contact.state == PURGED:
        return CommandDecision(
            contact, (_reject_unversioned(command, "unknown_contact", at, cause),)
        )
    if contact.state == MERGED:
        # A merged contact's last version is its `contact.merged` (SPEC §3.3.5).
        return CommandDecision(contact, (_reject_unversioned(command, "merged", at, cause),))
    log = ChangeLog(contact, cause, at)
    if contact.state == TRASHED and not isinstance(command, _TRASH_COMMANDS):
        return _rejected(log, command, "trashed")
    match command:
        case UpdateContact():
            return _update(log, command, config, at, owners or {})
        case DeleteContact():
            return _delete(log, command, config)
        case RestoreContact():
            return _restore(log, command)
        case PurgeContact():
            return _purge_command(log, command, config)
        case SuspendContact():
            return _set_suspended(log, command, True)
        case UnsuspendContact():
            return _set_suspended(log, command, False)
        case SetMarketing():
            step = activation.set_marketing(
                log, command.marketing, command.via, rules or MarketingRules()
            )
            if step.needs_grant:
                return CommandDecision(contact, (), needs_grant=True)
            return CommandDecision(log.contact, tuple(log.changes), quota=step.quota)
        case AddToList():
            activation.add_to_list(log, command.list_id)
            return CommandDecision(log.contact, tuple(log.changes))
        case RemoveFromList():
            activation.remove_from_list(log, command.list_id)
            return CommandDecision(log.contact, tuple(log.changes))


def reject_unversioned(
    tenant_id: str, contact_id: str, command_type: str, reason: str, at: int, cause: Cause
) -> Change:
    """`command.rejected` about no existing contact: version 0 (SPEC §2.6, §3.3.3)."""
    return unversioned_change(
        tenant_id,
        contact_id,
        "command.rejected",
        at,
        cause,
        {"reason": reason, "command": command_type},
    )


def _reject_unversioned(command: Command, reason: str, at: int, cause: Cause) -> Change:
    return reject_unversioned(
        command.tenant_id, command.contact_id, command.type, reason, at, cause
    )


def slot_hold_end(contact: Contact, config: IdentityConfig) -> int | None:
    """`activated_at + hold_days` while the contact's marketing slot is used (SPEC §3.3.1).

    A hold already running keeps its end (SPEC §2.5: a config change moves no
    scheduled time).
    """
    return mkt.purge_not_before(contact.marketing, mkt.MarketingConfig(hold_days=config.hold_days))


def purge_due_after_deletion(contact: Contact, config: IdentityConfig, at: int) -> int:
    """max(deletion `at` + `trash_retention_days`, end of the slot's hold) (SPEC §3.3.1)."""
    due = at + config.trash_retention_days * MS_PER_DAY
    hold_end = slot_hold_end(contact, config)
    return due if hold_end is None else max(due, hold_end)


def due_purge(contact: Contact, now: int) -> bool:
    """Whether the purge timer of a trashed contact is due at `now` (SPEC §3.3.1, §3.7)."""
    due = purge_due(contact)
    return due is not None and due <= now


def purge_due(contact: Contact) -> int | None:
    """When the purge of a trashed contact is due, if it is trashed."""
    return contact.purge_after if contact.state == TRASHED else None


def next_due(contact: Contact, config: EngagementConfig | None = None) -> int | None:
    """When the contact's next timed transition is due: purge, slot release, engagement.

    Without the tenant's config the defaults serve: tier boundaries do not
    depend on it, and the shell passes it wherever a status timer may run.
    """
    dues = [
        purge_due(contact),
        activation.release_due(contact),
        engage.next_due(contact, config or EngagementConfig()),
    ]
    present = [due for due in dues if due is not None]
    return min(present) if present else None


def fire_timers(
    contact: Contact, now: int, config: EngagementConfig, *, purge: bool = True
) -> CommandDecision:
    """Everything due at or before `now`, in due order, each at its due time (SPEC §3.7).

    A purge ends the contact's timers: the others fire only up to it. With
    `purge=False` a due purge is left to its tick (an intake holding
    identifier locks cannot re-route itself after releasing them).
    """
    purge_at = purge_due(contact)
    limit = now if purge_at is None else min(now, purge_at if purge else purge_at - 1)
    changes: list[Change] = []
    quota: list[mkt.QuotaOp] = []
    # A release is due no later than the purge (SPEC §3.3.1): it fires up to `now` either way.
    release_limit = now if purge_at is None else min(now, purge_at)
    while (release := activation.release_due(contact)) is not None and release <= release_limit:
        # Ties: the engagement transitions due at the same time go first.
        fired = engage.fire_due(contact, release, config)
        log = ChangeLog(fired.contact, TIMER, release)
        quota.extend(activation.fire_release(log).quota)
        contact = log.contact
        changes.extend((*fired.changes, *log.changes))
    fired = engage.fire_due(contact, limit, config)
    changes.extend(fired.changes)
    if not purge:
        return CommandDecision(fired.contact, tuple(changes), quota=tuple(quota))
    purged = fire_purge(fired.contact, now)
    return CommandDecision(
        purged.contact,
        (*changes, *purged.changes),
        (),
        purged.released,
        quota=(*quota, *purged.quota),
    )


def fire_purge(contact: Contact, now: int) -> CommandDecision:
    """The purge timer (SPEC §3.3.1): purges a contact due at or before `now`.

    The change's `at` is the due time, however late the timer runs (SPEC
    §3.7); its cause is a timer's (no `event_id`). A contact not due (restored,
    or its purge moved) is left unchanged, so a stale timer entry is harmless.
    """
    due = purge_due(contact)
    if due is None or due > now:
        return CommandDecision(contact, ())
    return _purge(ChangeLog(contact, TIMER, due))


def _rejected(log: ChangeLog, command: Command, reason: str) -> CommandDecision:
    log.emit("command.rejected", {"reason": reason, "command": command.type})
    return CommandDecision(log.contact, tuple(log.changes))


def _delete(log: ChangeLog, command: DeleteContact, config: IdentityConfig) -> CommandDecision:
    """Trash keeps all data and identifiers; each deletion restarts the purge clock."""
    contact = log.contact
    if contact.state == TRASHED:
        return _rejected(log, command, "already_trashed")
    purge_after = purge_due_after_deletion(contact, config, log.at)
    log.contact = replace(contact, state=TRASHED, deleted_at=log.at, purge_after=purge_after)
    log.emit("contact.deleted", {"purge_after": format_ms(purge_after)})
    return CommandDecision(log.contact, tuple(log.changes))


def _restore(log: ChangeLog, command: RestoreContact) -> CommandDecision:
    if log.contact.state != TRASHED:
        return _rejected(log, command, "not_trashed")
    log.contact = restored(log.contact)
    log.emit("contact.restored", {})
    return CommandDecision(log.contact, tuple(log.changes))


def _purge_command(
    log: ChangeLog, command: PurgeContact, config: IdentityConfig
) -> CommandDecision:
    """`purge_contact`: purge now, or move `purge_after` to the hold's end (SPEC §3.3.1)."""
    contact = log.contact
    if contact.state != TRASHED:
        return _rejected(log, command, "not_trashed")
    hold_end = slot_hold_end(contact, config)
    if hold_end is None or hold_end <= log.at:
        return _purge(log)
    if contact.purge_after != hold_end:
        log.contact = replace(contact, purge_after=hold_end)
        log.emit(
            "contact.updated",
            {
                "changed": {
                    "purge_after": [format_optional_ms(contact.purge_after), format_ms(hold_end)]
                }
            },
        )
    return CommandDecision(log.contact, tuple(log.changes))


def _purge(log: ChangeLog) -> CommandDecision:
    """Release every identifier and erase the data: a tombstone stays (SPEC §3.3.1)."""
    released = log.contact.identifiers
    slot = mkt.drop_slot(log.contact.marketing)  # the slot goes with the contact (SPEC §3.4.7)
    log.contact = tombstone(log.contact, PURGED)
    log.emit("contact.purged", {})
    return CommandDecision(log.contact, tuple(log.changes), (), released, quota=slot.quota)


def _set_suspended(log: ChangeLog, command: Command, suspended: bool) -> CommandDecision:
    if log.contact.suspended == suspended:
        return _rejected(log, command, "not_allowed")
    contact = replace(log.contact, suspended=suspended)
    # `discarded` while suspended (SPEC §3.3.6, §3.6); the tier change comes
    # before `contact.suspended` (SPEC §2.6 order) and after `contact.unsuspended`.
    state, tiers = refresh_tier(contact.engagement, log.at, suspended)
    log.contact = replace(contact, engagement=state)
    if not suspended:
        log.emit("contact.unsuspended", {})
    for tier in tiers:
        if isinstance(tier, TierChange):
            log.emit("activity_tier.changed", {"from": tier.from_, "to": tier.to})
    if suspended:
        log.emit("contact.suspended", {})
    return CommandDecision(log.contact, tuple(log.changes))


def _update(
    log: ChangeLog,
    command: UpdateContact,
    config: IdentityConfig,
    at: int,
    owners: Mapping[Identifier, str],
) -> CommandDecision:
    """A profile edit in SPEC §2.6 order: identifier events, then one `contact.updated`.

    Removes apply before adds (so a full contact can swap an identifier); a
    primary must be among the contact's identifiers once they apply, else the
    whole command is rejected (`not_allowed`) before anything changes. A
    primary whose add is then dropped (owned by another, limit) is ignored.
    """
    event_id = log.cause.event_id
    if event_id is None:
        raise ValueError("update_contact needs an event_id: its field writes are timed")
    if not _primaries_possible(log.contact, command):
        return _rejected(log, command, "not_allowed")
    released = _remove_identifiers(log, command)
    for drop in rejected_drops(command.rejected):
        log.emit("identifier.dropped", drop)
    adds = [Identifier(Kind.EMAIL, v) for v in command.add_emails] + [
        Identifier(Kind.PHONE, v) for v in command.add_phones
    ]
    # An identifier this command removed is no longer the contact's: adding it
    # back is a new add, at the end of the list.
    unowned = set(released)
    claimed = add_identifiers(
        log, adds, {i: o for i, o in owners.items() if i not in unowned}, config, {}
    )
    changed = _reorder_primaries(log, command)
    changed.update(_edit_profile(log, command, at, event_id))
    if changed:
        log.emit("contact.updated", {"changed": changed})
    still_released = tuple(i for i in released if i not in set(claimed))
    return CommandDecision(log.contact, tuple(log.changes), claimed, still_released)


def _primaries_possible(contact: Contact, command: UpdateContact) -> bool:
    for primary, held, adds, removes in (
        (command.primary_email, contact.emails, command.add_emails, command.remove_emails),
        (command.primary_phone, contact.phones, command.add_phones, command.remove_phones),
    ):
        if primary is None:
            continue
        if primary not in adds and (primary not in held or primary in removes):
            return False
    return True


def _remove_identifiers(log: ChangeLog, command: UpdateContact) -> list[Identifier]:
    """`identifier.removed` for each named identifier the contact holds; they are released."""
    released: list[Identifier] = []
    for kind, values in ((Kind.EMAIL, command.remove_emails), (Kind.PHONE, command.remove_phones)):
        for value in values:
            contact = log.contact
            held = contact.emails if kind is Kind.EMAIL else contact.phones
            if value not in held:
                continue
            kept = tuple(v for v in held if v != value)
            log.contact = (
                replace(contact, emails=kept)
                if kind is Kind.EMAIL
                else replace(contact, phones=kept)
            )
            log.emit("identifier.removed", {"kind": kind.value, "value": value})
            released.append(Identifier(kind, value))
    return released


def _reorder_primaries(log: ChangeLog, command: UpdateContact) -> dict[str, list[Any]]:
    changed: dict[str, list[Any]] = {}
    contact = log.contact
    emails, phones = contact.emails, contact.phones
    if command.primary_email in emails[1:]:
        changed["primary_email"] = [emails[0], command.primary_email]
        emails = (command.primary_email, *(e for e in emails if e != command.primary_email))
    if command.primary_phone in phones[1:]:
        changed["primary_phone"] = [phones[0], command.primary_phone]
        phones = (command.primary_phone, *(p for p in phones if p != command.primary_phone))
    log.contact = replace(contact, emails=emails, phones=phones)
    return changed


def _edit_profile(
    log: ChangeLog, command: UpdateContact, at: int, event_id: str
) -> dict[str, list[Any]]:
    """Fields and owner by last writer, a None clearing (timed); tags in order (SPEC §3.2.5)."""
    contact = log.contact
    changed: dict[str, list[Any]] = {}
    fields = contact.field_map
    for name, value in (command.fields or {}).items():
        current = fields.get(name)
        if current is None or current.loses_to(at, event_id):
            old = None if current is None else current.value
            if not same_value(old, value):
                changed[name] = [old, value]
            fields[name] = TimedValue(value, at, event_id)
    owner = contact.owner
    if command.sets_owner and (owner is None or owner.loses_to(at, event_id)):
        if not same_value(owner_value(contact), command.owner):
            changed["owner"] = [owner_value(contact), command.owner]
        owner = TimedValue(command.owner, at, event_id)
    tags = list(contact.tags)
    for tag in command.tags_add:
        if tag not in tags:
            tags.append(tag)
    for tag in command.tags_remove:
        if tag in tags:
            tags.remove(tag)
    if tuple(tags) != contact.tags:
        changed["tags"] = [list(contact.tags), tags]
    log.contact = replace(
        contact, fields=tuple(sorted(fields.items())), owner=owner, tags=tuple(tags)
    )
    return changed

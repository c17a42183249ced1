"""Identity rules for intakes (SPEC §3.2, §3.3.4): matching, identifiers, fields, tags.

Pure: the caller looks up who owns each identifier and loads the matched
contact; `apply_intake` decides. The cross-partition locking protocol
(SPEC §3.2.9) lives in the shell; these rules assume the lookups it gives are
stable while the decision is taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stream.domain import activation
from stream.domain.activation import MarketingRules
from stream.domain.contact import (
    LIVE,
    TRASHED,
    Cause,
    Change,
    ChangeLog,
    Contact,
    Scalar,
    TimedValue,
    derive_contact_id,
    same_value,
    snapshot,
)
from stream.domain.frozen import replace
from stream.domain.marketing import QuotaOp
from stream.domain.normalize import Identifier, Kind, Normalized, RejectedIdentifier

MANUAL = "manual"
# `readd_deleted_policy` values (SPEC §2.5, §3.3.4).
RESTORE = "restore"
SUSPEND = "suspend"


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The part of a tenant's config (SPEC §2.5) the identity and command rules read."""

    alt_email_limit: int = 10
    alt_phone_limit: int = 10
    hold_days: int = 30
    trash_retention_days: int = 30
    # `suspend` (emBlue): an intake restoring a trashed contact also suspends it.
    readd_deleted_policy: str = RESTORE

    def capacity(self, kind: Kind) -> int:
        # One primary plus the alternates.
        return 1 + (self.alt_email_limit if kind is Kind.EMAIL else self.alt_phone_limit)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an input was read: a new contact's id derives from it (SPEC §3.2.10)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Intake:
    tenant_id: str
    event_id: str
    source: str
    identifiers: Normalized
    at: int
    origin: Origin
    clamped: bool = False
    fields: Mapping[str, Scalar] | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    on_match: str = "update"
    marketing: bool | None = None
    # `command` for `create_contact`: a manual creation through the intake path.
    cause_kind: str = "intake"


@dataclass(frozen=True, slots=True)
class Match:
    by: Kind
    identifier: str
    contact_id: str

    def as_json(self) -> dict[str, Any]:
        return {"by": self.by.value, "identifier": self.identifier}


NO_MATCH_JSON: dict[str, Any] = {"by": None, "identifier": None}


@dataclass(frozen=True, slots=True)
class IntakeDecision:
    contact: Contact
    changes: tuple[Change, ...]
    claimed: tuple[Identifier, ...]  # identifiers now owned by `contact`
    released: tuple[Identifier, ...] = ()  # identifiers `contact` gave up (none for intakes)
    quota: tuple[QuotaOp, ...] = ()  # for the tenant's quota, in order
    # Nothing was decided: ask the quota for a slot, then decide again with the grant.
    needs_grant: bool = False


def find_match(identifiers: Normalized, owners: Mapping[Identifier, str]) -> Match | None:
    """First owned email decides; else first owned phone; else none (SPEC §3.2.3)."""
    for kind, values in ((Kind.EMAIL, identifiers.emails), (Kind.PHONE, identifiers.phones)):
        for value in values:
            owner = owners.get(Identifier(kind, value))
            if owner is not None:
                return Match(kind, value, owner)
    return None


def apply_intake(
    intake: Intake,
    owners: Mapping[Identifier, str],
    matched: Contact | None,
    config: IdentityConfig,
    rules: MarketingRules | None = None,
) -> IntakeDecision:
    """Decide an intake's effect given the current owner of each of its identifiers.

    `rules`: the tenant's marketing rules and, on the second call of an
    intake that activates, the quota's grant (stream/domain/activation.py);
    None leaves marketing out (the identity rules alone).

    `matched` is the contact `find_match` names (None when there is no match).
    Owners are live or trashed contacts alike (SPEC §3.2.3): a trashed match is
    restored first, then the intake applies (§3.3.4). A tombstone owns nothing:
    the shell leaves purged and merged owners out of `owners` (merged ones
    resolve to their survivor), so naming one here is an error.
    """
    match = find_match(intake.identifiers, owners)
    cause = Cause(intake.cause_kind, intake.event_id, intake.clamped)
    if match is None:
        return _create(intake, owners, config, cause, rules)
    if matched is None or matched.contact_id != match.contact_id:
        raise ValueError("matched contact does not agree with the identifier owners")
    if not matched.holds_identifiers:
        raise ValueError(f"matched contact is {matched.state}: it owns no identifier")
    match_json = match.as_json()
    log = ChangeLog(matched, cause, intake.at)
    if intake.source == MANUAL:
        log.emit(
            "intake.rejected",
            {
                "reason": "duplicate",
                "existing_contact_id": matched.contact_id,
                "identifier": match.identifier,
                "match": match_json,
            },
        )
        return IntakeDecision(log.contact, tuple(log.changes), ())
    if intake.on_match == "skip":
        log.emit("intake.skipped", {"match": match_json})
        return IntakeDecision(log.contact, tuple(log.changes), ())
    readded = matched.state == TRASHED
    if readded:
        log.contact = restored(log.contact)
        log.emit("contact.restored", {"match": match_json})
    for drop in _rejected(intake):
        log.emit("identifier.dropped", {**drop, "match": match_json})
    claimed = add_identifiers(
        log, intake.identifiers.identifiers, owners, config, {"match": match_json}
    )
    _update_profile(log, intake, match_json)
    step = _marketing(log, intake, rules)
    if step.needs_grant:
        return IntakeDecision(matched, (), (), needs_grant=True)
    if readded and config.readd_deleted_policy == SUSPEND and not log.contact.suspended:
        # Last of the input's events (SPEC §2.6 order).
        log.contact = replace(log.contact, suspended=True)
        log.emit("contact.suspended", {"match": match_json})
    return IntakeDecision(log.contact, tuple(log.changes), claimed, quota=step.quota)


def _marketing(log: ChangeLog, intake: Intake, rules: MarketingRules | None) -> activation.Step:
    if rules is None:
        return activation.Step()
    return activation.on_intake(log, intake.source, intake.marketing, rules)


def restored(contact: Contact) -> Contact:
    """Back from trash as it was (SPEC §3.3.2): live again, no purge pending."""
    return replace(contact, state=LIVE, deleted_at=None, purge_after=None)


def _create(
    intake: Intake,
    owners: Mapping[Identifier, str],
    config: IdentityConfig,
    cause: Cause,
    rules: MarketingRules | None,
) -> IntakeDecision:
    contact_id = _new_contact_id(intake)
    kept: dict[Kind, list[str]] = {Kind.EMAIL: [], Kind.PHONE: []}
    drops: list[dict[str, Any]] = []
    for ident in intake.identifiers.identifiers:
        owner = owners.get(ident)
        if owner is not None and owner != contact_id:
            drops.append(dropped(ident.kind, ident.value, "owned_by_other", owner))
        elif len(kept[ident.kind]) >= config.capacity(ident.kind):
            drops.append(dropped(ident.kind, ident.value, "limit_reached"))
        else:
            kept[ident.kind].append(ident.value)
    fields = tuple(
        sorted(
            (name, TimedValue(value, intake.at, intake.event_id))
            for name, value in (intake.fields or {}).items()
            if value is not None
        )
    )
    owner_value = (
        None if intake.owner is None else TimedValue(intake.owner, intake.at, intake.event_id)
    )
    fresh = Contact(
        tenant_id=intake.tenant_id,
        contact_id=contact_id,
        source=intake.source,
        created_at=intake.at,
        updated_at=intake.at,
        emails=tuple(kept[Kind.EMAIL]),
        phones=tuple(kept[Kind.PHONE]),
        fields=fields,
        tags=tuple(dict.fromkeys(intake.tags)),
        owner=owner_value,
    )
    log = ChangeLog(fresh, cause, intake.at)
    # The snapshot carries the version it describes: the creation is version 1.
    log.emit(
        "contact.created", {"contact": snapshot(replace(fresh, version=1)), "match": NO_MATCH_JSON}
    )
    for drop in [*_rejected(intake), *drops]:
        log.emit("identifier.dropped", {**drop, "match": NO_MATCH_JSON})
    claimed = tuple(
        Identifier(kind, value) for kind in (Kind.EMAIL, Kind.PHONE) for value in kept[kind]
    )
    step = _marketing(log, intake, rules)
    if step.needs_grant:
        return IntakeDecision(log.contact, (), claimed, needs_grant=True)
    return IntakeDecision(log.contact, tuple(log.changes), claimed, quota=step.quota)


def add_identifiers(
    log: ChangeLog,
    candidates: Iterable[Identifier],
    owners: Mapping[Identifier, str],
    config: IdentityConfig,
    extra: Mapping[str, Any],
) -> tuple[Identifier, ...]:
    """Add new identifiers without overwriting any (SPEC §3.2.4); returns those claimed.

    The first of a kind becomes primary when the contact has none, the rest
    alternates while there is room. `extra` goes into every event's data.
    """
    contact = log.contact
    held = {Kind.EMAIL: list(contact.emails), Kind.PHONE: list(contact.phones)}
    claimed: list[Identifier] = []
    for ident in candidates:
        owner = owners.get(ident)
        if owner == contact.contact_id:
            continue
        if ident.value in held[ident.kind]:
            if owner is None:
                # Held but unowned: the identity write of an earlier input was
                # lost (a crash between two table writes). Claim it again.
                claimed.append(ident)
            continue
        if owner is not None:
            log.emit(
                "identifier.dropped",
                {**dropped(ident.kind, ident.value, "owned_by_other", owner), **extra},
            )
        elif len(held[ident.kind]) >= config.capacity(ident.kind):
            log.emit(
                "identifier.dropped",
                {**dropped(ident.kind, ident.value, "limit_reached"), **extra},
            )
        else:
            primary = not held[ident.kind]
            held[ident.kind].append(ident.value)
            claimed.append(ident)
            log.contact = replace(
                log.contact, emails=tuple(held[Kind.EMAIL]), phones=tuple(held[Kind.PHONE])
            )
            log.emit(
                "identifier.added",
                {"kind": ident.kind.value, "value": ident.value, "primary": primary, **extra},
            )
    return tuple(claimed)


def _update_profile(log: ChangeLog, intake: Intake, match_json: dict[str, Any]) -> None:
    """Fields by last writer (nulls ignored), owner only if none, tags union (SPEC §3.2.5)."""
    contact = log.contact
    fields = contact.field_map
    changed: dict[str, list[Any]] = {}
    for name, value in (intake.fields or {}).items():
        if value is None:
            continue
        current = fields.get(name)
        if current is None or current.loses_to(intake.at, intake.event_id):
            if current is None or not same_value(current.value, value):
                changed[name] = [None if current is None else current.value, value]
            fields[name] = TimedValue(value, intake.at, intake.event_id)
    owner = contact.owner
    if intake.owner is not None and (
        # Only a contact without owner takes the intake's; a clear newer than
        # the intake still wins (last writer, SPEC §3.2.5).
        owner is None or (owner.value is None and owner.loses_to(intake.at, intake.event_id))
    ):
        owner = TimedValue(intake.owner, intake.at, intake.event_id)
        changed["owner"] = [None, intake.owner]
    tags = tuple(dict.fromkeys((*contact.tags, *intake.tags)))
    if tags != contact.tags:
        changed["tags"] = [list(contact.tags), list(tags)]
    new_fields = tuple(sorted(fields.items()))
    if new_fields == contact.fields and owner == contact.owner and tags == contact.tags:
        return
    log.contact = replace(contact, fields=new_fields, owner=owner, tags=tags)
    if changed:
        log.emit("contact.updated", {"changed": changed, "match": match_json})


def _rejected(intake: Intake) -> list[dict[str, Any]]:
    return rejected_drops(intake.identifiers.rejected)


def rejected_drops(rejected: Iterable[RejectedIdentifier]) -> list[dict[str, Any]]:
    """`identifier.dropped` data of the identifiers normalization left out (SPEC §2.2)."""
    return [dropped(r.kind, r.value, r.reason.value) for r in rejected]


def dropped(kind: Kind, value: str, reason: str, owner_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind.value, "value": value, "reason": reason}
    if owner_id is not None:
        out["owner_id"] = owner_id
    return out


def _new_contact_id(intake: Intake) -> str:
    origin = intake.origin
    return derive_contact_id(
        intake.tenant_id, intake.event_id, origin.topic, origin.partition, origin.offset
    )

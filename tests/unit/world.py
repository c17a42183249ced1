"""An in-memory identity table and contact table, kept the way the shell keeps them.

The domain is the reference model (STYLE): this folds intakes, commands, merges
and timers through it, updating the owners map from `claimed` / `released`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from stream.domain.activation import MarketingRules
from stream.domain.commands import (
    Command,
    CommandDecision,
    apply_command,
    fire_timers,
    reject_unversioned,
)
from stream.domain.contact import Cause, Change, Contact
from stream.domain.identity import (
    IdentityConfig,
    Intake,
    IntakeDecision,
    Origin,
    apply_intake,
    find_match,
)
from stream.domain.marketing import QuotaOp, ReleaseSlot, ScheduleRelease, TakeSlot
from stream.domain.merge import MergeDecision, merge_contacts
from stream.domain.normalize import Identifier, Kind, normalize_identifiers
from stream.domain.quota import (
    Quota,
    release_slot,
    request_slot,
    schedule_release,
    take_slot,
)

T0 = 1_764_000_000_000
TENANT = "acme"


def intake(
    event_id: str,
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    at: int = T0,
    offset: int = 0,
    **kwargs: Any,
) -> Intake:
    ids = normalize_identifiers(list(emails), list(phones), "ES", ["re:^test@", "anonymous"])
    return Intake(
        tenant_id=TENANT,
        event_id=event_id,
        source=str(kwargs.pop("source", "import")),
        identifiers=ids,
        at=at,
        origin=Origin("contacts.intake.v1", 0, offset),
        **kwargs,
    )


def types(decision: Any) -> list[str]:
    return [c.type for c in decision.changes]


def cmd(event_id: str) -> Cause:
    return Cause("command", event_id)


class World:
    """Tables as the shell holds them; every decision is stored and its owners applied."""

    def __init__(
        self, config: IdentityConfig | None = None, rules: MarketingRules | None = None
    ) -> None:
        self.config = config or IdentityConfig()
        self.rules = rules or MarketingRules()
        self.owners: dict[Identifier, str] = {}
        self.contacts: dict[str, Contact] = {}
        self.published: list[Change] = []
        # The tenant's quota, asked at once (the shell's hop to the quota's owner).
        self.quota = Quota(limit=self.rules.config.marketing_limit)
        self.requests = 0

    def _granted(self, contact_id: str) -> MarketingRules:
        self.requests += 1
        self.quota, grant = request_slot(self.quota, contact_id, self.requests, self.rules.config)
        return replace(self.rules, grant=grant)

    def _send_quota(self, contact_id: str, ops: Sequence[QuotaOp]) -> None:
        for op in ops:
            match op:
                case ReleaseSlot():
                    self.quota = release_slot(self.quota, contact_id, op.request_id)
                case ScheduleRelease():
                    self.quota = schedule_release(self.quota, contact_id, op.request_id, op.at)
                case TakeSlot():
                    self.quota = take_slot(self.quota, contact_id, op.request_id)

    def owners_of(self, identifiers: Sequence[Identifier]) -> Mapping[Identifier, str]:
        return {i: self.owners[i] for i in identifiers if i in self.owners}

    def apply(self, item: Intake) -> IntakeDecision:
        owners = self.owners_of(item.identifiers.identifiers)
        match = find_match(item.identifiers, owners)
        matched = None if match is None else self.contacts[match.contact_id]
        if matched is not None:
            # As the contact partition does (stream/agents/contact.py): what is due
            # by the intake's time fires first, a purge excepted (left to its tick).
            due = fire_timers(matched, item.at, self.rules.engagement, purge=False)
            if due.changes:
                self._store(due.contact, due.changes, due.claimed, due.released)
                self._send_quota(matched.contact_id, due.quota)
            matched = due.contact
        decision = apply_intake(item, owners, matched, self.config, self.rules)
        if decision.needs_grant:
            rules = self._granted(decision.contact.contact_id)
            decision = apply_intake(item, owners, matched, self.config, rules)
        self._store(decision.contact, decision.changes, decision.claimed, decision.released)
        self._send_quota(decision.contact.contact_id, decision.quota)
        return decision

    def command(self, command: Command, at: int, event_id: str) -> CommandDecision:
        adds: list[Identifier] = []
        if hasattr(command, "add_emails"):
            adds = [Identifier(Kind.EMAIL, v) for v in command.add_emails] + [
                Identifier(Kind.PHONE, v) for v in command.add_phones
            ]
        contact = self.contacts.get(command.contact_id)
        fired = self._fire(contact, at)
        contact = contact if fired is None else fired.contact

        def decide(rules: MarketingRules) -> CommandDecision:
            return apply_command(
                contact, command, self.config, at, cmd(event_id), self.owners_of(adds), rules
            )

        decision = decide(self.rules)
        if decision.needs_grant:
            decision = decide(self._granted(command.contact_id))
        self._store(decision.contact, decision.changes, decision.claimed, decision.released)
        self._send_quota(command.contact_id, decision.quota)
        return decision

    def _fire(self, contact: Contact | None, at: int) -> CommandDecision | None:
        """What is due on the contact at or before `at` fires first (SPEC §3.7)."""
        if contact is None:
            return None
        fired = fire_timers(contact, at, self.rules.engagement)
        if fired.changes:
            self._store(fired.contact, fired.changes, fired.claimed, fired.released)
            self._send_quota(contact.contact_id, fired.quota)
        return fired

    def merge(
        self, survivor_id: str, merged_ids: Sequence[str], at: int, event_id: str
    ) -> MergeDecision | list[Change]:
        cause = cmd(event_id)
        unknown = [i for i in dict.fromkeys((survivor_id, *merged_ids)) if i not in self.contacts]
        if unknown:
            rejections = [
                reject_unversioned(TENANT, i, "merge_contacts", "unknown_contact", at, cause)
                for i in unknown
            ]
            self.published.extend(rejections)
            return rejections
        decision = merge_contacts(
            self.contacts[survivor_id],
            [self.contacts[i] for i in merged_ids],
            self.config,
            at,
            cause,
        )
        for gone in decision.merged:
            self.contacts[gone.contact_id] = gone
        for ident in decision.released:
            if self.owners.get(ident) in merged_ids:
                del self.owners[ident]
        # Moved identifiers: the new owner overwrites the merged one.
        self._store(decision.survivor, decision.changes, decision.claimed, ())
        for contact_id, op in decision.quota:
            self._send_quota(contact_id, [op])
        return decision

    def tick(self, now: int) -> list[CommandDecision]:
        fired = []
        for contact in list(self.contacts.values()):
            decision = self._fire(contact, now)
            if decision is not None and decision.changes:
                fired.append(decision)
        return fired

    def _store(
        self,
        contact: Contact | None,
        changes: Sequence[Change],
        claimed: Sequence[Identifier],
        released: Sequence[Identifier],
    ) -> None:
        if contact is not None:
            self.contacts[contact.contact_id] = contact
        for ident in released:
            # Only while the identifier still names the contact, as the shell does.
            if contact is not None and self.owners.get(ident) == contact.contact_id:
                del self.owners[ident]
            elif contact is None:
                raise AssertionError("released without a contact")
        for ident in claimed:
            assert contact is not None
            self.owners[ident] = contact.contact_id
        self.published.extend(changes)

    def check_identity_invariants(self) -> None:
        """One owner per identifier; a live or trashed contact owns exactly what it lists."""
        listed: dict[Identifier, str] = {}
        for contact in self.contacts.values():
            if not contact.holds_identifiers:
                assert contact.identifiers == (), contact
                continue
            for ident in contact.identifiers:
                assert ident not in listed, f"{ident} on {listed.get(ident)} and {contact}"
                listed[ident] = contact.contact_id
        assert listed == self.owners

    def check_versions(self) -> None:
        """Versions 1, 2, 3, … per contact, no gap or repeat; `at` never decreases."""
        by_contact: dict[str, list[Change]] = {}
        for change in self.published:
            if change.version:
                by_contact.setdefault(change.contact_id, []).append(change)
        for contact_id, changes in by_contact.items():
            assert [c.version for c in changes] == list(range(1, len(changes) + 1)), contact_id
            ats = [c.at for c in changes]
            assert ats == sorted(ats), contact_id
            assert self.contacts[contact_id].version == len(changes)
        ids = [c.change_id for c in self.published]
        assert len(ids) == len(set(ids))

"""SPEC §3.2 and §3.3.4: create, match, attach, fields, tags, manual, skip, trashed matches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from stream.domain.commands import (
    DeleteContact,
    PurgeContact,
    SuspendContact,
    UpdateContact,
)
from stream.domain.contact import PURGED, TRASHED, Contact, tombstone
from stream.domain.identity import IdentityConfig, Intake, Origin, apply_intake, find_match
from stream.domain.normalize import Identifier, Kind, Normalized, normalize_identifiers
from tests.unit import world as w

T0 = 1_764_000_000_000
CONFIG = IdentityConfig()


def intake(
    event_id: str,
    emails: list[str] = (),  # type: ignore[assignment]
    phones: list[str] = (),  # type: ignore[assignment]
    at: int = T0,
    offset: int = 0,
    **kwargs: object,
) -> Intake:
    ids = normalize_identifiers(list(emails), list(phones), "ES", ["re:^test@", "anonymous"])
    return Intake(
        tenant_id="acme",
        event_id=event_id,
        source=str(kwargs.pop("source", "form")),
        identifiers=ids,
        at=at,
        origin=Origin("contacts.intake.v1", 0, offset),
        **kwargs,  # type: ignore[arg-type]
    )


class World:
    """A tiny in-memory identity + contact store, as the shell keeps them in tables."""

    def __init__(self, config: IdentityConfig = CONFIG) -> None:
        self.config = config
        self.owners: dict[Identifier, str] = {}
        self.contacts: dict[str, Contact] = {}

    def apply(self, item: Intake):  # type: ignore[no-untyped-def]
        owners: Mapping[Identifier, str] = {
            i: self.owners[i] for i in item.identifiers.identifiers if i in self.owners
        }
        match = find_match(item.identifiers, owners)
        matched = None if match is None else self.contacts[match.contact_id]
        decision = apply_intake(item, owners, matched, self.config)
        self.contacts[decision.contact.contact_id] = decision.contact
        for ident in decision.claimed:
            self.owners[ident] = decision.contact.contact_id
        return decision


def types(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.type for c in decision.changes]


def test_new_identifiers_create_a_contact_with_version_1_and_its_snapshot() -> None:
    d = World().apply(
        intake("e1", ["Ana@Example.com"], ["600111222"], fields={"first_name": "Ana"})
    )
    assert types(d) == ["contact.created"]
    created = d.changes[0]
    assert created.version == 1
    snap = created.data["contact"]
    assert snap["version"] == 1
    assert snap["emails"] == ["ana@example.com"]
    assert snap["phones"] == ["+34600111222"]
    assert snap["fields"] == {"first_name": "Ana"}
    assert snap["source"] == "form"
    assert snap["engagement"]["tier"] == "inactive"
    assert created.data["match"] == {"by": None, "identifier": None}


def test_same_input_yields_same_contact_id_and_change_ids() -> None:
    a = World().apply(intake("e1", ["ana@example.com"]))
    b = World().apply(intake("e1", ["ana@example.com"]))
    assert a.contact.contact_id == b.contact.contact_id
    assert [c.change_id for c in a.changes] == [c.change_id for c in b.changes]


def test_first_matching_email_decides_and_phones_are_not_used_when_an_email_matches() -> None:
    world = World()
    ana = world.apply(intake("e1", ["ana@example.com"])).contact
    bob = world.apply(intake("e2", ["bob@example.com"], ["600111222"], offset=1)).contact
    d = world.apply(intake("e3", ["ana@example.com"], ["600111222"], offset=2))
    assert d.contact.contact_id == ana.contact_id
    dropped = [c.data for c in d.changes if c.type == "identifier.dropped"]
    assert dropped[0]["reason"] == "owned_by_other"
    assert dropped[0]["owner_id"] == bob.contact_id
    assert all(
        c.data["match"] == {"by": "email", "identifier": "ana@example.com"} for c in d.changes
    )


def test_phone_matches_when_no_email_matches_and_new_email_is_added_as_primary() -> None:
    world = World()
    first = world.apply(intake("e1", [], ["600111222"])).contact
    d = world.apply(intake("e2", ["new@example.com"], ["+34 600 111 222"], offset=1))
    assert d.contact.contact_id == first.contact_id
    added = [c.data for c in d.changes if c.type == "identifier.added"]
    assert added == [
        {
            "kind": "email",
            "value": "new@example.com",
            "primary": True,
            "match": {"by": "phone", "identifier": "+34600111222"},
        }
    ]
    assert [c.version for c in d.changes] == [2]


def test_identifiers_beyond_the_limit_are_dropped_with_limit_reached() -> None:
    world = World(IdentityConfig(alt_email_limit=1, alt_phone_limit=0))
    world.apply(intake("e1", ["a@example.com", "b@example.com", "c@example.com"]))
    contact = next(iter(world.contacts.values()))
    assert contact.emails == ("a@example.com", "b@example.com")
    d = world.apply(intake("e2", ["a@example.com", "d@example.com"], offset=1))
    assert [(c.type, c.data.get("reason")) for c in d.changes] == [
        ("identifier.dropped", "limit_reached")
    ]


def test_creation_lists_invalid_and_blocked_identifiers_as_drops_after_created() -> None:
    d = World().apply(intake("e1", ["ana@example.com", "nope", "test@example.com"]))
    assert types(d) == ["contact.created", "identifier.dropped", "identifier.dropped"]
    assert [c.data["reason"] for c in d.changes[1:]] == ["invalid", "blocked"]
    assert [c.version for c in d.changes] == [1, 2, 3]
    assert d.contact.emails == ("ana@example.com",)


def test_later_field_value_wins_whatever_the_arrival_order() -> None:
    world = World()
    world.apply(intake("e1", ["ana@example.com"], fields={"city": "Madrid"}, at=T0 + 10))
    late = world.apply(
        intake("e0", ["ana@example.com"], fields={"city": "Sevilla"}, at=T0, offset=1)
    )
    assert types(late) == []
    assert late.contact.field_map["city"].value == "Madrid"
    newer = world.apply(
        intake("e2", ["ana@example.com"], fields={"city": "Bilbao"}, at=T0 + 20, offset=2)
    )
    assert newer.changes[0].data["changed"] == {"city": ["Madrid", "Bilbao"]}


def test_equal_times_break_ties_by_greater_event_id_and_nulls_are_ignored() -> None:
    world = World()
    world.apply(intake("b", ["ana@example.com"], fields={"city": "Madrid"}))
    world.apply(intake("a", ["ana@example.com"], fields={"city": "Sevilla"}, offset=1))
    d = world.apply(intake("c", ["ana@example.com"], fields={"city": None}, offset=2))
    assert d.contact.field_map["city"].value == "Madrid"
    d = world.apply(intake("d", ["ana@example.com"], fields={"city": "Cadiz"}, offset=3))
    assert d.contact.field_map["city"].value == "Cadiz"


def test_tags_union_and_owner_set_only_when_contact_has_none() -> None:
    world = World()
    world.apply(intake("e1", ["ana@example.com"], tags=("webinar",), owner="maria"))
    d = world.apply(
        intake("e2", ["ana@example.com"], tags=("ebook", "webinar"), owner="juan", offset=1)
    )
    assert d.contact.tags == ("webinar", "ebook")
    assert d.contact.owner is not None and d.contact.owner.value == "maria"
    assert d.changes[0].data["changed"] == {"tags": [["webinar"], ["webinar", "ebook"]]}


def test_manual_creation_with_an_existing_identifier_is_rejected_as_duplicate() -> None:
    world = World()
    ana = world.apply(intake("e1", ["ana@example.com"])).contact
    d = world.apply(intake("e2", ["x@example.com", "ana@example.com"], source="manual", offset=1))
    assert types(d) == ["intake.rejected"]
    assert d.changes[0].data["existing_contact_id"] == ana.contact_id
    assert d.changes[0].data["identifier"] == "ana@example.com"
    assert d.changes[0].version == 2
    assert d.claimed == ()


def test_on_match_skip_leaves_the_matched_contact_unchanged() -> None:
    world = World()
    before = world.apply(intake("e1", ["ana@example.com"])).contact
    d = world.apply(
        intake(
            "e2", ["ana@example.com", "new@example.com"], on_match="skip", fields={"a": 1}, offset=1
        )
    )
    assert types(d) == ["intake.skipped"]
    assert replace(d.contact, version=1, updated_at=before.updated_at) == before


def test_at_never_decreases_along_a_contacts_versions() -> None:
    world = World()
    world.apply(intake("e1", ["ana@example.com"], at=T0 + 1000))
    d = world.apply(intake("e2", ["ana@example.com"], tags=("x",), at=T0, offset=1))
    assert d.changes[0].at == T0 + 1000


def test_an_input_without_changes_emits_nothing() -> None:
    world = World()
    world.apply(intake("e1", ["ana@example.com"]))
    assert types(world.apply(intake("e2", ["ana@example.com"], offset=1))) == []


def test_normalized_kinds() -> None:
    ids = Normalized(("a@example.com",), ("+34600111222",), ())
    assert [i.kind for i in ids.identifiers] == [Kind.EMAIL, Kind.PHONE]


def test_an_identifier_held_by_the_contact_but_unowned_is_claimed_again() -> None:
    world = World()
    ana = world.apply(intake("e1", ["ana@example.com", "ana2@example.com"])).contact
    # As after a crash that kept the contact's write but lost one identity write.
    del world.owners[Identifier(Kind.EMAIL, "ana2@example.com")]
    d = world.apply(intake("e2", ["ana@example.com", "ana2@example.com"], offset=1))
    assert d.claimed == (Identifier(Kind.EMAIL, "ana2@example.com"),)
    assert types(d) == []
    assert world.owners[Identifier(Kind.EMAIL, "ana2@example.com")] == ana.contact_id


# --- SPEC §3.3.4: an intake matching a trashed contact restores it first ------------------


DAY = 86_400_000


def trashed_world(config: IdentityConfig = CONFIG) -> tuple[w.World, Contact]:
    world = w.World(config)
    ana = world.apply(
        w.intake("e1", ["ana@example.com"], fields={"city": "Madrid"}, tags=("webinar",))
    ).contact
    world.command(DeleteContact("acme", ana.contact_id), T0 + DAY, "del")
    assert world.contacts[ana.contact_id].state == TRASHED
    return world, world.contacts[ana.contact_id]


def test_intake_matching_a_trashed_contact_restores_it_first_then_applies_the_intake() -> None:
    world, trashed = trashed_world()
    d = world.apply(
        w.intake(
            "e2",
            ["ana@example.com", "ana2@example.com"],
            tags=("ebook",),
            at=T0 + 2 * DAY,
            offset=1,
        )
    )
    assert w.types(d) == ["contact.restored", "identifier.added", "contact.updated"]
    assert [c.version for c in d.changes] == [3, 4, 5]
    match = {"by": "email", "identifier": "ana@example.com"}
    assert all(c.data["match"] == match for c in d.changes)
    assert d.contact.contact_id == trashed.contact_id
    assert d.contact.state == "live"
    assert d.contact.deleted_at is None and d.contact.purge_after is None
    assert d.contact.emails == ("ana@example.com", "ana2@example.com")
    assert d.contact.tags == ("webinar", "ebook")
    assert d.contact.field_map["city"].value == "Madrid"
    assert d.claimed == (Identifier(Kind.EMAIL, "ana2@example.com"),)
    world.check_identity_invariants()


def test_intake_that_changes_nothing_still_restores_a_trashed_match() -> None:
    world, trashed = trashed_world()
    d = world.apply(w.intake("e2", ["ana@example.com"], at=T0 + 2 * DAY, offset=1))
    assert w.types(d) == ["contact.restored"]
    assert replace(d.contact, version=trashed.version, updated_at=trashed.updated_at) == replace(
        trashed, state="live", deleted_at=None, purge_after=None
    )


def test_readd_policy_suspend_brings_a_trashed_match_back_suspended_as_its_last_event() -> None:
    world, _ = trashed_world(IdentityConfig(readd_deleted_policy="suspend"))
    d = world.apply(w.intake("e2", ["ana@example.com"], tags=("x",), at=T0 + 2 * DAY, offset=1))
    assert w.types(d) == ["contact.restored", "contact.updated", "contact.suspended"]
    assert d.contact.suspended
    assert d.changes[-1].data["match"] == {"by": "email", "identifier": "ana@example.com"}


def test_readd_policy_suspend_emits_no_suspension_for_a_contact_already_suspended() -> None:
    world = w.World(IdentityConfig(readd_deleted_policy="suspend"))
    ana = world.apply(w.intake("e1", ["ana@example.com"])).contact
    world.command(SuspendContact("acme", ana.contact_id), T0 + 1, "s")
    world.command(DeleteContact("acme", ana.contact_id), T0 + 2, "d")
    d = world.apply(w.intake("e2", ["ana@example.com"], at=T0 + 3, offset=1))
    assert w.types(d) == ["contact.restored"]
    assert d.contact.suspended


def test_readd_policy_suspend_leaves_a_live_match_unsuspended() -> None:
    world = w.World(IdentityConfig(readd_deleted_policy="suspend"))
    world.apply(w.intake("e1", ["ana@example.com"]))
    d = world.apply(w.intake("e2", ["ana@example.com"], tags=("x",), offset=1))
    assert w.types(d) == ["contact.updated"]
    assert not d.contact.suspended


def test_on_match_skip_leaves_a_trashed_match_wholly_unchanged_and_trashed() -> None:
    world, trashed = trashed_world()
    d = world.apply(
        w.intake("e2", ["ana@example.com"], on_match="skip", tags=("x",), at=T0 + 2 * DAY, offset=1)
    )
    assert w.types(d) == ["intake.skipped"]
    assert d.contact.state == TRASHED
    assert replace(d.contact, version=trashed.version, updated_at=trashed.updated_at) == trashed


def test_manual_intake_matching_a_trashed_contact_is_a_duplicate_and_it_stays_trashed() -> None:
    world, trashed = trashed_world()
    d = world.apply(
        w.intake("e2", ["new@example.com", "ana@example.com"], source="manual", offset=1)
    )
    assert w.types(d) == ["intake.rejected"]
    assert d.changes[0].data["existing_contact_id"] == trashed.contact_id
    assert d.contact.state == TRASHED
    assert d.claimed == ()


def test_after_purge_the_same_identifiers_create_a_brand_new_contact_with_only_new_data() -> None:
    world, trashed = trashed_world()
    purge = world.command(PurgeContact("acme", trashed.contact_id), T0 + 2 * DAY, "p")
    assert purge.contact is not None and purge.contact.state == PURGED
    assert world.owners == {}
    d = world.apply(w.intake("e9", ["ana@example.com"], at=T0 + 3 * DAY, offset=9))
    assert w.types(d) == ["contact.created"]
    assert d.contact.contact_id != trashed.contact_id
    assert d.contact.fields == () and d.contact.tags == ()
    world.check_identity_invariants()


def test_an_intake_whose_owners_name_a_tombstone_is_refused() -> None:
    world = World()
    ana = world.apply(intake("e1", ["ana@example.com"])).contact
    gone = tombstone(ana, PURGED)
    owners = {Identifier(Kind.EMAIL, "ana@example.com"): ana.contact_id}
    with pytest.raises(ValueError, match="purged"):
        apply_intake(intake("e2", ["ana@example.com"], offset=1), owners, gone, CONFIG)


def test_intake_owner_fills_an_owner_cleared_earlier_but_not_one_cleared_later() -> None:
    world = w.World()
    ana = world.apply(w.intake("e1", ["ana@example.com"], owner="maria")).contact
    world.command(
        UpdateContact("acme", ana.contact_id, sets_owner=True, owner=None), T0 + 10, "clear"
    )
    older = world.apply(w.intake("e2", ["ana@example.com"], owner="juan", at=T0 + 5, offset=1))
    assert w.types(older) == []
    assert older.contact.owner is not None and older.contact.owner.value is None
    newer = world.apply(w.intake("e3", ["ana@example.com"], owner="juan", at=T0 + 20, offset=2))
    assert newer.changes[0].data["changed"] == {"owner": [None, "juan"]}


def test_intake_fields_lose_to_a_newer_clear_by_update_contact() -> None:
    world = w.World()
    ana = world.apply(w.intake("e1", ["ana@example.com"], fields={"city": "Madrid"})).contact
    world.command(UpdateContact("acme", ana.contact_id, fields={"city": None}), T0 + 10, "clear")
    late = world.apply(
        w.intake("e2", ["ana@example.com"], fields={"city": "Sevilla"}, at=T0 + 5, offset=1)
    )
    assert w.types(late) == []
    assert "city" not in late.contact.field_map or late.contact.field_map["city"].value is None

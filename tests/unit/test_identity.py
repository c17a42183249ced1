"""SPEC §3.2 for the walking skeleton: create, match, attach, fields, tags, manual, skip."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from stream.domain.contact import Contact
from stream.domain.identity import IdentityConfig, Intake, Origin, apply_intake, find_match
from stream.domain.normalize import Identifier, Kind, Normalized, normalize_identifiers

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

"""SPEC §3.3.5: merging contacts (identifiers, fields, owner, tags, suspension)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stream.domain.commands import DeleteContact, SuspendContact, UpdateContact
from stream.domain.contact import LIVE, MERGED, PURGED, Cause, TimedValue, snapshot, tombstone
from stream.domain.identity import IdentityConfig
from stream.domain.merge import MergeDecision, merge_contacts
from stream.domain.normalize import Identifier, Kind
from tests.unit.world import T0, World, intake

CAUSE = Cause("command", "m1")


def email(value: str) -> Identifier:
    return Identifier(Kind.EMAIL, value)


def phone(value: str) -> Identifier:
    return Identifier(Kind.PHONE, value)


def people(config: IdentityConfig | None = None) -> tuple[World, str, str, str]:
    world = World(config)
    ana = world.apply(
        intake("e1", ["ana@example.com"], fields={"city": "Madrid"}, tags=("webinar",))
    ).contact.contact_id
    bob = world.apply(
        intake(
            "e2",
            ["bob@example.com", "bob2@example.com"],
            ["600111222"],
            fields={"company": "Bobco", "city": "Sevilla"},
            tags=("ebook", "webinar"),
            owner="juan",
            source="import",
            at=T0 + 5,
            offset=1,
        )
    ).contact.contact_id
    cid = world.apply(
        intake("e3", ["cid@example.com"], ["600111333"], tags=("vip",), at=T0 + 7, offset=2)
    ).contact.contact_id
    return world, ana, bob, cid


def merge(
    world: World, survivor: str, merged: list[str], at: int = T0 + 100, event_id: str = "m1"
) -> MergeDecision:
    decision = world.merge(survivor, merged, at, event_id)
    assert isinstance(decision, MergeDecision)
    world.check_identity_invariants()
    world.check_versions()
    return decision


def test_each_merged_id_ends_with_contact_merged_then_the_survivor_gets_one_per_id_in_order() -> (
    None
):
    world, ana, bob, cid = people()
    d = merge(world, ana, [cid, bob])
    assert [(c.contact_id, c.type, c.version) for c in d.changes[:4]] == [
        (cid, "contact.merged", 2),
        (bob, "contact.merged", 2),
        (ana, "contact.merged", 2),
        (ana, "contact.merged", 3),
    ]
    assert [c.data for c in d.changes_of(ana)[:2]] == [
        {"survivor_id": ana, "merged_id": cid},
        {"survivor_id": ana, "merged_id": bob},
    ]
    assert d.changes_of(bob)[-1].data == {"survivor_id": ana, "merged_id": bob}
    assert not d.rejected


def test_a_merged_contact_becomes_a_tombstone_that_points_to_the_survivor() -> None:
    world, ana, bob, _ = people()
    before = world.contacts[bob]
    d = merge(world, ana, [bob])
    (gone,) = d.merged
    assert gone == replace(
        tombstone(before, MERGED, merged_into=ana), version=2, updated_at=T0 + 100
    )
    snap = snapshot(gone)
    assert snap["state"] == "merged" and snap["merged_into"] == ana
    assert snap["emails"] == [] and snap["fields"] == {} and snap["source"] is None
    assert world.contacts[bob] == gone


def test_identifiers_are_the_survivors_then_each_merged_contacts_in_order_and_move_to_it() -> None:
    world, ana, bob, cid = people()
    d = merge(world, ana, [cid, bob])
    assert d.survivor.emails == (
        "ana@example.com",
        "cid@example.com",
        "bob@example.com",
        "bob2@example.com",
    )
    assert d.survivor.phones == ("+34600111333", "+34600111222")
    added = [
        (c.data["value"], c.data["primary"], c.data["merged_id"])
        for c in d.changes_of(ana)
        if c.type == "identifier.added"
    ]
    assert added == [
        ("cid@example.com", False, cid),
        ("+34600111333", True, cid),
        ("bob@example.com", False, bob),
        ("bob2@example.com", False, bob),
        ("+34600111222", False, bob),
    ]
    assert set(d.claimed) == {
        email("cid@example.com"),
        email("bob@example.com"),
        email("bob2@example.com"),
        phone("+34600111333"),
        phone("+34600111222"),
    }
    assert d.released == ()
    assert world.owners[email("bob2@example.com")] == ana


def test_identifiers_beyond_the_limits_are_dropped_limit_reached_and_released() -> None:
    world, ana, bob, cid = people(IdentityConfig(alt_email_limit=1, alt_phone_limit=0))
    d = merge(world, ana, [bob, cid])
    assert d.survivor.emails == ("ana@example.com", "bob@example.com")
    assert d.survivor.phones == ("+34600111222",)
    dropped = [
        (c.data["value"], c.data["reason"]) for c in d.changes if c.type == "identifier.dropped"
    ]
    assert dropped == [
        ("bob2@example.com", "limit_reached"),
        ("cid@example.com", "limit_reached"),
        ("+34600111333", "limit_reached"),
    ]
    assert set(d.released) == {
        email("bob2@example.com"),
        email("cid@example.com"),
        phone("+34600111333"),
    }
    assert email("cid@example.com") not in world.owners
    # A released identifier is free: it creates a new contact.
    assert world.apply(intake("e9", ["cid@example.com"], offset=9)).changes[0].type == (
        "contact.created"
    )


def test_fields_and_owner_keep_the_survivors_non_null_value_else_the_latest_merged_one() -> None:
    world, ana, bob, cid = people()
    world.command(UpdateContact("acme", cid, fields={"company": "Cidco"}), T0 + 50, "u-cid")
    world.command(UpdateContact("acme", cid, sets_owner=True, owner="eva"), T0 + 1, "u-own")
    d = merge(world, ana, [bob, cid])
    fields = d.survivor.field_map
    assert fields["city"].value == "Madrid"  # the survivor's
    assert fields["company"] == TimedValue("Cidco", T0 + 50, "u-cid")  # latest merged write
    assert d.survivor.owner == TimedValue("juan", T0 + 5, "e2")  # bob's is later than cid's
    updated = [c for c in d.changes_of(ana) if c.type == "contact.updated"]
    assert len(updated) == 1
    assert updated[0].data["changed"] == {
        "company": [None, "Cidco"],
        "owner": [None, "juan"],
        "tags": [["webinar"], ["webinar", "ebook", "vip"]],
    }


def test_a_field_the_survivor_cleared_takes_the_merged_value() -> None:
    world, ana, bob, _ = people()
    world.command(UpdateContact("acme", ana, fields={"city": None}), T0 + 50, "clear")
    d = merge(world, ana, [bob])
    assert d.survivor.field_map["city"].value == "Sevilla"


def test_a_field_cleared_everywhere_keeps_the_latest_clear() -> None:
    world, ana, bob, _ = people()
    world.command(UpdateContact("acme", ana, fields={"city": None}), T0 + 50, "c1")
    world.command(UpdateContact("acme", bob, fields={"city": None}), T0 + 60, "c2")
    d = merge(world, ana, [bob])
    assert d.survivor.field_map["city"] == TimedValue(None, T0 + 60, "c2")
    assert "city" not in snapshot(d.survivor)["fields"]


def test_source_and_created_at_are_the_survivors() -> None:
    world, ana, bob, _ = people()
    d = merge(world, ana, [bob])
    assert d.survivor.source == "import"
    assert d.survivor.created_at == world.contacts[ana].created_at == T0


def test_the_survivor_is_suspended_if_any_merged_contact_was_as_its_last_event() -> None:
    world, ana, bob, cid = people()
    world.command(SuspendContact("acme", cid), T0 + 1, "s")
    d = merge(world, ana, [bob, cid])
    assert [c.type for c in d.changes_of(ana)][-3:] == [
        "contact.updated",
        "activity_tier.changed",  # to `discarded` (SPEC §3.6), before the suspension (§2.6)
        "contact.suspended",
    ]
    assert d.survivor.suspended


def test_a_suspended_survivor_stays_suspended_without_a_new_event() -> None:
    world, ana, bob, _ = people()
    world.command(SuspendContact("acme", ana), T0 + 1, "s")
    d = merge(world, ana, [bob])
    assert d.survivor.suspended
    assert "contact.suspended" not in [c.type for c in d.changes]


def test_merge_event_order_merged_then_identifiers_then_one_update() -> None:
    world, ana, bob, _ = people(IdentityConfig(alt_email_limit=1))
    d = merge(world, ana, [bob])
    assert [c.type for c in d.changes_of(ana)] == [
        "contact.merged",
        "identifier.added",
        "identifier.dropped",
        "identifier.added",
        "contact.updated",
    ]


def test_later_intakes_naming_a_merged_contacts_identifier_apply_to_the_survivor() -> None:
    world, ana, bob, _ = people()
    merge(world, ana, [bob])
    d = world.apply(intake("e5", ["bob2@example.com"], tags=("later",), at=T0 + 200, offset=5))
    assert d.contact.contact_id == ana
    assert "later" in d.contact.tags


def test_a_merge_is_deterministic() -> None:
    world, ana, bob, cid = people()
    args = (world.contacts[ana], [world.contacts[bob], world.contacts[cid]], IdentityConfig())
    assert merge_contacts(*args, T0 + 100, CAUSE) == merge_contacts(*args, T0 + 100, CAUSE)


def test_the_survivors_at_never_goes_back() -> None:
    world, ana, bob, _ = people()
    d = merge(world, ana, [bob], at=T0 - 1000)
    assert {c.at for c in d.changes_of(ana)} == {T0}
    assert {c.at for c in d.changes_of(bob)} == {T0 + 5}


# ------------------------------------------------------------------ rejections


def _unchanged(world: World, d: MergeDecision, before: dict[str, object]) -> None:
    assert d.rejected
    assert d.merged == () and d.claimed == () and d.released == ()
    for contact_id, contact in before.items():
        now = world.contacts[contact_id]
        assert replace(now, version=contact.version, updated_at=contact.updated_at) == contact  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "case", ["survivor_among_merged", "repeated_id", "trashed_merged", "trashed_survivor"]
)
def test_invalid_merges_are_rejected_invalid_merge_on_the_survivor(case: str) -> None:
    world, ana, bob, cid = people()
    merged = {
        "survivor_among_merged": [bob, ana],
        "repeated_id": [bob, bob],
        "trashed_merged": [bob, cid],
        "trashed_survivor": [bob],
    }[case]
    if case == "trashed_merged":
        world.command(DeleteContact("acme", cid), T0 + 1, "d")
    if case == "trashed_survivor":
        world.command(DeleteContact("acme", ana), T0 + 1, "d")
    before = dict(world.contacts)
    d = merge(world, ana, merged)
    assert [(c.contact_id, c.type, c.data) for c in d.changes] == [
        (ana, "command.rejected", {"reason": "invalid_merge", "command": "merge_contacts"})
    ]
    assert d.changes[0].version == before[ana].version + 1
    _unchanged(world, d, before)


def test_merging_a_merged_id_is_rejected_merged_with_version_0() -> None:
    world, ana, bob, cid = people()
    merge(world, ana, [bob])
    before = dict(world.contacts)
    d = merge(world, cid, [bob], event_id="m2")
    assert [(c.contact_id, c.version, c.data["reason"]) for c in d.changes] == [(bob, 0, "merged")]
    _unchanged(world, d, before)
    as_survivor = merge(world, bob, [cid], event_id="m3")
    assert [(c.contact_id, c.version, c.data["reason"]) for c in as_survivor.changes] == [
        (bob, 0, "merged")
    ]


def test_merging_a_purged_id_is_rejected_unknown_contact_with_version_0() -> None:
    world, ana, bob, _ = people()
    purged = replace(tombstone(world.contacts[bob], PURGED), version=9)
    d = merge_contacts(world.contacts[ana], [purged], IdentityConfig(), T0 + 100, CAUSE)
    assert [(c.contact_id, c.version, c.data["reason"]) for c in d.changes] == [
        (bob, 0, "unknown_contact")
    ]
    assert d.survivor == world.contacts[ana]


def test_merging_an_unknown_id_is_rejected_unknown_contact_by_the_caller() -> None:
    world, ana, _, _ = people()
    rejections = world.merge(ana, ["ghost"], T0 + 100, "m1")
    assert isinstance(rejections, list)
    assert [(c.contact_id, c.version, c.data["reason"]) for c in rejections] == [
        ("ghost", 0, "unknown_contact")
    ]


def test_a_merge_across_tenants_is_an_error() -> None:
    world, ana, bob, _ = people()
    other = replace(world.contacts[bob], tenant_id="other")
    with pytest.raises(ValueError, match="tenant"):
        merge_contacts(world.contacts[ana], [other], IdentityConfig(), T0, CAUSE)


def test_survivor_state_after_merge_is_live() -> None:
    world, ana, bob, _ = people()
    assert merge(world, ana, [bob]).survivor.state == LIVE

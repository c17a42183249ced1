"""SPEC §2.4, §3.2.5 and §3.3: commands on one contact, the trash and the purge timer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stream.domain import commands
from stream.domain.commands import (
    DeleteContact,
    PurgeContact,
    RestoreContact,
    SuspendContact,
    UnsuspendContact,
    UpdateContact,
    apply_command,
    due_purge,
    fire_purge,
    next_due,
)
from stream.domain.contact import (
    MERGED,
    PURGED,
    TRASHED,
    Cause,
    Contact,
    TimedValue,
    snapshot,
    tombstone,
)
from stream.domain.identity import IdentityConfig
from stream.domain.normalize import Identifier, Kind, RejectedIdentifier, Rejection
from stream.domain.timefmt import format_ms
from tests.unit.world import T0, World, intake, types

DAY = 86_400_000
ANA = "ana@example.com"
PHONE = "+34600111222"


def email(value: str) -> Identifier:
    return Identifier(Kind.EMAIL, value)


def phone(value: str) -> Identifier:
    return Identifier(Kind.PHONE, value)


def ana_world(config: IdentityConfig | None = None, **kwargs: object) -> tuple[World, str]:
    world = World(config)
    kwargs.setdefault("fields", {"city": "Madrid", "company": "Acme"})
    kwargs.setdefault("tags", ("webinar",))
    ana = world.apply(intake("e1", [ANA], [PHONE], **kwargs)).contact  # type: ignore[arg-type]
    return world, ana.contact_id


def update(contact_id: str, **kwargs: object) -> UpdateContact:
    return UpdateContact("acme", contact_id, **kwargs)  # type: ignore[arg-type]


def reasons(decision: object) -> list[str]:
    return [c.data["reason"] for c in decision.changes]  # type: ignore[attr-defined]


# ------------------------------------------------------------------ transition table


def _live(world: World, cid: str) -> None:
    pass


def _suspended(world: World, cid: str) -> None:
    world.command(SuspendContact("acme", cid), T0 + 1, "setup-s")


def _trashed(world: World, cid: str) -> None:
    world.command(DeleteContact("acme", cid), T0 + 1, "setup-d")


def _purged(world: World, cid: str) -> None:
    _trashed(world, cid)
    world.command(PurgeContact("acme", cid), T0 + 2, "setup-p")


def _merged(world: World, cid: str) -> None:
    world.apply(intake("e-bob", ["bob@example.com"], offset=7))
    bob = world.owners[email("bob@example.com")]
    world.merge(bob, [cid], T0 + 1, "setup-m")


def _unknown(world: World, cid: str) -> None:
    del world.contacts[cid]
    world.owners.clear()
    world.published.clear()


SETUPS = {
    "live": _live,
    "suspended": _suspended,
    "trashed": _trashed,
    "purged": _purged,
    "merged": _merged,
    "unknown": _unknown,
}
COMMANDS = {
    "delete": lambda cid: DeleteContact("acme", cid),
    "restore": lambda cid: RestoreContact("acme", cid),
    "purge": lambda cid: PurgeContact("acme", cid),
    "suspend": lambda cid: SuspendContact("acme", cid),
    "unsuspend": lambda cid: UnsuspendContact("acme", cid),
    "update": lambda cid: update(cid, tags_add=("vip",)),
}
# (state, command) -> the one change type, or `rejected:<reason>`.
TABLE = {
    ("live", "delete"): "contact.deleted",
    ("live", "restore"): "rejected:not_trashed",
    ("live", "purge"): "rejected:not_trashed",
    ("live", "suspend"): "contact.suspended",
    ("live", "unsuspend"): "rejected:not_allowed",
    ("live", "update"): "contact.updated",
    ("suspended", "delete"): "contact.deleted",
    ("suspended", "restore"): "rejected:not_trashed",
    ("suspended", "purge"): "rejected:not_trashed",
    ("suspended", "suspend"): "rejected:not_allowed",
    ("suspended", "unsuspend"): "contact.unsuspended",
    ("suspended", "update"): "contact.updated",
    ("trashed", "delete"): "rejected:already_trashed",
    ("trashed", "restore"): "contact.restored",
    ("trashed", "purge"): "contact.purged",
    ("trashed", "suspend"): "rejected:trashed",
    ("trashed", "unsuspend"): "rejected:trashed",
    ("trashed", "update"): "rejected:trashed",
    **{("purged", c): "rejected:unknown_contact" for c in COMMANDS},
    **{("merged", c): "rejected:merged" for c in COMMANDS},
    **{("unknown", c): "rejected:unknown_contact" for c in COMMANDS},
}
UNVERSIONED = {"purged", "merged", "unknown"}


@pytest.mark.parametrize(("state", "command"), sorted(TABLE))
def test_command_transition_table_of_spec_3_3(state: str, command: str) -> None:
    world, cid = ana_world()
    SETUPS[state](world, cid)
    before = world.contacts.get(cid)
    d = world.command(COMMANDS[command](cid), T0 + 10, "cmd")
    expected = TABLE[(state, command)]
    # Suspension also moves the tier to or from `discarded` (SPEC §3.6): its own test.
    changes = [c for c in d.changes if c.type != "activity_tier.changed"]
    assert len(changes) == 1
    change = changes[0]
    if expected.startswith("rejected:"):
        assert change.type == "command.rejected"
        assert change.data == {
            "reason": expected.split(":")[1],
            "command": COMMANDS[command](cid).type,
        }
        assert d.claimed == () and d.released == ()
    else:
        assert change.type == expected
    if state in UNVERSIONED:
        # About no existing contact: version 0, outside the count, nothing stored changes.
        assert change.version == 0
        assert change.contact_id == cid
        assert d.contact == before
    else:
        assert before is not None
        versions = [c.version for c in d.changes]
        assert versions == list(range(before.version + 1, before.version + 1 + len(versions)))
        assert d.contact is not None and d.contact.version == versions[-1]
    world.check_identity_invariants()
    world.check_versions()


def test_unknown_contact_rejection_has_a_deterministic_change_id_and_no_contact() -> None:
    a = apply_command(
        None, DeleteContact("acme", "ghost"), IdentityConfig(), T0, Cause("command", "x")
    )
    b = apply_command(
        None, DeleteContact("acme", "ghost"), IdentityConfig(), T0, Cause("command", "x")
    )
    assert a.contact is None
    assert a.changes == b.changes
    assert a.changes[0].at == T0
    assert (
        a.changes[0].change_id
        != apply_command(
            None, DeleteContact("acme", "other"), IdentityConfig(), T0, Cause("command", "x")
        )
        .changes[0]
        .change_id
    )


def test_a_contact_that_does_not_match_the_command_id_is_an_error() -> None:
    world, cid = ana_world()
    with pytest.raises(ValueError, match="contact_id"):
        apply_command(
            world.contacts[cid],
            DeleteContact("acme", "other"),
            IdentityConfig(),
            T0,
            Cause("command", "x"),
        )


# ------------------------------------------------------------------ update_contact


def test_update_fields_write_by_last_writer_and_a_null_clears_the_field() -> None:
    world, cid = ana_world()
    d = world.command(update(cid, fields={"city": "Bilbao", "company": None}), T0 + 10, "u1")
    assert types(d) == ["contact.updated"]
    assert d.changes[0].data == {
        "changed": {"city": ["Madrid", "Bilbao"], "company": ["Acme", None]}
    }
    assert d.contact is not None
    assert d.contact.field_map["company"] == TimedValue(None, T0 + 10, "u1")
    assert snapshot(d.contact)["fields"] == {"city": "Bilbao"}


def test_update_field_write_older_than_the_stored_value_loses_whatever_the_arrival_order() -> None:
    world, cid = ana_world()
    world.command(update(cid, fields={"city": "Bilbao"}), T0 + 10, "u1")
    d = world.command(update(cid, fields={"city": "Sevilla"}), T0 + 5, "u0")
    assert types(d) == []
    assert d.contact is not None and d.contact.field_map["city"].value == "Bilbao"


def test_update_clear_is_a_timed_write_that_an_older_intake_arriving_later_cannot_undo() -> None:
    world, cid = ana_world()
    world.command(update(cid, fields={"city": None}), T0 + 10, "u1")
    d = world.apply(intake("e2", [ANA], fields={"city": "Sevilla"}, at=T0 + 5, offset=1))
    assert types(d) == []
    newer = world.apply(intake("e3", [ANA], fields={"city": "Cadiz"}, at=T0 + 11, offset=2))
    assert newer.changes[0].data["changed"] == {"city": [None, "Cadiz"]}


def test_update_a_value_of_another_type_is_a_change() -> None:
    world, cid = ana_world(fields={"score": 1})
    d = world.command(update(cid, fields={"score": True}), T0 + 10, "u1")
    assert d.changes[0].data["changed"] == {"score": [1, True]}


def test_update_rewriting_the_same_value_emits_nothing() -> None:
    world, cid = ana_world()
    d = world.command(update(cid, fields={"city": "Madrid"}, tags_add=("webinar",)), T0 + 10, "u1")
    assert types(d) == []
    assert d.contact is not None and d.contact.field_map["city"].at == T0 + 10


def test_update_tags_add_then_remove_in_processing_order_not_by_time() -> None:
    world, cid = ana_world()
    d = world.command(update(cid, tags_add=("vip", "b2b"), tags_remove=("webinar",)), T0 + 10, "u1")
    assert d.changes[0].data["changed"] == {"tags": [["webinar"], ["vip", "b2b"]]}
    # An older command processed later still applies: tags are not time-ordered.
    d = world.command(update(cid, tags_remove=("vip",), tags_add=("old",)), T0, "u0")
    assert d.contact is not None and d.contact.tags == ("b2b", "old")
    both = world.command(update(cid, tags_add=("x",), tags_remove=("x",)), T0 + 20, "u2")
    assert types(both) == []


def test_update_owner_is_a_timed_write_that_null_clears_and_absence_leaves() -> None:
    world, cid = ana_world(owner="maria")
    d = world.command(update(cid, sets_owner=True, owner="juan"), T0 + 10, "u1")
    assert d.changes[0].data == {"changed": {"owner": ["maria", "juan"]}}
    assert types(world.command(update(cid, sets_owner=True, owner="old"), T0 + 5, "u0")) == []
    assert types(world.command(update(cid, owner="ignored"), T0 + 20, "u2")) == []
    d = world.command(update(cid, sets_owner=True, owner=None), T0 + 30, "u3")
    assert d.changes[0].data == {"changed": {"owner": ["juan", None]}}
    assert d.contact is not None and snapshot(d.contact)["owner"] is None


def test_update_adds_identifiers_the_first_of_a_kind_becoming_primary() -> None:
    world = World()
    cid = world.apply(intake("e1", [], [PHONE])).contact.contact_id
    d = world.command(update(cid, add_emails=("a@example.com", "b@example.com")), T0 + 1, "u1")
    assert [(c.type, c.data["value"], c.data["primary"]) for c in d.changes] == [
        ("identifier.added", "a@example.com", True),
        ("identifier.added", "b@example.com", False),
    ]
    assert d.claimed == (email("a@example.com"), email("b@example.com"))
    assert "match" not in d.changes[0].data
    world.check_identity_invariants()


def test_update_add_owned_by_another_contact_is_dropped_with_its_owner() -> None:
    world, cid = ana_world()
    bob = world.apply(intake("e2", ["bob@example.com"], offset=1)).contact.contact_id
    d = world.command(update(cid, add_emails=("bob@example.com",)), T0 + 1, "u1")
    assert [c.data for c in d.changes] == [
        {"kind": "email", "value": "bob@example.com", "reason": "owned_by_other", "owner_id": bob}
    ]
    assert d.claimed == ()
    world.check_identity_invariants()


def test_update_add_beyond_the_limit_is_dropped_limit_reached() -> None:
    world, cid = ana_world(IdentityConfig(alt_email_limit=1))
    d = world.command(update(cid, add_emails=("b@example.com", "c@example.com")), T0 + 1, "u1")
    assert [(c.type, c.data["value"]) for c in d.changes] == [
        ("identifier.added", "b@example.com"),
        ("identifier.dropped", "c@example.com"),
    ]
    assert d.changes[1].data["reason"] == "limit_reached"
    assert d.claimed == (email("b@example.com"),)


def test_update_lists_identifiers_normalization_left_out_as_dropped() -> None:
    world, cid = ana_world()
    bad = RejectedIdentifier(Kind.EMAIL, "nope", Rejection.INVALID)
    d = world.command(update(cid, rejected=(bad,)), T0 + 1, "u1")
    assert [c.data for c in d.changes] == [{"kind": "email", "value": "nope", "reason": "invalid"}]


def test_update_remove_emits_identifier_removed_and_releases_it() -> None:
    world, cid = ana_world()
    d = world.command(update(cid, remove_emails=(ANA,), remove_phones=("+34999",)), T0 + 1, "u1")
    assert [(c.type, c.data) for c in d.changes] == [
        ("identifier.removed", {"kind": "email", "value": ANA})
    ]
    assert d.released == (email(ANA),)
    assert d.contact is not None and d.contact.emails == ()
    world.check_identity_invariants()
    # Released: a later intake with it creates a new contact.
    new = world.apply(intake("e5", [ANA], offset=5))
    assert types(new) == ["contact.created"]


def test_update_removing_the_primary_makes_the_next_one_primary() -> None:
    world = World()
    cid = world.apply(intake("e1", ["a@example.com", "b@example.com"])).contact.contact_id
    d = world.command(update(cid, remove_emails=("a@example.com",)), T0 + 1, "u1")
    assert d.contact is not None and d.contact.emails == ("b@example.com",)


def test_update_removes_before_adds_so_a_full_contact_can_swap_an_identifier() -> None:
    world, cid = ana_world(IdentityConfig(alt_email_limit=0))
    d = world.command(
        update(cid, add_emails=("new@example.com",), remove_emails=(ANA,)), T0 + 1, "u1"
    )
    assert types(d) == ["identifier.removed", "identifier.added"]
    assert d.contact is not None and d.contact.emails == ("new@example.com",)
    assert d.released == (email(ANA),) and d.claimed == (email("new@example.com"),)
    world.check_identity_invariants()


def test_update_removing_and_adding_one_identifier_keeps_it_owned_and_moves_it_last() -> None:
    world = World()
    cid = world.apply(intake("e1", ["a@example.com", "b@example.com"])).contact.contact_id
    d = world.command(
        update(cid, remove_emails=("a@example.com",), add_emails=("a@example.com",)), T0 + 1, "u1"
    )
    assert types(d) == ["identifier.removed", "identifier.added"]
    assert d.contact is not None and d.contact.emails == ("b@example.com", "a@example.com")
    assert d.released == ()
    assert d.claimed == (email("a@example.com"),)
    world.check_identity_invariants()


def test_update_primary_reorders_the_identifiers_in_one_contact_updated() -> None:
    world = World()
    cid = world.apply(
        intake("e1", ["a@example.com", "b@example.com"], ["600111222", "600111333"])
    ).contact.contact_id
    d = world.command(
        update(cid, primary_email="b@example.com", primary_phone="+34600111333", tags_add=("x",)),
        T0 + 1,
        "u1",
    )
    assert types(d) == ["contact.updated"]
    assert d.changes[0].data["changed"] == {
        "primary_email": ["a@example.com", "b@example.com"],
        "primary_phone": ["+34600111222", "+34600111333"],
        "tags": [[], ["x"]],
    }
    assert d.contact is not None
    assert d.contact.emails == ("b@example.com", "a@example.com")
    assert d.contact.phones == ("+34600111333", "+34600111222")
    same = world.command(update(cid, primary_email="b@example.com"), T0 + 2, "u2")
    assert types(same) == []


def test_update_primary_may_be_an_identifier_the_same_command_adds() -> None:
    world, cid = ana_world()
    d = world.command(
        update(cid, add_emails=("new@example.com",), primary_email="new@example.com"), T0 + 1, "u"
    )
    assert types(d) == ["identifier.added", "contact.updated"]
    assert d.contact is not None and d.contact.emails == ("new@example.com", ANA)


@pytest.mark.parametrize(
    "command",
    [
        {"primary_email": "other@example.com"},
        {"primary_email": ANA, "remove_emails": (ANA,)},
        {"primary_phone": "+34999999999", "tags_add": ("x",)},
    ],
)
def test_update_primary_not_among_the_contacts_identifiers_is_rejected_not_allowed(
    command: dict[str, object],
) -> None:
    world, cid = ana_world()
    before = world.contacts[cid]
    d = world.command(update(cid, **command), T0 + 1, "u")
    assert reasons(d) == ["not_allowed"]
    assert d.contact is not None
    assert replace(d.contact, version=before.version, updated_at=before.updated_at) == before


def test_update_primary_whose_add_was_dropped_is_ignored() -> None:
    world, cid = ana_world()
    world.apply(intake("e2", ["bob@example.com"], offset=1))
    d = world.command(
        update(cid, add_emails=("bob@example.com",), primary_email="bob@example.com"), T0 + 1, "u"
    )
    assert types(d) == ["identifier.dropped"]


def test_update_yields_identifier_events_then_one_contact_updated() -> None:
    world, cid = ana_world()
    bad = RejectedIdentifier(Kind.PHONE, "12", Rejection.INVALID)
    d = world.command(
        update(
            cid,
            remove_phones=(PHONE,),
            rejected=(bad,),
            add_emails=("z@example.com",),
            fields={"city": "Vigo"},
            tags_add=("t",),
            sets_owner=True,
            owner="maria",
        ),
        T0 + 1,
        "u",
    )
    assert types(d) == [
        "identifier.removed",
        "identifier.dropped",
        "identifier.added",
        "contact.updated",
    ]
    assert [c.version for c in d.changes] == [2, 3, 4, 5]
    assert set(d.changes[-1].data["changed"]) == {"city", "tags", "owner"}


def test_update_applies_to_a_suspended_contact() -> None:
    world, cid = ana_world()
    world.command(SuspendContact("acme", cid), T0 + 1, "s")
    d = world.command(update(cid, tags_add=("x",)), T0 + 2, "u")
    assert types(d) == ["contact.updated"]
    assert d.contact is not None and d.contact.suspended


def test_update_needs_an_event_id_for_its_timed_writes() -> None:
    world, cid = ana_world()
    with pytest.raises(ValueError, match="event_id"):
        apply_command(
            world.contacts[cid],
            update(cid, tags_add=("x",)),
            IdentityConfig(),
            T0,
            Cause("timer", None),
        )


def test_change_at_never_decreases_even_for_an_older_command() -> None:
    world, cid = ana_world()
    world.command(update(cid, tags_add=("x",)), T0 + 100, "u1")
    d = world.command(update(cid, tags_add=("y",)), T0 + 50, "u0")
    assert d.changes[0].at == T0 + 100


# ------------------------------------------------------------------ trash and purge


def test_delete_trashes_keeping_data_and_identifiers_until_retention_days() -> None:
    world, cid = ana_world(IdentityConfig(trash_retention_days=7))
    before = world.contacts[cid]
    d = world.command(DeleteContact("acme", cid), T0 + 10, "d")
    assert types(d) == ["contact.deleted"]
    assert d.changes[0].data == {"purge_after": format_ms(T0 + 10 + 7 * DAY)}
    assert d.contact is not None
    assert d.contact.state == TRASHED
    assert d.contact.deleted_at == T0 + 10
    assert d.contact.purge_after == T0 + 10 + 7 * DAY
    assert d.contact.emails == before.emails and d.contact.fields == before.fields
    assert d.released == ()
    world.check_identity_invariants()


def test_each_deletion_restarts_the_purge_clock() -> None:
    world, cid = ana_world()
    world.command(DeleteContact("acme", cid), T0 + 10, "d1")
    world.command(RestoreContact("acme", cid), T0 + 5 * DAY, "r")
    d = world.command(DeleteContact("acme", cid), T0 + 6 * DAY, "d2")
    assert d.contact is not None and d.contact.purge_after == T0 + 36 * DAY
    again = world.command(DeleteContact("acme", cid), T0 + 7 * DAY, "d3")
    assert reasons(again) == ["already_trashed"]
    assert again.contact is not None and again.contact.purge_after == T0 + 36 * DAY


def test_deletion_purge_after_is_the_later_of_retention_and_the_slot_hold_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, cid = ana_world()
    monkeypatch.setattr(commands, "slot_hold_end", lambda contact, config: T0 + 40 * DAY)
    d = world.command(DeleteContact("acme", cid), T0, "d")
    assert d.contact is not None and d.contact.purge_after == T0 + 40 * DAY
    monkeypatch.setattr(commands, "slot_hold_end", lambda contact, config: T0 + 10 * DAY)
    world.command(RestoreContact("acme", cid), T0 + 1, "r")
    d = world.command(DeleteContact("acme", cid), T0 + 2, "d2")
    assert d.contact is not None and d.contact.purge_after == T0 + 2 + 30 * DAY


def test_restore_brings_the_contact_back_as_it_was() -> None:
    world, cid = ana_world()
    before = world.contacts[cid]
    world.command(DeleteContact("acme", cid), T0 + 1, "d")
    d = world.command(RestoreContact("acme", cid), T0 + 2, "r")
    assert types(d) == ["contact.restored"]
    assert d.changes[0].data == {}
    assert d.contact is not None
    assert replace(d.contact, version=before.version, updated_at=before.updated_at) == before
    assert next_due(d.contact) is None


def test_purge_contact_without_a_hold_purges_now_releasing_every_identifier() -> None:
    world, cid = ana_world(owner="maria")
    world.command(SuspendContact("acme", cid), T0 + 1, "s")
    world.command(DeleteContact("acme", cid), T0 + 2, "d")
    trashed = world.contacts[cid]
    d = world.command(PurgeContact("acme", cid), T0 + 3, "p")
    assert types(d) == ["contact.purged"]
    assert d.changes[0].data == {}
    assert set(d.released) == {email(ANA), phone(PHONE)}
    assert world.owners == {}
    # The tombstone keeps ids, times and state only.
    assert d.contact == Contact(
        tenant_id="acme",
        contact_id=cid,
        source=None,
        created_at=trashed.created_at,
        updated_at=T0 + 3,
        version=trashed.version + 1,
        state=PURGED,
        deleted_at=T0 + 2,
    )
    world.check_identity_invariants()


def test_purge_contact_inside_the_hold_moves_purge_after_to_its_end_with_contact_updated() -> None:
    # A form intake at T0 activates: the slot's hold ends at T0 + 30 days.
    world, cid = ana_world(source="form")
    world.command(DeleteContact("acme", cid), T0 + DAY, "d")
    assert world.contacts[cid].purge_after == T0 + 31 * DAY
    d = world.command(PurgeContact("acme", cid), T0 + 2 * DAY, "p")
    assert types(d) == ["contact.updated"]
    assert d.changes[0].data == {
        "changed": {"purge_after": [format_ms(T0 + 31 * DAY), format_ms(T0 + 30 * DAY)]}
    }
    assert d.released == ()
    assert d.contact is not None and d.contact.purge_after == T0 + 30 * DAY
    assert types(world.command(PurgeContact("acme", cid), T0 + 3 * DAY, "p2")) == []
    assert world.quota.used == 1  # a trashed marketing contact keeps its slot (SPEC §3.4.7)
    # The purge fires at the hold's end, and the slot goes with the contact.
    (fired,) = world.tick(T0 + 30 * DAY)
    assert types(fired) == ["contact.purged"] and fired.changes[0].at == T0 + 30 * DAY
    assert world.quota.used == 0


def test_purge_timer_is_due_exactly_at_purge_after() -> None:
    world, cid = ana_world()
    assert next_due(world.contacts[cid]) is None
    world.command(DeleteContact("acme", cid), T0, "d")
    trashed = world.contacts[cid]
    due = T0 + 30 * DAY
    assert next_due(trashed) == due
    assert not due_purge(trashed, due - 1)
    assert due_purge(trashed, due)
    assert fire_purge(trashed, due - 1).changes == ()


def test_purge_timer_fires_with_a_timer_cause_and_the_due_time_even_when_overdue() -> None:
    world, cid = ana_world()
    world.command(DeleteContact("acme", cid), T0, "d")
    due = T0 + 30 * DAY
    on_time = fire_purge(world.contacts[cid], due)
    late = fire_purge(world.contacts[cid], due + 5 * DAY)
    assert on_time == late
    change = late.changes[0]
    assert change.type == "contact.purged"
    assert change.at == due
    assert change.cause == Cause("timer", None)
    assert change.as_json()["cause"] == {"kind": "timer", "event_id": None}
    assert set(late.released) == {email(ANA), phone(PHONE)}
    world.tick(due)
    assert world.contacts[cid].state == PURGED
    assert world.owners == {}
    world.check_versions()


def test_a_stale_purge_timer_after_restore_changes_nothing() -> None:
    world, cid = ana_world()
    world.command(DeleteContact("acme", cid), T0, "d")
    world.command(RestoreContact("acme", cid), T0 + 1, "r")
    live = world.contacts[cid]
    assert fire_purge(live, T0 + 60 * DAY) == commands.CommandDecision(live, ())
    assert not due_purge(live, T0 + 60 * DAY)


def test_tombstones_have_no_due_purge() -> None:
    world, cid = ana_world()
    ana = world.contacts[cid]
    for state in (PURGED, MERGED):
        gone = replace(tombstone(ana, state), purge_after=T0)
        assert next_due(gone) is None and not due_purge(gone, T0 + DAY)


# ------------------------------------------------------------------ suspension


def test_suspend_and_unsuspend_toggle_the_flag_with_their_events() -> None:
    world, cid = ana_world()
    d = world.command(SuspendContact("acme", cid), T0 + 1, "s")
    # No activity yet: `inactive`, and `discarded` while suspended (SPEC §3.6).
    assert types(d) == ["activity_tier.changed", "contact.suspended"]
    assert d.changes[0].data == {"from": "inactive", "to": "discarded"} and d.changes[1].data == {}
    assert d.contact is not None and d.contact.suspended
    assert snapshot(d.contact)["suspended"] is True
    assert snapshot(d.contact)["engagement"]["tier"] == "discarded"
    d = world.command(UnsuspendContact("acme", cid), T0 + 2, "u")
    assert types(d) == ["contact.unsuspended", "activity_tier.changed"]
    assert d.changes[1].data == {"from": "discarded", "to": "inactive"}
    assert d.contact is not None and not d.contact.suspended


def test_a_trashed_suspended_contact_stays_suspended_when_restored() -> None:
    world, cid = ana_world()
    world.command(SuspendContact("acme", cid), T0 + 1, "s")
    world.command(DeleteContact("acme", cid), T0 + 2, "d")
    d = world.command(RestoreContact("acme", cid), T0 + 3, "r")
    assert d.contact is not None and d.contact.suspended

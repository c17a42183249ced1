"""SPEC §4 filter indexes: the entries a contact's next snapshot adds and removes.

The read model's Lua script removes a contact from every entry its stored
snapshot had and the new one has not; these are those differences, computed
by the same pure functions that name the script's KEYS.
"""

from __future__ import annotations

from typing import Any

import pytest

from stream.projection.index import (
    created_ms,
    field_index_value,
    filter_names,
    index_changes,
    index_names,
)

FIELDS = ("city", "company")


def snap(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "contact_id": "c1",
        "tenant_id": "acme",
        "version": 3,
        "created_at": "2026-11-22T10:00:00.000Z",
        "state": "live",
        "source": "form",
        "fields": {"first_name": "Ana", "city": "Madrid", "company": "ACME"},
        "tags": ["webinar", "vip"],
        "owner": "olga",
        "lists": [],
        "marketing": {"active": True},
        "engagement": {"campaign_status": "active", "tier": "new"},
    }
    return {**base, **over}


BASE = snap()
ALL_OF_BASE = {
    "marketing",
    "status:active",
    "tier:new",
    "source:form",
    "owner:olga",
    "tag:webinar",
    "tag:vip",
    "field:city:madrid",
    "field:company:acme",
    "created",
}


@pytest.mark.parametrize(
    ("before", "after", "added", "removed"),
    [
        pytest.param(None, BASE, ALL_OF_BASE, set(), id="created"),
        pytest.param(BASE, BASE, set(), set(), id="same snapshot"),
        pytest.param(
            BASE, snap(tags=["webinar", "vip", "Promo"]), {"tag:Promo"}, set(), id="tag added"
        ),
        pytest.param(BASE, snap(tags=["vip"]), set(), {"tag:webinar"}, id="tag removed"),
        pytest.param(BASE, snap(owner="pablo"), {"owner:pablo"}, {"owner:olga"}, id="owner"),
        pytest.param(BASE, snap(owner=None), set(), {"owner:olga"}, id="owner cleared"),
        pytest.param(
            BASE,
            snap(fields={"city": "Sevilla", "company": "ACME"}),
            {"field:city:sevilla"},
            {"field:city:madrid"},
            id="field edited",
        ),
        pytest.param(
            BASE, snap(fields={"city": "MADRID", "company": "ACME"}), set(), set(), id="case only"
        ),
        pytest.param(
            BASE, snap(fields={"company": "ACME"}), set(), {"field:city:madrid"}, id="field cleared"
        ),
        pytest.param(
            BASE,
            snap(fields={"first_name": "Eva", "city": "Madrid", "company": "ACME"}),
            set(),
            set(),
            id="field not filterable",
        ),
        pytest.param(
            BASE,
            snap(lists=["news"], engagement={"campaign_status": "engaged", "tier": "new"}),
            {"list:news", "status:engaged"},
            {"status:active"},
            id="list and status",
        ),
        pytest.param(BASE, snap(state="trashed"), {"trash"}, ALL_OF_BASE, id="trashed"),
        pytest.param(snap(state="trashed"), BASE, ALL_OF_BASE, {"trash"}, id="restored"),
        pytest.param(
            snap(state="trashed"),
            {**snap(state="purged", source=None, tags=[], fields={}, owner=None)},
            set(),
            {"trash"},
            id="purged from trash",
        ),
        pytest.param(
            BASE,
            snap(state="merged", source=None, tags=[], fields={}, owner=None, merged_into="c2"),
            set(),
            ALL_OF_BASE,
            id="merged away",
        ),
        pytest.param(
            BASE,
            snap(tags=["webinar", "vip", "imported"], fields={"city": "Madrid", "company": "Foo"}),
            {"tag:imported", "field:company:foo"},
            {"field:company:acme"},
            id="survivor takes a merged contact's tag and field",
        ),
    ],
)
def test_a_snapshot_adds_and_removes_exactly_these_index_entries(
    before: dict[str, Any] | None,
    after: dict[str, Any],
    added: set[str],
    removed: set[str],
) -> None:
    assert index_changes(before, after, FIELDS) == (added, removed)


@pytest.mark.parametrize(
    ("value", "indexed"),
    [
        ("Madrid", "madrid"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # case-folded, not just lower-cased
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        ("", ""),
        (None, None),
        ("x" * 256, "x" * 256),
        ("x" * 257, None),
    ],
)
def test_field_index_value_is_json_text_case_folded_and_bounded(
    value: Any, indexed: str | None
) -> None:
    assert field_index_value(value) == indexed


def test_only_the_tenants_filterable_fields_are_indexed() -> None:
    names = filter_names(BASE, ["first_name", "city"])
    assert "field:first_name:ana" in names and "field:city:madrid" in names
    assert not any(n.startswith("field:company:") for n in names)


def test_created_is_last_and_scored_by_created_at() -> None:
    assert index_names(BASE, FIELDS)[-1] == "created"
    assert created_ms(BASE) == 1_795_341_600_000
    # A suspended contact stays in its sets (SPEC §4).
    assert set(index_names(snap(suspended=True), FIELDS)) == ALL_OF_BASE

"""SPEC §3.7: the per-worker due index fires each contact's next due time once, in order."""

from __future__ import annotations

from stream.tables.due_index import DueIndex


def test_due_contacts_pop_in_due_order_and_leave_the_index() -> None:
    index = DueIndex()
    index.schedule("a", 30)
    index.schedule("b", 10)
    index.schedule("c", 20)
    assert index.pop_due(25) == [("b", 10), ("c", 20)]
    assert index.pop_due(25) == []
    assert index.pop_due(30) == [("a", 30)]


def test_a_rescheduled_or_cleared_contact_does_not_fire_its_stale_time() -> None:
    index = DueIndex()
    index.schedule("a", 10)
    index.schedule("a", 50)
    index.schedule("b", 10)
    index.schedule("b", None)
    assert index.pop_due(40) == []
    assert index.pop_due(50) == [("a", 50)]


def test_rebuild_replaces_everything() -> None:
    index = DueIndex()
    index.schedule("old", 1)
    index.rebuild([("a", 5), ("b", None)])
    assert len(index) == 1
    assert index.pop_due(10) == [("a", 5)]

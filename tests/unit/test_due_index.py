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


def test_rescheduling_often_keeps_the_heap_proportional_to_the_contacts() -> None:
    index = DueIndex()
    for n in range(100):
        index.schedule(f"c{n}", 1_000)
    for step in range(20_000):
        index.schedule(f"c{step % 100}", 2_000 + step)
    assert len(index) == 100
    assert index.heap_size <= 2 * 100 + 1024 + 1
    fired = index.pop_due(10**9)
    assert [key for key, _ in fired] == [f"c{n}" for n in range(100)]
    assert [due for _, due in fired] == [2_000 + 19_900 + n for n in range(100)]


def test_changes_made_while_a_rebuild_scans_win_over_what_the_scan_read() -> None:
    index = DueIndex()
    index.schedule("fired", 5)
    index.begin_rebuild()
    index.schedule("moved", 70)  # the scan may have read it before or after: 60
    index.schedule("cleared", None)  # a write that leaves nothing due
    index.schedule("new", 80)  # written after the scan passed its key
    assert index.pop_due(10) == [("fired", 5)]  # its tick is on its way
    index.finish_rebuild(
        [("fired", 5), ("moved", 60), ("cleared", 40), ("kept", 50), ("none", None)]
    )
    assert len(index) == 3
    assert index.pop_due(10**9) == [("kept", 50), ("moved", 70), ("new", 80)]


def test_a_rebuild_started_again_forgets_the_changes_before_its_start() -> None:
    index = DueIndex()
    index.begin_rebuild()
    index.schedule("old", 30)  # recorded by the first scan, which is abandoned
    index.begin_rebuild()  # the second scan reads the table after that write
    index.finish_rebuild([("other", 20)])
    assert index.pop_due(10**9) == [("other", 20)]
    index.schedule("later", 40)  # no rebuild running: nothing is recorded
    index.finish_rebuild([])
    assert index.pop_due(10**9) == []

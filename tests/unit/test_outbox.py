"""stream/domain/outbox.py: the change relay publishes each change of the outbox once."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from stream.domain.outbox import UNVERSIONED, Outgoing, unpublished


def change(contact: str, version: int, change_id: str | None = None) -> Outgoing:
    return Outgoing(contact.encode(), version, change_id or f"{contact}-{version}")


def test_new_versions_are_published_and_marked_with_the_contacts_highest() -> None:
    batch = [change("a", 1), change("b", 1), change("a", 2), change("a", 3)]
    keep, marks = unpublished(batch, {})
    assert keep == [0, 1, 2, 3]
    assert marks == {b"a": 3, b"b": 1}


def test_a_replayed_copy_at_or_below_the_published_version_is_dropped() -> None:
    batch = [change("a", 2), change("a", 3), change("a", 4), change("b", 7)]
    keep, marks = unpublished(batch, {b"a": 3, b"b": 9})
    assert keep == [2]
    assert marks == {b"a": 4}


def test_a_copy_inside_one_batch_is_dropped() -> None:
    # A worker killed after sending versions 1..2 replays them right behind.
    batch = [change("a", 1), change("a", 2), change("a", 1), change("a", 2), change("a", 3)]
    keep, marks = unpublished(batch, {})
    assert keep == [0, 1, 4]
    assert marks == {b"a": 3}


def test_unversioned_events_are_told_apart_by_their_change_id() -> None:
    # `command.rejected` for an unknown id: version 0, outside the count.
    first, second = change("x", 0, "id-1"), change("x", 0, "id-2")
    keep, marks = unpublished([first, second, first], {UNVERSIONED + b"id-2": 0})
    assert keep == [0]
    assert marks == {UNVERSIONED + b"id-1": 0}


def test_unversioned_events_do_not_touch_the_contacts_count() -> None:
    keep, marks = unpublished([change("a", 0, "r"), change("a", 1)], {b"a": 0})
    assert keep == [0, 1]
    assert marks == {UNVERSIONED + b"r": 0, b"a": 1}


@given(
    st.dictionaries(st.sampled_from("abcde"), st.integers(1, 8), min_size=1),
    st.integers(0, 2**32),
    st.integers(1, 6),
)
def test_batches_with_replays_publish_each_change_exactly_once(
    lengths: dict[str, int], seed: int, cuts: int
) -> None:
    """Each contact's versions in order, with replays of earlier runs spliced in,
    cut into batches: the published sequence is every change once, in order."""
    rng = random.Random(seed)
    stream: list[Outgoing] = []
    sent = dict.fromkeys(lengths, 0)
    while any(sent[c] < n for c, n in lengths.items()):
        contact = rng.choice([c for c, n in lengths.items() if sent[c] < n])
        if sent[contact] and rng.random() < 0.3:
            start = rng.randint(1, sent[contact])  # a replay from an older offset
            stream += [change(contact, v) for v in range(start, sent[contact] + 1)]
        sent[contact] += 1
        stream.append(change(contact, sent[contact]))
    bounds = sorted(rng.sample(range(len(stream) + 1), min(cuts, len(stream) + 1)))
    published: dict[bytes, int] = {}
    out: list[Outgoing] = []
    for start, end in zip([0, *bounds], [*bounds, len(stream)], strict=True):
        batch = stream[start:end]
        keep, marks = unpublished(batch, published)
        out += [batch[i] for i in keep]
        published.update(marks)
    assert sorted(out) == sorted(change(c, v) for c, n in lengths.items() for v in range(1, n + 1))
    for contact in lengths:
        versions = [o.version for o in out if o.key == contact.encode()]
        assert versions == sorted(versions)

"""Time rules (SPEC §2.1, §2.6), the contact table codec and projection batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.contact import Contact, TimedValue, tombstone
from stream.domain.timefmt import MAX_FUTURE_MS, format_ms, logical_time, to_ms
from stream.projection.read_model import latest_per_contact
from stream.tables.codec import decode_contact, encode_contact

BROKER = 1_764_000_000_000


def test_missing_occurred_at_takes_the_broker_timestamp_unclamped() -> None:
    assert logical_time(None, BROKER) == (BROKER, False)


def test_occurred_at_up_to_five_minutes_ahead_of_the_broker_is_kept() -> None:
    assert logical_time(BROKER + MAX_FUTURE_MS, BROKER) == (BROKER + MAX_FUTURE_MS, False)
    assert logical_time(BROKER - 10**9, BROKER) == (BROKER - 10**9, False)


def test_occurred_at_more_than_five_minutes_ahead_becomes_the_broker_timestamp_and_clamped() -> (
    None
):
    assert logical_time(BROKER + MAX_FUTURE_MS + 1, BROKER) == (BROKER, True)


def test_output_times_are_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 22, 11, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=1)))
    assert format_ms(to_ms(moment)) == "2026-11-22T10:00:00.123Z"
    assert format_ms(to_ms(datetime(5, 1, 2, tzinfo=UTC))) == "0005-01-02T00:00:00.000Z"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
timed = st.builds(TimedValue, scalars, st.integers(0, 2**45), st.text(min_size=1, max_size=10))
contacts = st.builds(
    Contact,
    tenant_id=st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True),
    contact_id=st.uuids().map(str),
    source=st.sampled_from(["form", "import", "manual", None]),
    created_at=st.integers(0, 2**45),
    updated_at=st.integers(0, 2**45),
    version=st.integers(0, 10_000),
    emails=st.lists(st.emails(), max_size=3).map(tuple),
    phones=st.lists(st.from_regex(r"\+[1-9][0-9]{7,12}", fullmatch=True), max_size=3).map(tuple),
    fields=st.dictionaries(st.text(min_size=1, max_size=8), timed, max_size=4).map(
        lambda d: tuple(sorted(d.items()))
    ),
    tags=st.lists(st.text(max_size=8), max_size=3, unique=True).map(tuple),
    owner=st.none() | timed,
    state=st.sampled_from(["live", "trashed", "purged", "merged"]),
    lists=st.lists(st.text(max_size=8), max_size=2, unique=True).map(tuple),
    suspended=st.booleans(),
    deleted_at=st.none() | st.integers(0, 2**45),
    merged_into=st.none() | st.uuids().map(str),
    purge_after=st.none() | st.integers(0, 2**45),
)


@given(contacts)
def test_contact_table_codec_round_trips_every_contact(contact: Contact) -> None:
    assert decode_contact(encode_contact(contact)) == contact


def test_contact_table_codec_reads_values_written_before_purge_after_existed() -> None:
    contact = Contact("acme", "c1", "form", BROKER, BROKER, version=3)
    old = orjson.loads(encode_contact(contact))
    del old["purge_after"]
    assert decode_contact(orjson.dumps(old)) == contact


def test_contact_table_codec_round_trips_a_purge_tombstone_and_a_timed_clear() -> None:
    trashed = Contact(
        "acme",
        "c1",
        "form",
        BROKER,
        BROKER,
        version=4,
        state="trashed",
        fields=(("city", TimedValue(None, BROKER, "e2")),),
        deleted_at=BROKER,
        purge_after=BROKER + 30 * 86_400_000,
    )
    assert decode_contact(encode_contact(trashed)) == trashed
    gone = tombstone(trashed, "purged")
    assert decode_contact(encode_contact(gone)) == gone


def test_projection_batch_keeps_only_the_newest_snapshot_of_each_contact() -> None:
    def snap(contact_id: str, version: int) -> bytes:
        return orjson.dumps({"tenant_id": "acme", "contact_id": contact_id, "version": version})

    batch = [snap("a", 1), snap("b", 1), snap("a", 3), snap("a", 2)]
    latest = {(s["contact_id"], s["version"]) for s in latest_per_contact(batch)}
    assert latest == {("a", 3), ("b", 1)}


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_format_ms_memoized_per_second_matches_the_datetime_it_names(ms: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert format_ms(ms) == format_ms(ms)  # the second call comes from the memo
    assert datetime.fromisoformat(format_ms(ms).replace("Z", "+00:00")) == expected

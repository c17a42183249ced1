"""The wire contract (SPEC §2): decoding, dead-letter precedence, defaults, encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.models import (
    CHANGE_TYPES,
    COMMAND_TYPES,
    ENGAGEMENT_TYPES,
    MAX_COMMAND_BYTES,
    MAX_VALUE_BYTES,
    Cause,
    ChangeEvent,
    ContactIntake,
    ContactSnapshot,
    CreateContact,
    DeadLetter,
    EngagementEvent,
    InputKind,
    InputRejected,
    SetMarketing,
    TenantConfig,
    UpdateContact,
    dead_letter_raw,
    decode_input,
    decode_tenant_config,
    dumps,
    format_ts,
    from_epoch_ms,
    make_dead_letter,
    parse_ts,
    to_epoch_ms,
    to_json_bytes,
)

ENVELOPE = {"event_id": "evt-1", "tenant_id": "acme"}


def raw(value: Any) -> bytes:
    return orjson.dumps(value)


def rejection(kind: InputKind, value: bytes | None) -> InputRejected:
    with pytest.raises(InputRejected) as caught:
        decode_input(kind, value)
    return caught.value


VALID_COMMANDS: list[dict[str, Any]] = [
    {
        "type": "create_contact",
        "emails": ["ana@example.com"],
        "phones": ["600 111 222"],
        "phone_region": "ES",
        "fields": {"first_name": "Ana", "age": 31, "vip": True, "ratio": 0.5, "city": None},
        "tags": ["webinar"],
        "marketing": True,
        "on_match": "skip",
        "owner": "bob",
    },
    {
        "type": "update_contact",
        "contact_id": "c-1",
        "fields": {"city": None, "company": "Acme"},
        "tags_add": ["a"],
        "tags_remove": ["b"],
        "add_emails": ["x@example.com"],
        "add_phones": ["+34600111222"],
        "remove_emails": ["old@example.com"],
        "remove_phones": ["+34600000000"],
        "primary_email": "x@example.com",
        "primary_phone": "+34600111222",
        "owner": None,
    },
    {"type": "set_marketing", "contact_ids": ["c-1", "c-2"], "marketing": False, "via": "bulk"},
    {"type": "delete_contact", "contact_ids": ["c-1"]},
    {"type": "restore_contact", "contact_ids": ["c-1"]},
    {"type": "purge_contact", "contact_ids": ["c-1"]},
    {"type": "merge_contacts", "survivor_id": "c-1", "merged_ids": ["c-2", "c-3"]},
    {"type": "suspend_contact", "contact_ids": ["c-1"]},
    {"type": "unsuspend_contact", "contact_ids": ["c-1"]},
    {"type": "add_to_list", "list_id": "l-1", "contact_ids": ["c-1"]},
    {"type": "remove_from_list", "list_id": "l-1", "contact_ids": ["c-1"]},
]

VALID_INPUTS: list[tuple[InputKind, dict[str, Any]]] = [
    (
        "intake",
        {
            **ENVELOPE,
            "occurred_at": "2026-11-22T10:00:00.000Z",
            "source": "form",
            "emails": ["Ana@Example.com", "ana.work@example.com"],
            "phones": ["+34 600 111 222"],
            "phone_region": "ES",
            "fields": {"first_name": "Ana"},
            "tags": ["webinar"],
            "marketing": None,
            "on_match": "update",
            "owner": "bob",
        },
    ),
    (
        "engagement",
        {
            **ENVELOPE,
            "type": "open",
            "email": "ana@example.com",
            "campaign_id": "spring",
            "url": "https://example.com/x",
            "machine_open": True,
        },
    ),
    *[("command", {**ENVELOPE, **command}) for command in VALID_COMMANDS],
]


# ---------------------------------------------------------------- valid inputs


@pytest.mark.parametrize(
    ("kind", "value"), VALID_INPUTS, ids=[str(v.get("type", k)) for k, v in VALID_INPUTS]
)
def test_valid_input_survives_an_encode_decode_round_trip(
    kind: InputKind, value: dict[str, Any]
) -> None:
    decoded = decode_input(kind, raw(value))

    assert decode_input(kind, dumps(decoded)) == decoded


def test_every_command_type_of_the_spec_has_a_valid_example() -> None:
    assert sorted(c["type"] for c in VALID_COMMANDS) == sorted(COMMAND_TYPES)


@pytest.mark.parametrize("command", VALID_COMMANDS, ids=lambda c: c["type"])
def test_command_decodes_to_the_model_named_by_its_type(command: dict[str, Any]) -> None:
    decoded = decode_input("command", raw({**ENVELOPE, **command}))

    assert decoded.type == command["type"]
    assert type(decoded).__name__ == command["type"].title().replace("_", "")


def test_intake_defaults_apply_to_absent_fields() -> None:
    intake = decode_input("intake", raw({**ENVELOPE, "source": "api"}))

    assert intake == ContactIntake(event_id="evt-1", tenant_id="acme", source="api")
    assert (intake.emails, intake.phones, intake.fields, intake.tags) == ([], [], {}, [])
    assert (intake.on_match, intake.marketing, intake.owner, intake.occurred_at) == (
        "update",
        None,
        None,
        None,
    )


def test_unknown_fields_are_ignored_in_every_input() -> None:
    extra = {"future_field": {"nested": [1, 2]}, "x": "y"}

    intake = decode_input("intake", raw({**ENVELOPE, "source": "form", **extra}))
    engagement = decode_input("engagement", raw({**ENVELOPE, "type": "sent", "contact_id": "c"}))
    command = decode_input("command", raw({**ENVELOPE, **VALID_COMMANDS[3], **extra}))

    assert b"future_field" not in dumps(intake)
    assert engagement.machine_open is False
    assert b"future_field" not in dumps(command)


def test_update_contact_tells_an_explicit_null_owner_from_an_absent_one() -> None:
    clearing = decode_input(
        "command", raw({**ENVELOPE, "type": "update_contact", "contact_id": "c", "owner": None})
    )
    untouched = decode_input(
        "command", raw({**ENVELOPE, "type": "update_contact", "contact_id": "c"})
    )

    assert isinstance(clearing, UpdateContact)
    assert isinstance(untouched, UpdateContact)
    assert clearing.sets_owner and not untouched.sets_owner
    assert orjson.loads(dumps(clearing))["owner"] is None
    assert "owner" not in orjson.loads(dumps(untouched))


def test_a_command_built_in_python_keeps_its_type_on_the_wire() -> None:
    command = SetMarketing(
        event_id="e", tenant_id="acme", contact_ids=["c"], marketing=True, via="api"
    )

    assert orjson.loads(to_json_bytes(command))["type"] == "set_marketing"
    assert decode_input("command", dumps(command)) == command


def test_create_contact_has_no_source_and_accepts_the_intake_fields() -> None:
    command = decode_input("command", raw({**ENVELOPE, **VALID_COMMANDS[0], "source": "form"}))

    assert isinstance(command, CreateContact)
    assert not hasattr(command, "source")
    assert command.on_match == "skip"


# ------------------------------------------------------------- timestamps in


def test_occurred_at_with_an_offset_is_held_in_utc() -> None:
    intake = decode_input(
        "intake", raw({**ENVELOPE, "source": "form", "occurred_at": "2026-11-22T11:30:00+01:30"})
    )

    assert intake.occurred_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert intake.occurred_at is not None and intake.occurred_at.utcoffset() == timedelta(0)


def test_occurred_at_is_truncated_to_the_millisecond() -> None:
    intake = decode_input(
        "intake", raw({**ENVELOPE, "source": "form", "occurred_at": "2026-11-22T10:00:00.1239999Z"})
    )

    assert intake.occurred_at == datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-22T10:00:00",  # naive
        "2026-11-22T10:00:00.000",  # naive with fraction
        "2026-11-22",  # a date
        "2026-11-22T25:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-22T10:00:60Z",  # leap second: not representable
        "2026-11-22T10:00:00+24:00",
        "22/11/2026 10:00",
        "",
        1_790_000_000_000,  # epoch numbers are not RFC 3339
        True,
        ["2026-11-22T10:00:00Z"],
    ],
)
def test_occurred_at_that_is_not_rfc3339_with_an_offset_is_a_schema_error(
    occurred_at: object,
) -> None:
    value = raw({**ENVELOPE, "source": "form", "occurred_at": occurred_at})

    assert rejection("intake", value).reason == "schema"


def test_naive_python_datetime_is_rejected_for_occurred_at() -> None:
    with pytest.raises(ValueError, match="offset"):
        ContactIntake(event_id="e", tenant_id="t", source="form", occurred_at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22t10:00:00z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22 10:00:00-00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T05:00:00.5-05:00", datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_ts_reads_rfc3339_into_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_ts(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC


# ------------------------------------------------------------ timestamps out


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "2026-11-22T10:00:00.000Z"),
        (datetime(2026, 11, 22, 10, 0, 0, 999_999, tzinfo=UTC), "2026-11-22T10:00:00.999Z"),
        (datetime(2026, 11, 22, 10, 0, 0, 1_999, tzinfo=UTC), "2026-11-22T10:00:00.001Z"),
        (
            datetime(2026, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-22T10:00:00.000Z",
        ),
        (datetime(999, 1, 2, tzinfo=UTC), "0999-01-02T00:00:00.000Z"),
    ],
)
def test_format_ts_writes_utc_milliseconds_with_z_flooring_sub_milliseconds(
    moment: datetime, text: str
) -> None:
    assert format_ts(moment) == text


def test_format_ts_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2026, 1, 1))


def test_epoch_milliseconds_convert_both_ways() -> None:
    moment = datetime(2026, 11, 22, 10, 0, 0, 123_456, tzinfo=UTC)

    assert from_epoch_ms(to_epoch_ms(moment)) == moment.replace(microsecond=123_000)
    assert to_epoch_ms(from_epoch_ms(-1)) == -1


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_ts_then_parse_ts_gives_the_time_floored_to_the_millisecond(
    moment: datetime,
) -> None:
    assert parse_ts(format_ts(moment)) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )


# ----------------------------------------------------- dead-letter precedence


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        # too_large beats everything, even invalid JSON
        ("intake", b"{" * (MAX_VALUE_BYTES + 1), "too_large"),
        ("command", raw({"tenant_id": "x" * 100, "pad": "a" * MAX_COMMAND_BYTES}), "too_large"),
        # invalid_json: empty, null, not UTF-8, not JSON, not an object
        ("intake", None, "invalid_json"),
        ("intake", b"", "invalid_json"),
        ("engagement", b"\xff\xfe{}", "invalid_json"),
        ("engagement", b'{"tenant_id": "acme", "type": "open", "email": "\xe9"}', "invalid_json"),
        ("command", b"{'tenant_id': 'acme'}", "invalid_json"),
        ("command", b'{"tenant_id": "acme",}', "invalid_json"),
        ("command", b"NaN", "invalid_json"),
        ("command", raw([{"tenant_id": "acme", "type": "delete_contact"}]), "invalid_json"),
        ("intake", raw("a string"), "invalid_json"),
        ("intake", b"null", "invalid_json"),
        ("intake", b"42", "invalid_json"),
        # unknown_tenant_format beats unknown_type and schema
        ("command", raw({"event_id": "e", "type": "no_such_type"}), "unknown_tenant_format"),
        ("command", raw({"tenant_id": "ac me", "type": "no_such_type"}), "unknown_tenant_format"),
        ("engagement", raw({"tenant_id": "", "type": "nope"}), "unknown_tenant_format"),
        ("intake", raw({"tenant_id": "a" * 65, "source": "form"}), "unknown_tenant_format"),
        ("intake", raw({"tenant_id": 42, "source": "form"}), "unknown_tenant_format"),
        ("intake", raw({"tenant_id": None, "source": "form"}), "unknown_tenant_format"),
        ("intake", raw({"tenant_id": "acme\n", "source": "form"}), "unknown_tenant_format"),
        # unknown_type beats schema
        ("command", raw({"tenant_id": "acme", "type": "drop_table"}), "unknown_type"),
        ("command", raw({"tenant_id": "acme"}), "unknown_type"),
        ("command", raw({"tenant_id": "acme", "type": None}), "unknown_type"),
        ("command", raw({"tenant_id": "acme", "type": ["delete_contact"]}), "unknown_type"),
        ("command", raw({"tenant_id": "acme", "type": {"a": 1}}), "unknown_type"),
        ("engagement", raw({"tenant_id": "acme", "type": "opened"}), "unknown_type"),
        ("engagement", raw({"tenant_id": "acme"}), "unknown_type"),
        # an intake has no type: an unknown source is a schema error
        ("intake", raw({**ENVELOPE, "source": "fax"}), "schema"),
        ("intake", raw({**ENVELOPE}), "schema"),
        # schema: everything else pydantic rejects
        ("intake", raw({"tenant_id": "acme", "source": "form"}), "schema"),
        ("intake", raw({**ENVELOPE, "event_id": "", "source": "form"}), "schema"),
        ("intake", raw({**ENVELOPE, "event_id": "e" * 129, "source": "form"}), "schema"),
        ("intake", raw({**ENVELOPE, "event_id": 5, "source": "form"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "marketing": "5"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "marketing": 1}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "emails": "a@b.com"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "emails": [5]}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "emails": ["a@b.c"] * 12}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "phones": ["1"] * 12}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "phone_region": "es"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "phone_region": "ESP"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "fields": {"a": [1]}}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "fields": {"a": {"b": 1}}}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "tags": [""]}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "tags": ["t" * 257]}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "on_match": "merge"}), "schema"),
        ("intake", raw({**ENVELOPE, "source": "form", "owner": 7}), "schema"),
        ("engagement", raw({**ENVELOPE, "type": "open", "email": 5}), "schema"),
        (
            "engagement",
            raw({**ENVELOPE, "type": "open", "email": "a", "machine_open": 1}),
            "schema",
        ),
        ("command", raw({**ENVELOPE, "type": "delete_contact", "contact_ids": []}), "schema"),
        ("command", raw({**ENVELOPE, "type": "delete_contact", "contact_ids": "c"}), "schema"),
        ("command", raw({**ENVELOPE, "type": "delete_contact", "contact_ids": [1]}), "schema"),
        ("command", raw({**ENVELOPE, "type": "purge_contact"}), "schema"),
        ("command", raw({**ENVELOPE, "type": "merge_contacts", "survivor_id": "a"}), "schema"),
        (
            "command",
            raw({**ENVELOPE, "type": "merge_contacts", "survivor_id": "a", "merged_ids": []}),
            "schema",
        ),
        (
            "command",
            raw(
                {
                    **ENVELOPE,
                    "type": "set_marketing",
                    "contact_ids": ["c"],
                    "marketing": "true",
                    "via": "api",
                }
            ),
            "schema",
        ),
        (
            "command",
            raw(
                {
                    **ENVELOPE,
                    "type": "set_marketing",
                    "contact_ids": ["c"] * 10_001,
                    "marketing": True,
                    "via": "api",
                }
            ),
            "schema",
        ),
        (
            "command",
            raw(
                {
                    **ENVELOPE,
                    "type": "set_marketing",
                    "contact_ids": ["c"],
                    "marketing": True,
                    "via": "cron",
                }
            ),
            "schema",
        ),
        ("command", raw({**ENVELOPE, "type": "add_to_list", "contact_ids": ["c"]}), "schema"),
        ("command", raw({**ENVELOPE, "type": "update_contact", "contact_id": ""}), "schema"),
    ],
)
def test_the_first_failing_check_names_the_dead_letter_reason(
    kind: InputKind, value: bytes | None, reason: str
) -> None:
    assert rejection(kind, value).reason == reason


def test_a_command_naming_10000_contact_ids_is_not_too_large() -> None:
    # SPEC §2.4 allows 10,000 ids (~390 KB of UUIDs), more than SPEC §2's 64 KiB.
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(10_000)]
    value = raw(
        {
            "event_id": "e",
            "tenant_id": "acme",
            "type": "set_marketing",
            "contact_ids": ids,
            "marketing": True,
            "via": "bulk",
        }
    )
    assert MAX_VALUE_BYTES < len(value) <= MAX_COMMAND_BYTES
    assert len(decode_input("command", value).contact_ids) == 10_000  # type: ignore[union-attr]
    with pytest.raises(InputRejected) as rejected:
        decode_input("intake", raw({"tenant_id": "acme", "pad": "a" * MAX_VALUE_BYTES}))
    assert rejected.value.reason == "too_large"


def test_a_value_of_exactly_64_kib_is_not_too_large() -> None:
    value = raw({**ENVELOPE, "source": "form", "pad": ""})
    value = value[:-2] + b"x" * (MAX_VALUE_BYTES - len(value)) + value[-2:]

    assert len(value) == MAX_VALUE_BYTES
    assert decode_input("intake", value).source == "form"


def test_set_marketing_accepts_ten_thousand_ids_at_most() -> None:
    command = SetMarketing.model_validate(
        {
            **ENVELOPE,
            "contact_ids": [f"c{i}" for i in range(10_000)],
            "marketing": True,
            "via": "bulk",
        }
    )

    assert len(command.contact_ids) == 10_000


def test_schema_detail_names_the_field_path_but_never_the_value() -> None:
    value = raw(
        {
            **ENVELOPE,
            "source": "form",
            "emails": ["secret@example.com", 5],
            "fields": {"leak@example.com": ["x"]},
            "phone_region": "secret@example.com",
            "marketing": "secret@example.com",
        }
    )

    detail = rejection("intake", value).detail

    assert "emails.1" in detail
    assert "phone_region" in detail
    assert "marketing" in detail
    assert "fields.<key>" in detail
    assert "@" not in detail
    assert "secret" not in detail


def test_unknown_type_detail_does_not_echo_an_odd_looking_type() -> None:
    detail = rejection("command", raw({"tenant_id": "acme", "type": "ana@example.com"})).detail

    assert "ana" not in detail


# ----------------------------------------------------------------- engagement


@pytest.mark.parametrize(
    "reference",
    [{"contact_id": "c-1"}, {"email": "ana@example.com"}, {"phone": "+34600111222"}],
)
def test_engagement_naming_exactly_one_contact_reference_is_accepted(
    reference: dict[str, str],
) -> None:
    event = decode_input("engagement", raw({**ENVELOPE, "type": "click", **reference}))

    assert isinstance(event, EngagementEvent)


@pytest.mark.parametrize(
    "references",
    [
        {},
        {"contact_id": None, "email": None},
        {"contact_id": "c-1", "email": "ana@example.com"},
        {"email": "ana@example.com", "phone": "+34600111222"},
        {"contact_id": "c-1", "email": "ana@example.com", "phone": "+34600111222"},
    ],
)
def test_engagement_without_exactly_one_contact_reference_is_a_schema_error(
    references: dict[str, str | None],
) -> None:
    value = raw({**ENVELOPE, "type": "click", **references})

    assert rejection("engagement", value).reason == "schema"


def test_a_null_reference_does_not_count_as_naming_the_contact() -> None:
    event = decode_input(
        "engagement", raw({**ENVELOPE, "type": "reply", "email": None, "phone": "+3460011"})
    )

    assert event.phone == "+3460011"


@pytest.mark.parametrize("type_", ENGAGEMENT_TYPES)
def test_every_engagement_type_of_the_spec_is_accepted(type_: str) -> None:
    event = decode_input("engagement", raw({**ENVELOPE, "type": type_, "contact_id": "c"}))

    assert event.type == type_


# -------------------------------------------------------------- tenant config

SPEC_DEFAULTS = orjson.loads(
    rb"""
{"marketing_module": true, "marketing_limit": null, "limit_policy": "reject",
 "default_region": "ES", "alt_email_limit": 10, "alt_phone_limit": 10,
 "points": {"open": 5, "click": 10, "high_intent_visit": 15},
 "engaged_threshold": 20, "score_half_life_days": 30,
 "inactive_after_sends": 3, "inactive_after_days": 90,
 "cooling_days": 30, "reactivation_interval_days": 14, "reactivation_attempts": 2,
 "hold_days": 30, "trash_retention_days": 30, "dedup_days": 7,
 "readd_deleted_policy": "restore", "emit_score_updates": true,
 "filterable_fields": ["city", "company"],
 "blocked_values": ["re:^(test|noreply|no-reply|example)@", "re:^\\+?0+$", "null", "anonymous"]}
"""
)


def test_tenant_config_defaults_are_exactly_the_spec_block() -> None:
    assert orjson.loads(dumps(TenantConfig())) == SPEC_DEFAULTS
    assert TenantConfig.model_validate(SPEC_DEFAULTS) == TenantConfig()


@pytest.mark.parametrize("value", [None, b"", b"null", b"{}"])
def test_null_or_empty_tenant_config_means_the_defaults(value: bytes | None) -> None:
    assert decode_tenant_config(value) == TenantConfig()


def test_absent_points_keys_take_the_defaults() -> None:
    config = decode_tenant_config(raw({"points": {"open": 1}}))

    assert config.points == {"open": 1, "click": 10, "high_intent_visit": 15}


def test_points_may_give_other_engagement_types() -> None:
    config = decode_tenant_config(raw({"points": {"reply": 3, "click": 0}}))

    assert config.points == {"open": 5, "click": 0, "high_intent_visit": 15, "reply": 3}


def test_tenant_id_inside_the_config_value_is_ignored() -> None:
    config = decode_tenant_config(raw({"tenant_id": "other", "hold_days": 10}))

    assert config.hold_days == 10
    assert "tenant_id" not in orjson.loads(dumps(config))


def test_tenant_config_defaults_are_not_shared_between_instances() -> None:
    first = TenantConfig()
    first.points["open"] = 99
    first.blocked_values.clear()

    assert TenantConfig().points["open"] == 5
    assert TenantConfig().blocked_values == SPEC_DEFAULTS["blocked_values"]


@pytest.mark.parametrize(
    "value",
    [
        {"hold_days": -1},
        {"hold_days": "30"},
        {"hold_days": 30.0},
        {"hold_days": None},
        {"marketing_limit": -5},
        {"marketing_module": "yes"},
        {"limit_policy": "ignore"},
        {"readd_deleted_policy": "delete"},
        {"default_region": "es"},
        {"points": {"open": -1}},
        {"points": {"opne": 1}},
        {"points": {"open": "1"}},
        {"points": None},
        {"blocked_values": ["re:(unclosed"]},
        {"blocked_values": "null"},
        {"filterable_fields": [""]},
    ],
)
def test_invalid_tenant_config_is_a_schema_error(value: dict[str, Any]) -> None:
    with pytest.raises(InputRejected) as caught:
        decode_tenant_config(raw(value))

    assert caught.value.reason == "schema"


@pytest.mark.parametrize("value", [b"[1]", b"{", b"\xff", b'"x"'])
def test_tenant_config_that_is_not_a_json_object_is_invalid_json(value: bytes) -> None:
    with pytest.raises(InputRejected) as caught:
        decode_tenant_config(value)

    assert caught.value.reason == "invalid_json"


def test_marketing_limit_accepts_a_number_or_null() -> None:
    assert decode_tenant_config(raw({"marketing_limit": 500})).marketing_limit == 500
    assert decode_tenant_config(raw({"marketing_limit": None})).marketing_limit is None


# ------------------------------------------------------------------- outputs

AT = datetime(2026, 11, 22, 10, 0, 0, 123_456, tzinfo=UTC)


def change(**overrides: Any) -> ChangeEvent:
    fields: dict[str, Any] = {
        "change_id": "ch-1",
        "tenant_id": "acme",
        "contact_id": "c-1",
        "version": 7,
        "type": "marketing.deactivated",
        "at": AT,
        "cause": Cause(kind="command", event_id="evt-1"),
        "data": {"slot_held_until": None},
    }
    return ChangeEvent(**{**fields, **overrides})


def test_change_event_is_written_with_the_spec_field_names_and_order() -> None:
    encoded = dumps(change())

    assert encoded == (
        b'{"change_id":"ch-1","tenant_id":"acme","contact_id":"c-1","version":7,'
        b'"type":"marketing.deactivated","at":"2026-11-22T10:00:00.123Z",'
        b'"cause":{"kind":"command","event_id":"evt-1"},"data":{"slot_held_until":null}}'
    )


def test_cause_clamped_appears_only_when_true() -> None:
    clamped = orjson.loads(dumps(change(cause=Cause(kind="intake", event_id="e", clamped=True))))
    timer = orjson.loads(dumps(change(cause=Cause(kind="timer"))))

    assert clamped["cause"] == {"kind": "intake", "event_id": "e", "clamped": True}
    assert timer["cause"] == {"kind": "timer", "event_id": None}


def test_change_event_takes_its_time_as_epoch_ms_or_rfc3339_text() -> None:
    assert change(at=to_epoch_ms(AT)).at == change().at
    assert change(at="2026-11-22T11:00:00.123+01:00").at == change().at


def test_datetimes_inside_change_data_are_written_in_the_wire_format() -> None:
    event = change(type="contact.deleted", data={"purge_after": AT, "nested": [{"t": AT}]})

    data = orjson.loads(dumps(event))["data"]

    assert data == {
        "purge_after": "2026-11-22T10:00:00.123Z",
        "nested": [{"t": "2026-11-22T10:00:00.123Z"}],
    }


def test_change_event_decodes_from_its_own_encoding() -> None:
    event = change(cause=Cause(kind="intake", event_id="e", clamped=True))

    assert ChangeEvent.model_validate_json(dumps(event)) == event


@pytest.mark.parametrize("type_", CHANGE_TYPES)
def test_every_change_type_of_the_spec_is_accepted(type_: str) -> None:
    assert change(type=type_).type == type_


def test_an_unknown_change_type_is_refused() -> None:
    with pytest.raises(ValueError, match="type"):
        change(type="contact.exploded")


SPEC_SNAPSHOT_KEYS = [
    "contact_id", "tenant_id", "version", "created_at", "updated_at", "state", "source",
    "emails", "phones", "fields", "tags", "owner", "lists", "suspended", "deleted_at",
    "merged_into", "marketing", "engagement", "activity",
]  # fmt: skip


def snapshot() -> ContactSnapshot:
    return ContactSnapshot.model_validate(
        {
            "contact_id": "c-1",
            "tenant_id": "acme",
            "version": 7,
            "created_at": "2026-11-01T09:00:00.000Z",
            "updated_at": "2026-11-22T10:00:00.000Z",
            "state": "live",
            "source": "form",
            "emails": ["ana@example.com", "ana.work@example.com"],
            "phones": ["+34600111222"],
            "fields": {"first_name": "Ana"},
            "tags": ["webinar"],
            "owner": None,
            "lists": [],
            "suspended": False,
            "deleted_at": None,
            "merged_into": None,
            "marketing": {
                "active": True,
                "activated_at": "2026-11-01T09:00:00.000Z",
                "slot_held_until": None,
            },
            "engagement": {
                "score": 12.5,
                "score_at": "2026-11-22T10:00:00.000Z",
                "last_engagement_at": "2026-11-22T10:00:00.000Z",
                "last_activity_at": "2026-11-22T10:00:00.000Z",
                "campaign_status": "active",
                "sends_since_engagement": 0,
                "reactivation_cycle": 0,
                "tier": "new",
            },
            "activity": {"open": "2026-11-22T10:00:00.000Z", "machine_open": 1_790_000_000_000},
        }
    )


def test_snapshot_writes_every_spec_key_in_order_with_nulls_kept() -> None:
    encoded = orjson.loads(dumps(snapshot()))

    assert list(encoded) == SPEC_SNAPSHOT_KEYS
    assert encoded["owner"] is None and encoded["deleted_at"] is None
    assert encoded["marketing"] == {
        "active": True,
        "activated_at": "2026-11-01T09:00:00.000Z",
        "slot_held_until": None,
    }
    assert list(encoded["engagement"]) == [
        "score", "score_at", "last_engagement_at", "last_activity_at", "campaign_status",
        "sends_since_engagement", "reactivation_cycle", "tier",
    ]  # fmt: skip
    assert encoded["activity"]["machine_open"] == "2026-09-21T14:13:20.000Z"


def test_snapshot_decodes_from_its_own_encoding() -> None:
    assert ContactSnapshot.model_validate_json(dumps(snapshot())) == snapshot()


def test_a_snapshot_inside_change_data_is_written_as_the_snapshot() -> None:
    event = change(type="contact.created", data={"contact": snapshot()})

    assert orjson.loads(dumps(event))["data"]["contact"] == orjson.loads(dumps(snapshot()))


def test_a_tombstone_snapshot_needs_only_the_kept_keys() -> None:
    tombstone = ContactSnapshot(
        contact_id="c-1",
        tenant_id="acme",
        version=9,
        created_at=AT,
        updated_at=AT,
        state="purged",
        deleted_at=AT,
    )

    encoded = orjson.loads(dumps(tombstone))

    assert list(encoded) == SPEC_SNAPSHOT_KEYS
    assert encoded["emails"] == [] and encoded["source"] is None


@pytest.mark.parametrize(
    ("state", "tier", "status"),
    [("zombie", "new", None), ("live", "hot", None), ("live", "new", "paused")],
)
def test_snapshot_refuses_values_outside_the_spec_enums(
    state: str, tier: str, status: str | None
) -> None:
    value = orjson.loads(dumps(snapshot()))
    value["state"] = state
    value["engagement"]["tier"] = tier
    value["engagement"]["campaign_status"] = status

    with pytest.raises(ValueError):
        ContactSnapshot.model_validate(value)


# --------------------------------------------------------------- dead letters


def test_dead_letter_has_the_spec_keys_and_replaces_invalid_bytes() -> None:
    letter = make_dead_letter(
        "invalid_json",
        "not valid UTF-8 JSON",
        topic="contacts.intake.v1",
        partition=3,
        offset=42,
        key=b"ana@example.com",
        raw=b'{"a": "\xff"}',
        at=AT,
    )

    encoded = orjson.loads(dumps(letter))

    assert list(encoded) == ["reason", "detail", "topic", "partition", "offset", "key", "raw", "at"]
    assert encoded["raw"] == '{"a": "\ufffd"}'
    assert encoded["at"] == "2026-11-22T10:00:00.123Z"
    assert DeadLetter.model_validate_json(dumps(letter)) == letter


def test_dead_letter_of_a_null_key_and_value_keeps_key_null() -> None:
    letter = make_dead_letter(
        "invalid_json", "empty value", topic="t", partition=0, offset=0, key=None, raw=None, at=0
    )

    assert orjson.loads(dumps(letter))["key"] is None
    assert letter.raw == ""


def test_dead_letter_raw_is_cut_at_64_kib_of_utf8() -> None:
    assert len(dead_letter_raw(b"a" * 100_000)) == MAX_VALUE_BYTES
    assert len(dead_letter_raw(b"\xff" * 100_000).encode()) <= MAX_VALUE_BYTES
    cut = dead_letter_raw("é".encode() * 40_000)
    assert cut == "é" * (MAX_VALUE_BYTES // 2)


def test_dead_letter_raw_does_not_split_a_character_at_the_cut() -> None:
    text = dead_letter_raw(b"a" + "€".encode() * 30_000)

    assert "\ufffd" not in text
    assert len(text.encode()) <= MAX_VALUE_BYTES


@given(st.binary(max_size=300))
def test_dead_letter_raw_of_valid_utf8_is_the_text_itself(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert dead_letter_raw(data).count("\ufffd") >= 1
    else:
        assert dead_letter_raw(data) == text


# ----------------------------------------------------------------- properties

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
KINDS = st.sampled_from(["intake", "engagement", "command"])
FIELD_NAMES = st.sampled_from(
    [
        "event_id", "occurred_at", "source", "emails", "phones", "phone_region", "fields",
        "tags", "marketing", "on_match", "owner", "contact_id", "email", "phone",
        "campaign_id", "url", "machine_open", "contact_ids", "via", "survivor_id",
        "merged_ids", "list_id", "tags_add", "add_emails", "primary_email",
    ]
)  # fmt: skip


def decodes_or_rejects(kind: InputKind, value: bytes | None) -> None:
    try:
        decode_input(kind, value)
    except InputRejected as rejected:
        assert rejected.reason in {
            "too_large", "invalid_json", "unknown_tenant_format", "unknown_type", "schema",
        }  # fmt: skip


@given(KINDS, st.binary(max_size=200))
def test_decode_input_raises_only_input_rejected_for_arbitrary_bytes(
    kind: InputKind, value: bytes
) -> None:
    decodes_or_rejects(kind, value)


@given(KINDS, JSON_VALUES)
def test_decode_input_raises_only_input_rejected_for_arbitrary_json(
    kind: InputKind, value: object
) -> None:
    decodes_or_rejects(kind, raw(value))


@settings(max_examples=300)
@given(
    KINDS,
    st.sampled_from([*ENGAGEMENT_TYPES, *COMMAND_TYPES]),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6),
)
def test_decode_input_raises_only_input_rejected_for_near_valid_objects(
    kind: InputKind, type_: str, fields: dict[str, Any]
) -> None:
    decodes_or_rejects(kind, raw({**fields, "tenant_id": "acme", "type": type_}))


@given(JSON_VALUES)
def test_decode_tenant_config_raises_only_input_rejected(value: object) -> None:
    try:
        decode_tenant_config(raw(value))
    except InputRejected as rejected:
        assert rejected.reason in {"invalid_json", "schema"}


IDENTIFIER_TEXT = st.text(max_size=30)
INTAKES = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=128),
        "tenant_id": st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
        "source": st.sampled_from(["form", "import", "manual", "api"]),
    },
    optional={
        "occurred_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        "emails": st.lists(IDENTIFIER_TEXT, max_size=11),
        "phones": st.lists(IDENTIFIER_TEXT, max_size=11),
        "fields": st.dictionaries(
            st.text(min_size=1, max_size=20),
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**63)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            max_size=4,
        ),
        "tags": st.lists(st.text(min_size=1, max_size=20), max_size=4),
        "marketing": st.none() | st.booleans(),
        "on_match": st.sampled_from(["update", "skip"]),
        "owner": st.none() | st.text(min_size=1, max_size=20),
    },
)


@given(INTAKES)
def test_any_valid_intake_round_trips_through_dumps(value: dict[str, Any]) -> None:
    decoded = decode_input("intake", raw(value))

    assert decode_input("intake", dumps(decoded)) == decoded
    assert decoded.emails == value.get("emails", [])

"""SPEC §3.1: normalization of emails and phones, and blocked placeholder values."""

from __future__ import annotations

import pytest

from stream.domain.normalize import (
    Kind,
    Rejection,
    is_blocked,
    mask,
    normalize_email,
    normalize_identifiers,
    normalize_phone,
)

DEFAULT_BLOCKED = ["re:^(test|noreply|no-reply|example)@", "re:^\\+?0+$", "null", "anonymous"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ana@Example.COM ", "ana@example.com"),
        ("ana.work@example.com", "ana.work@example.com"),
        ("jose@bücher.de", "jose@xn--bcher-kva.de"),
        ("not-an-email", None),
        ("two@@example.com", None),
        ("", None),
        ("   ", None),
    ],
)
def test_email_is_trimmed_lowercased_idna_encoded_and_syntax_checked(
    raw: str, expected: str | None
) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("600 111 222", "ES", "+34600111222"),
        ("+34 600-111-222", "US", "+34600111222"),
        ("+1 999 555 0143", "ES", None),  # no US area code 999
        ("(201) 555-0123", "US", "+12015550123"),
        ("12", "ES", None),
        ("call me", "ES", None),
    ],
)
def test_phone_is_parsed_with_region_validated_and_stored_as_e164(
    raw: str, region: str, expected: str | None
) -> None:
    assert normalize_phone(raw, region) == expected


def test_blocked_values_match_exactly_or_by_regex_after_re_prefix() -> None:
    assert is_blocked("noreply@shop.com", DEFAULT_BLOCKED)
    assert is_blocked("+000000", DEFAULT_BLOCKED)
    assert is_blocked("anonymous", DEFAULT_BLOCKED)
    assert not is_blocked("ana@example.com", DEFAULT_BLOCKED)
    assert not is_blocked("anonymous2", DEFAULT_BLOCKED)


def test_identifiers_repeated_within_one_input_count_once_and_rejects_are_listed() -> None:
    result = normalize_identifiers(
        ["Ana@example.com", "ana@EXAMPLE.com", "bad", "test@x.com"],
        ["600111222", "+34600111222", "0000"],
        "ES",
        DEFAULT_BLOCKED,
    )
    assert result.emails == ("ana@example.com",)
    assert result.phones == ("+34600111222",)
    reasons = {(r.kind, r.value, r.reason) for r in result.rejected}
    assert (Kind.EMAIL, "bad", Rejection.INVALID) in reasons
    assert (Kind.EMAIL, "test@x.com", Rejection.BLOCKED) in reasons
    assert (Kind.PHONE, "0000", Rejection.INVALID) in reasons


def test_mask_never_shows_a_full_email_or_phone() -> None:
    assert "ana@example.com" not in mask("ana@example.com")
    assert "+34600111222" not in mask("+34600111222")


def test_a_remembered_normalization_is_the_one_computed_for_the_same_raw_value() -> None:
    emails = ["  Ana@Example.COM ", "jose@bücher.de", "not-an-email", ""]
    phones = [("600 111 222", "ES"), ("600 111 222", "US"), ("12", "ES")]
    for _ in range(2):  # the second round reads the cache
        for raw in emails:
            assert normalize_email(raw) == normalize_email.__wrapped__(raw)
        for raw, region in phones:
            # The region is part of what is remembered: the same digits differ by it.
            assert normalize_phone(raw, region) == normalize_phone.__wrapped__(raw, region)
    assert normalize_phone("600 111 222", "ES") != normalize_phone("600 111 222", "US")
    assert normalize_email.cache_info().hits >= len(emails)

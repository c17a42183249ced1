"""Identifier normalization (SPEC §3.1): pure, no I/O (no DNS lookups)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class Kind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class Rejection(StrEnum):
    INVALID = "invalid"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: Kind
    value: str


@dataclass(frozen=True, slots=True)
class RejectedIdentifier:
    kind: Kind
    value: str  # as given (trimmed) when invalid, normalized when blocked
    reason: Rejection

    def as_row(self) -> list[str]:
        """The form internal hops carry: [kind, value, reason]."""
        return [self.kind.value, self.value, self.reason.value]

    @classmethod
    def from_row(cls, row: list[str]) -> RejectedIdentifier:
        kind, value, reason = row
        return cls(Kind(kind), value, Rejection(reason))


@dataclass(frozen=True, slots=True)
class Normalized:
    """The identifiers of one input: valid ones in input order (emails first), rejects aside."""

    emails: tuple[str, ...]
    phones: tuple[str, ...]
    rejected: tuple[RejectedIdentifier, ...]

    @property
    def identifiers(self) -> tuple[Identifier, ...]:
        return tuple(Identifier(Kind.EMAIL, e) for e in self.emails) + tuple(
            Identifier(Kind.PHONE, p) for p in self.phones
        )


# Normalizing is pure and slow (email-validator: ~32 µs an email, phonenumbers
# ~27 µs a phone), and engagement events name the same contacts again and
# again: the last this many raw values of each kind are remembered (~32 MB
# when full of emails; bench/hotpath.py, docs/performance.md).
NORMALIZED_CACHE = 1 << 17


@lru_cache(maxsize=NORMALIZED_CACHE)
def normalize_email(raw: str) -> str | None:
    """Trimmed, lower-cased, IDNA domain, syntax-checked; None when invalid."""
    candidate = raw.strip()
    if not candidate:
        return None
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    local, _, _ = result.normalized.rpartition("@")
    domain = result.ascii_domain or result.domain
    return f"{local}@{domain}".lower()


@lru_cache(maxsize=NORMALIZED_CACHE)
def normalize_phone(raw: str, region: str) -> str | None:
    """E.164 of a valid number parsed with `region`; None when invalid."""
    candidate = raw.strip()
    if not candidate:
        return None
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1024)
def _blocked_matcher(
    patterns: tuple[str, ...],
) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    exact = frozenset(p for p in patterns if not p.startswith("re:"))
    regexes = tuple(re.compile(p[3:]) for p in patterns if p.startswith("re:"))
    return exact, regexes


def is_blocked(value: str, blocked_values: Sequence[str]) -> bool:
    """True when a normalized value is a placeholder of the tenant (exact, or `re:` regex)."""
    exact, regexes = _blocked_matcher(tuple(blocked_values))
    return value in exact or any(r.search(value) for r in regexes)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def normalize_identifiers(
    emails: Sequence[str],
    phones: Sequence[str],
    region: str,
    blocked_values: Sequence[str],
) -> Normalized:
    """Normalize an input's emails and phones; repeats count once (SPEC §3.2.2)."""
    rejected: list[RejectedIdentifier] = []
    valid_emails: list[str] = []
    valid_phones: list[str] = []
    for kind, raws, parse, out in (
        (Kind.EMAIL, emails, normalize_email, valid_emails),
        (Kind.PHONE, phones, lambda v: normalize_phone(v, region), valid_phones),
    ):
        for raw in raws:
            value = parse(raw)
            if value is None:
                rejected.append(RejectedIdentifier(kind, raw.strip(), Rejection.INVALID))
            elif is_blocked(value, blocked_values):
                rejected.append(RejectedIdentifier(kind, value, Rejection.BLOCKED))
            else:
                out.append(value)
    return Normalized(
        emails=_unique(valid_emails),
        phones=_unique(valid_phones),
        rejected=tuple(dict.fromkeys(rejected)),
    )


def mask(value: str) -> str:
    """A log-safe form of an email or phone: never the full value."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain[:1]}***"
    return f"{value[:3]}***{value[-2:]}" if len(value) > 5 else "***"

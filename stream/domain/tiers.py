"""Recency tiers (SPEC §3.6): how long ago a contact's latest activity was."""

from __future__ import annotations

from dataclasses import dataclass

from stream.domain.timefmt import MS_PER_DAY

NEW = "new"
FREQUENT = "frequent"
DORMANT = "dormant"
EXPIRED = "expired"
# No activity yet: a new contact starts here, since intakes are not activity.
INACTIVE = "inactive"
# Suspended, or suppressed for good (SPEC §3.5.6): excluded from sends.
DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class TierChange:
    """`activity_tier.changed`."""

    at: int
    from_: str
    to: str


# The tiers that age with time, in order, and the day each one after the first begins.
AGED = (NEW, FREQUENT, DORMANT, EXPIRED)
BOUNDARY_DAYS = (16, 46, 121)


def tier_at(
    last_activity_at: int | None,
    t: int,
    suspended: bool = False,
    suppressed_for_good: bool = False,
) -> str:
    """The tier at `t` of a contact whose latest activity was at `last_activity_at`."""
    if suspended or suppressed_for_good:
        return DISCARDED
    if last_activity_at is None:
        return INACTIVE
    days = (t - last_activity_at) // MS_PER_DAY
    tier = NEW
    for boundary, later in zip(BOUNDARY_DAYS, AGED[1:], strict=True):
        if days >= boundary:
            tier = later
    return tier


def tier_boundaries(last_activity_at: int) -> tuple[int, int, int]:
    """The exact times the tier becomes frequent, dormant and expired."""
    first, second, third = (last_activity_at + days * MS_PER_DAY for days in BOUNDARY_DAYS)
    return first, second, third


def next_boundary(last_activity_at: int | None, tier: str) -> TierChange | None:
    """The next aging of a contact now in `tier`, at its exact time; None if it never ages."""
    if last_activity_at is None or tier not in AGED[:-1]:
        return None
    index = AGED.index(tier)
    return TierChange(tier_boundaries(last_activity_at)[index], tier, AGED[index + 1])

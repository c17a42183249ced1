"""A contact's marketing status and its quota slot (SPEC §2.5, §3.4), decided purely.

A new activation needs a slot from the tenant's quota, which lives on another
partition. So deciding one is two steps: a call without a grant answers
`needs_grant`; the shell asks `quota.request_slot` (request id: the contact's
version before the input) and calls again with the `Grant`. Everything else (re-activation
inside the hold, deactivation, the hold's end) is decided here at once, and
the `quota` ops of a decision tell the shell what to send to the quota's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from stream.domain.frozen import replace
from stream.domain.quota import Grant
from stream.domain.timefmt import MS_PER_DAY, format_ms, format_optional_ms

DAY_MS = MS_PER_DAY
# SPEC §3.4.2: these sources make a contact marketing; the others need `marketing: true`.
AUTO_SOURCES = frozenset({"form", "spider", "facebook_lead_ads", "landing_page"})
OPT_IN_SOURCES = frozenset({"inbox", "ecommerce", "import", "manual", "api", "deal"})
VIAS = frozenset({"profile", "bulk", "inbox", "automation", "api"})
LIMIT_POLICIES = frozenset({"reject", "allow_overage"})


class MarketingError(ValueError):
    """Invalid marketing input, or a call the shell should not make."""


@dataclass(frozen=True, slots=True)
class MarketingConfig:
    """The marketing part of a TenantConfig (SPEC §2.5)."""

    marketing_module: bool = True
    marketing_limit: int | None = None
    limit_policy: str = "reject"
    hold_days: int = 30

    def __post_init__(self) -> None:
        if self.limit_policy not in LIMIT_POLICIES:
            raise MarketingError(f"unknown limit_policy {self.limit_policy!r}")
        if self.marketing_limit is not None and self.marketing_limit < 0:
            raise MarketingError("marketing_limit must not be negative")
        if self.hold_days < 0:
            raise MarketingError("hold_days must not be negative")


@dataclass(frozen=True, slots=True)
class Marketing:
    """One contact's marketing state; `slot_request` keys its slot in the quota."""

    active: bool = False
    activated_at: int | None = None
    slot_held_until: int | None = None
    slot_request: int | None = None

    @property
    def holds_slot(self) -> bool:
        """Active (trashed and suspended included) or deactivated inside its hold."""
        return self.active or self.slot_held_until is not None

    def as_json(self) -> dict[str, Any]:
        """The snapshot's `marketing` object (SPEC §2.6.1)."""
        return {
            "active": self.active,
            "activated_at": format_optional_ms(self.activated_at),
            "slot_held_until": format_optional_ms(self.slot_held_until),
        }


@dataclass(frozen=True, slots=True)
class Activated:
    type: ClassVar[str] = "marketing.activated"
    at: int
    activated_at: int
    slot: str  # "new" | "reused"

    def data(self) -> dict[str, Any]:
        return {"activated_at": format_ms(self.activated_at), "slot": self.slot}


@dataclass(frozen=True, slots=True)
class Deactivated:
    type: ClassVar[str] = "marketing.deactivated"
    at: int
    slot_held_until: int | None

    def data(self) -> dict[str, Any]:
        return {"slot_held_until": format_optional_ms(self.slot_held_until)}


@dataclass(frozen=True, slots=True)
class SlotReleased:
    type: ClassVar[str] = "marketing.slot_released"
    at: int

    def data(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class ActivationRejected:
    type: ClassVar[str] = "marketing.activation_rejected"
    at: int
    reason: str  # "quota_exceeded" | "module_disabled"

    def data(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, slots=True)
class QuotaExceeded:
    type: ClassVar[str] = "quota.exceeded"
    at: int
    used: int
    limit: int

    def data(self) -> dict[str, Any]:
        return {"used": self.used, "limit": self.limit}


@dataclass(frozen=True, slots=True)
class CommandRejected:
    type: ClassVar[str] = "command.rejected"
    at: int
    reason: str  # "not_allowed"

    def data(self) -> dict[str, Any]:
        return {"reason": self.reason}


Event = (
    Activated | Deactivated | SlotReleased | ActivationRejected | QuotaExceeded | CommandRejected
)


@dataclass(frozen=True, slots=True)
class ReleaseSlot:
    """Ask the quota's owner to free this contact's slot."""

    request_id: int


@dataclass(frozen=True, slots=True)
class ScheduleRelease:
    """Tell the quota's owner when the held slot frees (None: no longer scheduled)."""

    request_id: int
    at: int | None


@dataclass(frozen=True, slots=True)
class TakeSlot:
    """A merge hands this contact a merged contact's slot, under its request id (no limit check)."""

    request_id: int


QuotaOp = ReleaseSlot | ScheduleRelease | TakeSlot


@dataclass(frozen=True, slots=True)
class Decision:
    """New state, change events in order, and ops for the quota's owner.

    `needs_grant`: nothing was decided yet; ask the quota for a slot, then call
    again with the grant.
    """

    state: Marketing
    events: tuple[Event, ...] = ()
    quota: tuple[QuotaOp, ...] = ()
    needs_grant: bool = False


def wants_marketing(source: str, marketing: bool | None) -> bool:
    """SPEC §3.4.2: whether an intake asks to make its contact marketing."""
    if source in AUTO_SOURCES:
        return True
    if source in OPT_IN_SOURCES:
        return marketing is True  # false or null never deactivates
    raise MarketingError(f"unknown source {source!r}")


def needs_slot(state: Marketing, at: int) -> bool:
    """Whether activating at `at` takes a new quota slot (not active, no hold running)."""
    if state.active:
        return False
    return state.slot_held_until is None or at >= state.slot_held_until


def on_intake(
    state: Marketing,
    at: int,
    config: MarketingConfig,
    source: str,
    marketing: bool | None,
    grant: Grant | None = None,
) -> Decision:
    """An intake's marketing effect: activation or nothing (SPEC §3.4.2, §2.5)."""
    wanted = wants_marketing(source, marketing)
    if not config.marketing_module or not wanted:
        return _unused(state, grant)  # module off: intakes say nothing about marketing
    return activate(state, at, config, grant)


def set_marketing(
    state: Marketing,
    at: int,
    config: MarketingConfig,
    marketing: bool,
    via: str,
    grant: Grant | None = None,
) -> Decision:
    """The `set_marketing` command on one contact (SPEC §3.4.3, §2.5)."""
    if via not in VIAS:
        raise MarketingError(f"unknown via {via!r}")
    if not marketing:
        return deactivate(state, at, config)
    if via == "automation":
        return _unused(state, grant, CommandRejected(at, "not_allowed"))
    return activate(state, at, config, grant)


def activate(
    state: Marketing, at: int, config: MarketingConfig, grant: Grant | None = None
) -> Decision:
    """Make the contact marketing: reuse a held slot, or take the granted new one."""
    _check_no_release_due(state, at)
    if not config.marketing_module:
        return _unused(state, grant, ActivationRejected(at, "module_disabled"))
    if state.active:
        return _unused(state, grant)
    if not needs_slot(state, at):
        # SPEC §3.4.6: inside the hold the slot is still ours; same activated_at.
        request = _slot_request(state)
        reused = replace(state, active=True, slot_held_until=None)
        activated_at = state.activated_at if state.activated_at is not None else at
        return _unused(
            reused,
            grant,
            Activated(at, activated_at, "reused"),
            ops=(ScheduleRelease(request, None),),
        )
    if grant is None:
        return Decision(state, needs_grant=True)
    if not grant.granted:
        return Decision(state, (ActivationRejected(at, "quota_exceeded"),))
    events: tuple[Event, ...] = (Activated(at, at, "new"),)
    if grant.exceeded and grant.limit is not None:
        events = (*events, QuotaExceeded(at, grant.used, grant.limit))
    new = Marketing(active=True, activated_at=at, slot_request=grant.request_id)
    return Decision(new, events)


def deactivate(state: Marketing, at: int, config: MarketingConfig) -> Decision:
    """Stop marketing at once; the slot stays used until the hold ends (SPEC §3.4.5)."""
    _check_no_release_due(state, at)
    if not state.active:
        return Decision(state)  # a switch to the current state yields nothing
    request = _slot_request(state)
    hold_end = _hold_end(state, config)
    if at < hold_end:
        held = replace(state, active=False, slot_held_until=hold_end)
        return Decision(held, (Deactivated(at, hold_end),), (ScheduleRelease(request, hold_end),))
    released = replace(state, active=False, slot_held_until=None, slot_request=None)
    return Decision(released, (Deactivated(at, None),), (ReleaseSlot(request),))


def release_due(state: Marketing) -> int | None:
    """When the held slot is released (the hold's timer), or None."""
    return None if state.active else state.slot_held_until


def fire_release(state: Marketing, at: int) -> Decision:
    """The hold ended: free the slot. A replayed timer finds nothing to do."""
    due = release_due(state)
    if due is None:
        return Decision(state)
    if at < due:
        raise MarketingError("the hold has not ended yet")
    released = replace(state, slot_held_until=None, slot_request=None)
    return Decision(released, (SlotReleased(at),), (ReleaseSlot(_slot_request(state)),))


def drop_slot(state: Marketing) -> Decision:
    """Purge: the contact gives up its slot, held or not, with no marketing event."""
    if not state.holds_slot:
        return Decision(state)
    return Decision(
        replace(state, active=False, slot_held_until=None, slot_request=None),
        quota=(ReleaseSlot(_slot_request(state)),),
    )


def take_over(state: Marketing, merged: Marketing, at: int) -> Decision:
    """A sales survivor takes a merged contact's slot (SPEC §3.3.5): reused, same `activated_at`.

    The survivor's own held slot, if any, is given back: a contact holds one slot.
    """
    if state.active or not merged.active or merged.slot_request is None:
        raise MarketingError("only a sales survivor takes over an active merged slot")
    ops: tuple[QuotaOp, ...] = ()
    if state.slot_request is not None and state.holds_slot:
        ops = (ReleaseSlot(state.slot_request),)
    activated_at = merged.activated_at if merged.activated_at is not None else at
    request = merged.slot_request
    new = Marketing(active=True, activated_at=activated_at, slot_request=request)
    return Decision(new, (Activated(at, activated_at, "reused"),), (*ops, TakeSlot(request)))


def purge_not_before(state: Marketing, config: MarketingConfig) -> int | None:
    """SPEC §3.3.1: a trashed contact is not purged before its slot's hold ends."""
    if not state.holds_slot:
        return None
    if state.slot_held_until is not None:
        return state.slot_held_until  # a running hold keeps its end (SPEC §2.5)
    return _hold_end(state, config)


def _hold_end(state: Marketing, config: MarketingConfig) -> int:
    if state.activated_at is None:
        raise MarketingError("a marketing contact without activated_at")
    return state.activated_at + config.hold_days * DAY_MS


def _slot_request(state: Marketing) -> int:
    if state.slot_request is None:
        raise MarketingError("a slot holder without its request id")
    return state.slot_request


def _check_no_release_due(state: Marketing, at: int) -> None:
    # SPEC §3.7: the hold's end fires before any input at or after it.
    due = release_due(state)
    if due is not None and at >= due:
        raise MarketingError("fire the due slot release before applying a later input")


def _unused(
    state: Marketing, grant: Grant | None, *events: Event, ops: tuple[QuotaOp, ...] = ()
) -> Decision:
    """A decision that took no new slot: a slot granted for it goes back at once.

    Unless the contact holds a slot already: the quota then re-keyed that one
    slot to the grant's request (`quota.request_for`), and the contact adopts
    the new id so that its later release names the slot the quota holds.
    """
    if grant is not None and grant.granted and grant.request_id != state.slot_request:
        if state.holds_slot:
            state = replace(state, slot_request=grant.request_id)
        else:
            ops = (*ops, ReleaseSlot(grant.request_id))
    return Decision(state, events, ops)

"""Pydantic models of the wire contract (SPEC §2): inputs, tenant config and outputs.

Inputs are validated strictly (no "5" -> 5, no 5 -> "5") and unknown fields are
ignored (SPEC §2.1). `decode_input` applies the dead-letter checks of SPEC §2.7
in their order; `dumps` encodes any model with the SPEC's field names and
timestamps as `2026-11-22T10:00:00.000Z`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar, get_args, overload

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

MAX_VALUE_BYTES: Final = 64 * 1024
"""Every value on the wire is at most 64 KiB (SPEC §2)..."""
MAX_COMMAND_BYTES: Final = 512 * 1024
"""...except a command: SPEC §2.4 lets one name 10,000 contact ids, ~390 KB of UUIDs.

The two rules of the SPEC cannot both hold for a bulk `set_marketing`; the
larger limit keeps the 10,000 ids (reported in the issue note). Kafka's
default record size (1 MB) still holds it."""

# --------------------------------------------------------------------------- enums

Source = Literal[
    "form",
    "spider",
    "facebook_lead_ads",
    "landing_page",
    "inbox",
    "ecommerce",
    "import",
    "manual",
    "api",
    "deal",
]
EngagementType = Literal[
    "sent",
    "open",
    "click",
    "high_intent_visit",
    "page_visit",
    "form_submit",
    "reply",
    "bounce_soft",
    "bounce_hard",
    "unsubscribe",
    "spam_complaint",
]
ActivityKey = EngagementType | Literal["machine_open"]
OnMatch = Literal["update", "skip"]
MarketingVia = Literal["profile", "bulk", "inbox", "automation", "api"]
CommandType = Literal[
    "create_contact",
    "update_contact",
    "set_marketing",
    "delete_contact",
    "restore_contact",
    "purge_contact",
    "merge_contacts",
    "suspend_contact",
    "unsuspend_contact",
    "add_to_list",
    "remove_from_list",
]
LimitPolicy = Literal["reject", "allow_overage"]
ReaddDeletedPolicy = Literal["restore", "suspend"]
CauseKind = Literal["intake", "engagement", "command", "timer"]
ChangeType = Literal[
    "contact.created",
    "contact.updated",
    "identifier.added",
    "identifier.dropped",
    "identifier.removed",
    "intake.rejected",
    "intake.skipped",
    "marketing.activated",
    "marketing.deactivated",
    "marketing.slot_released",
    "marketing.activation_rejected",
    "quota.exceeded",
    "engagement.scored",
    "campaign_status.changed",
    "reactivation.due",
    "activity_tier.changed",
    "contact.deleted",
    "contact.restored",
    "contact.purged",
    "contact.merged",
    "contact.suspended",
    "contact.unsuspended",
    "list.added",
    "list.removed",
    "list.add_rejected",
    "command.rejected",
]
ContactState = Literal["live", "trashed", "purged", "merged"]
CampaignStatus = Literal["active", "engaged", "inactive", "reactivated", "suppressed"]
Tier = Literal["new", "frequent", "dormant", "expired", "inactive", "discarded"]
DeadLetterReason = Literal[
    "too_large",
    "invalid_json",
    "unknown_tenant_format",
    "unknown_type",
    "schema",
    "no_valid_identifier",
    "unknown_contact",
]
InputKind = Literal["intake", "engagement", "command"]

SOURCES: Final[tuple[str, ...]] = get_args(Source)
ENGAGEMENT_TYPES: Final[tuple[str, ...]] = get_args(EngagementType)
COMMAND_TYPES: Final[tuple[str, ...]] = get_args(CommandType)
CHANGE_TYPES: Final[tuple[str, ...]] = get_args(ChangeType)
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = get_args(DeadLetterReason)

# ---------------------------------------------------------------------- timestamps

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset into an aware UTC datetime.

    Fractions beyond the microsecond are dropped; a missing offset, an
    out-of-range part or a leap second raises ValueError.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp with an offset")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    if match.group(8):
        offset = timedelta(0)
    else:
        off_hours, off_minutes = int(match.group(10)), int(match.group(11))
        if off_hours > 23 or off_minutes > 59:
            raise ValueError("offset out of range")
        offset = timedelta(hours=off_hours, minutes=off_minutes)
        if match.group(9) == "-":
            offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, micro, timezone(offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("timestamp out of range") from None


def format_ts(moment: datetime) -> str:
    """UTC, millisecond precision (sub-ms floored) and `Z`: `2026-11-22T10:00:00.000Z`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: an offset is required")
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, floored."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: an offset is required")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds (e.g. a Kafka record timestamp)."""
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError("timestamp out of range") from None


def _truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _input_ts(value: object) -> datetime:
    # JSON inputs carry strings only; aware datetimes are for producers in Python.
    if isinstance(value, str):
        return _truncate_ms(parse_ts(value))
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: an offset is required")
        return _truncate_ms(value.astimezone(UTC))
    raise ValueError("must be an RFC 3339 timestamp string with an offset")


def _output_ts(value: object) -> datetime:
    # The domain keeps time as epoch ms, so outputs also take ints.
    if isinstance(value, int) and not isinstance(value, bool):
        return from_epoch_ms(value)
    return _input_ts(value)


_TS_JSON_SCHEMA: Final = {"type": "string", "format": "date-time"}

InputTimestamp = Annotated[
    datetime,
    PlainValidator(_input_ts, json_schema_input_type=str),
    PlainSerializer(format_ts, return_type=str),
    WithJsonSchema(_TS_JSON_SCHEMA),
]
"""RFC 3339 with an offset, held as aware UTC truncated to the millisecond."""

Timestamp = Annotated[
    datetime,
    PlainValidator(_output_ts, json_schema_input_type=str),
    PlainSerializer(format_ts, return_type=str),
    WithJsonSchema(_TS_JSON_SCHEMA),
]
"""An output timestamp: from a datetime, RFC 3339 text or epoch ms; written by `format_ts`."""

# ----------------------------------------------------------------- field types

TENANT_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
_TENANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_valid_tenant_id(value: object) -> bool:
    """True when `value` is a tenant id of SPEC §2.1 (1-64 of `[A-Za-z0-9_-]`)."""
    return isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None


Scalar: TypeAlias = str | int | float | bool | None


def _scalar(value: object) -> Scalar:
    # One clear error instead of one per union member.
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise ValueError("must be a string, number, boolean or null")


FieldValue = Annotated[
    Scalar,
    PlainValidator(_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]

EventId = Annotated[str, Field(min_length=1, max_length=128)]
TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN)]
ContactId = Annotated[str, Field(min_length=1, max_length=128)]
ListId = Annotated[str, Field(min_length=1, max_length=128)]
Tag = Annotated[str, Field(min_length=1, max_length=256)]
FieldName = Annotated[str, Field(min_length=1, max_length=128)]
Owner = Annotated[str, Field(min_length=1, max_length=128)]
Region = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
# Identifiers are not length-checked here: an invalid one is left out and
# reported by the domain (SPEC §2.2), it does not dead-letter the input.
Identifiers = Annotated[list[str], Field(max_length=11)]
ContactIds = Annotated[list[ContactId], Field(min_length=1, max_length=10_000)]
NonNegInt = Annotated[int, Field(ge=0)]
Days = Annotated[int, Field(ge=0, le=36_500)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Fields = dict[FieldName, FieldValue]

_INPUT_CONFIG: Final = ConfigDict(strict=True, extra="ignore", frozen=True)
# Outputs write every key (nulls included), so their schemas require every key.
_OUTPUT_CONFIG: Final = ConfigDict(
    strict=True, extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
)

# ---------------------------------------------------------------------- inputs


class Envelope(BaseModel):
    """Fields of every input (SPEC §2.1)."""

    model_config = _INPUT_CONFIG

    event_id: EventId
    tenant_id: TenantId
    occurred_at: InputTimestamp | None = None


class _ContactData(Envelope):
    emails: Identifiers = Field(default_factory=list)
    phones: Identifiers = Field(default_factory=list)
    phone_region: Region | None = None
    fields: Fields = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    marketing: bool | None = None
    on_match: OnMatch = "update"
    owner: Owner | None = None


class ContactIntake(_ContactData):
    """A contact-intake event (SPEC §2.2)."""

    source: Source


class EngagementEvent(Envelope):
    """An engagement event (SPEC §2.3): exactly one of contact_id, email, phone."""

    type: EngagementType
    contact_id: ContactId | None = None
    email: str | None = None
    phone: str | None = None
    campaign_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    url: Annotated[str, Field(max_length=8192)] | None = None
    machine_open: bool = False

    @model_validator(mode="after")
    def _exactly_one_contact_reference(self) -> EngagementEvent:
        named = [v for v in (self.contact_id, self.email, self.phone) if v is not None]
        if len(named) != 1:
            raise ValueError("exactly one of contact_id, email, phone is required")
        return self


def _require_type(schema: dict[str, Any]) -> None:
    # `type` has a default for Python callers, but on the wire it selects the model.
    schema["required"] = ["type", *schema.get("required", [])]
    schema["properties"]["type"].pop("default", None)


class _Command(Envelope):
    model_config = ConfigDict(json_schema_extra=_require_type)

    def model_post_init(self, context: Any, /) -> None:
        # `type` has a default but is part of the value: dumps(exclude_unset) keeps it.
        self.__pydantic_fields_set__.add("type")


class CreateContact(_Command, _ContactData):
    """Manual creation (SPEC §2.4): as ContactIntake, without `source`."""

    type: Literal["create_contact"] = "create_contact"


class UpdateContact(_Command):
    """Profile edit. A null in `fields` or an explicit `owner: null` clears the value."""

    type: Literal["update_contact"] = "update_contact"
    contact_id: ContactId
    fields: Fields = Field(default_factory=dict)
    tags_add: list[Tag] = Field(default_factory=list)
    tags_remove: list[Tag] = Field(default_factory=list)
    add_emails: Identifiers = Field(default_factory=list)
    add_phones: Identifiers = Field(default_factory=list)
    remove_emails: Identifiers = Field(default_factory=list)
    remove_phones: Identifiers = Field(default_factory=list)
    primary_email: str | None = None
    primary_phone: str | None = None
    owner: Owner | None = None

    @property
    def sets_owner(self) -> bool:
        """True when the command names `owner` (null then clears it); absent leaves it."""
        return "owner" in self.model_fields_set


class SetMarketing(_Command):
    type: Literal["set_marketing"] = "set_marketing"
    contact_ids: ContactIds
    marketing: bool
    via: MarketingVia


class DeleteContact(_Command):
    type: Literal["delete_contact"] = "delete_contact"
    contact_ids: ContactIds


class RestoreContact(_Command):
    type: Literal["restore_contact"] = "restore_contact"
    contact_ids: ContactIds


class PurgeContact(_Command):
    type: Literal["purge_contact"] = "purge_contact"
    contact_ids: ContactIds


class MergeContacts(_Command):
    type: Literal["merge_contacts"] = "merge_contacts"
    survivor_id: ContactId
    merged_ids: ContactIds


class SuspendContact(_Command):
    type: Literal["suspend_contact"] = "suspend_contact"
    contact_ids: ContactIds


class UnsuspendContact(_Command):
    type: Literal["unsuspend_contact"] = "unsuspend_contact"
    contact_ids: ContactIds


class AddToList(_Command):
    type: Literal["add_to_list"] = "add_to_list"
    list_id: ListId
    contact_ids: ContactIds


class RemoveFromList(_Command):
    type: Literal["remove_from_list"] = "remove_from_list"
    list_id: ListId
    contact_ids: ContactIds


Command: TypeAlias = Annotated[
    CreateContact
    | UpdateContact
    | SetMarketing
    | DeleteContact
    | RestoreContact
    | PurgeContact
    | MergeContacts
    | SuspendContact
    | UnsuspendContact
    | AddToList
    | RemoveFromList,
    Field(discriminator="type"),
]
"""A command (SPEC §2.4), discriminated on `type`."""

COMMAND_ADAPTER: Final[TypeAdapter[Command]] = TypeAdapter(Command)
COMMAND_MODELS: Final[dict[str, type[_Command]]] = {
    model.model_fields["type"].default: model for model in get_args(get_args(Command)[0])
}

# ---------------------------------------------------------------- tenant config

DEFAULT_POINTS: Final[dict[EngagementType, int]] = {"open": 5, "click": 10, "high_intent_visit": 15}
DEFAULT_BLOCKED_VALUES: Final[tuple[str, ...]] = (
    "re:^(test|noreply|no-reply|example)@",
    r"re:^\+?0+$",
    "null",
    "anonymous",
)


class TenantConfig(BaseModel):
    """A tenant's whole config (SPEC §2.5); absent fields and `points` keys take defaults."""

    # Plain (not factory) defaults so the JSON Schema shows them; pydantic copies them.

    model_config = _INPUT_CONFIG

    marketing_module: bool = True
    marketing_limit: NonNegInt | None = None
    limit_policy: LimitPolicy = "reject"
    default_region: Region = "ES"
    alt_email_limit: Count = 10
    alt_phone_limit: Count = 10
    points: dict[EngagementType, Annotated[int, Field(ge=0, le=1_000_000)]] = Field(
        default=dict(DEFAULT_POINTS)
    )
    engaged_threshold: NonNegInt = 20
    score_half_life_days: Days = 30
    inactive_after_sends: Count = 3
    inactive_after_days: Days = 90
    cooling_days: Days = 30
    reactivation_interval_days: Days = 14
    reactivation_attempts: Count = 2
    hold_days: Days = 30
    trash_retention_days: Days = 30
    dedup_days: Days = 7
    readd_deleted_policy: ReaddDeletedPolicy = "restore"
    emit_score_updates: bool = True
    filterable_fields: list[FieldName] = Field(default=["city", "company"])
    blocked_values: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default=list(DEFAULT_BLOCKED_VALUES)
    )

    @field_validator("points", mode="after")
    @classmethod
    def _merge_default_points(cls, points: dict[EngagementType, int]) -> dict[EngagementType, int]:
        return {**DEFAULT_POINTS, **points}

    @field_validator("blocked_values", mode="after")
    @classmethod
    def _regexes_compile(cls, values: list[str]) -> list[str]:
        # A bad pattern must dead-letter the config, not crash the worker that matches it.
        for index, value in enumerate(values):
            if value.startswith("re:"):
                try:
                    re.compile(value[3:])
                except (re.error, RecursionError, OverflowError):
                    raise ValueError(f"entry {index} is not a valid regular expression") from None
        return values


# ---------------------------------------------------------------------- outputs


class Cause(BaseModel):
    """What made a change; `clamped` appears on the wire only when true."""

    model_config = _OUTPUT_CONFIG

    kind: CauseKind
    event_id: str | None = None
    clamped: bool = Field(default=False, exclude_if=lambda clamped: not clamped)


class ChangeEvent(BaseModel):
    """A state change (SPEC §2.6), keyed `{tenant_id}:{contact_id}` on the changes topic."""

    model_config = _OUTPUT_CONFIG

    change_id: Annotated[str, Field(min_length=1)]
    tenant_id: TenantId
    contact_id: Annotated[str, Field(min_length=1)]
    version: NonNegInt
    type: ChangeType
    at: Timestamp
    cause: Cause
    data: dict[str, Any] = Field(default_factory=dict)


class SnapshotMarketing(BaseModel):
    model_config = _OUTPUT_CONFIG

    active: bool = False
    activated_at: Timestamp | None = None
    slot_held_until: Timestamp | None = None


class SnapshotEngagement(BaseModel):
    model_config = _OUTPUT_CONFIG

    score: float = 0.0
    score_at: Timestamp | None = None
    last_engagement_at: Timestamp | None = None
    last_activity_at: Timestamp | None = None
    campaign_status: CampaignStatus | None = None
    sends_since_engagement: NonNegInt = 0
    reactivation_cycle: NonNegInt = 0
    tier: Tier = "inactive"


class ContactSnapshot(BaseModel):
    """The contact (SPEC §2.6.1): `contact.created` data, Redis value, HTTP view.

    Every key is always written, nulls included; a tombstone (purged, merged)
    has the defaults where its data was erased.
    """

    model_config = _OUTPUT_CONFIG

    contact_id: Annotated[str, Field(min_length=1)]
    tenant_id: TenantId
    version: NonNegInt
    created_at: Timestamp
    updated_at: Timestamp
    state: ContactState
    source: Source | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    lists: list[str] = Field(default_factory=list)
    suspended: bool = False
    deleted_at: Timestamp | None = None
    merged_into: str | None = None
    marketing: SnapshotMarketing = Field(default_factory=SnapshotMarketing)
    engagement: SnapshotEngagement = Field(default_factory=SnapshotEngagement)
    activity: dict[ActivityKey, Timestamp] = Field(default_factory=dict)


class DeadLetter(BaseModel):
    """An input that could not be applied (SPEC §2.7), keyed by the input's key."""

    model_config = _OUTPUT_CONFIG

    reason: DeadLetterReason
    detail: str
    topic: str
    partition: NonNegInt
    offset: NonNegInt
    key: str | None
    raw: str
    at: Timestamp


def dead_letter_raw(raw: bytes | None) -> str:
    """The bytes as UTF-8 text, U+FFFD for invalid bytes, cut at 64 KiB of UTF-8."""
    if not raw:
        return ""
    # A few bytes past the cut let a character that straddles it decode whole.
    text = raw[: MAX_VALUE_BYTES + 4].decode("utf-8", errors="replace")
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_VALUE_BYTES:
        return text
    return encoded[:MAX_VALUE_BYTES].decode("utf-8", errors="ignore")


def make_dead_letter(
    reason: DeadLetterReason,
    detail: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    at: datetime | int,
) -> DeadLetter:
    """Build the dead letter of one consumed record (`at` as datetime or epoch ms)."""
    return DeadLetter(
        reason=reason,
        detail=detail,
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else dead_letter_raw(key),
        raw=dead_letter_raw(raw),
        at=_output_ts(at),
    )


# --------------------------------------------------------------------- encoding


def _json_default(value: object) -> Any:
    # Datetimes inside free-form `data` get the wire format too.
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(model: BaseModel) -> bytes:
    """Encode a wire model as JSON bytes with the SPEC's field names.

    Outputs and TenantConfig write every field, nulls included. Inputs write
    only the fields that were given, so `UpdateContact(owner=None)` (clear the
    owner) stays distinct from not naming `owner` at all.
    """
    data = model.model_dump(mode="python", exclude_unset=isinstance(model, Envelope))
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


to_json_bytes = dumps

# --------------------------------------------------------------------- decoding


class InputRejected(Exception):
    """An input to dead-letter: a SPEC §2.7 `reason`; `detail` never quotes input values."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DeadLetterReason = reason
        self.detail = detail


_SAFE_PATH_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_REPORTED_ERRORS: Final = 5


def _path(loc: tuple[int | str, ...]) -> str:
    # Dict keys come from the input (a field name may be an email): show only plain names.
    parts = [
        str(part)
        if isinstance(part, int) or part == "[key]" or _SAFE_PATH_PART.fullmatch(part)
        else "<key>"
        for part in loc
    ]
    return ".".join(parts)


def summarize_validation_error(error: ValidationError) -> str:
    """A short readable summary of pydantic's errors: paths and messages, never input values."""
    errors = error.errors(include_url=False, include_context=False, include_input=True)
    lines = []
    for item in errors[:_MAX_REPORTED_ERRORS]:
        message = item["msg"]
        value = item.get("input")
        if isinstance(value, str) and len(value) >= 3 and value in message:
            message = message.replace(value, "…")
        path = _path(item["loc"])
        lines.append(f"{path}: {message[:200]}" if path else message[:200])
    more = len(errors) - _MAX_REPORTED_ERRORS
    if more > 0:
        lines.append(f"and {more} more")
    return "; ".join(lines)


def _load_object(raw: bytes | None, limit: int = MAX_VALUE_BYTES) -> dict[str, Any]:
    if raw is not None and len(raw) > limit:
        raise InputRejected("too_large", f"value is {len(raw)} bytes, over {limit}")
    if not raw:
        raise InputRejected("invalid_json", "empty value")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson's message may quote the input: keep only the kind of failure.
        raise InputRejected("invalid_json", "not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise InputRejected("invalid_json", f"a JSON object is required, got {_json_kind(value)}")
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], value: dict[str, Any]) -> _M:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise InputRejected("schema", summarize_validation_error(error)) from None


@overload
def decode_input(kind: Literal["intake"], raw: bytes | None) -> ContactIntake: ...
@overload
def decode_input(kind: Literal["engagement"], raw: bytes | None) -> EngagementEvent: ...
@overload
def decode_input(kind: Literal["command"], raw: bytes | None) -> Command: ...
@overload
def decode_input(
    kind: InputKind, raw: bytes | None
) -> ContactIntake | EngagementEvent | Command: ...
def decode_input(kind: InputKind, raw: bytes | None) -> ContactIntake | EngagementEvent | Command:
    """Decode one input value; raise InputRejected with the first failing check of SPEC §2.7."""
    value = _load_object(raw, MAX_COMMAND_BYTES if kind == "command" else MAX_VALUE_BYTES)
    if not is_valid_tenant_id(value.get("tenant_id")):
        missing = "tenant_id" not in value
        raise InputRejected(
            "unknown_tenant_format",
            "tenant_id is missing" if missing else "tenant_id must be 1-64 of [A-Za-z0-9_-]",
        )
    if kind == "intake":
        return _validate(ContactIntake, value)
    type_ = value.get("type")
    if kind == "engagement":
        if not (isinstance(type_, str) and type_ in ENGAGEMENT_TYPES):
            raise InputRejected("unknown_type", _type_detail(value, "engagement"))
        return _validate(EngagementEvent, value)
    if kind == "command":
        if not (isinstance(type_, str) and type_ in COMMAND_MODELS):
            raise InputRejected("unknown_type", _type_detail(value, "command"))
        # Validating against the one model keeps error paths free of the union tag.
        return _validate(COMMAND_MODELS[type_], value)  # type: ignore[return-value]
    raise ValueError(f"unknown input kind {kind!r}")


def _type_detail(value: dict[str, Any], kind: str) -> str:
    if "type" not in value:
        return f"{kind} type is missing"
    type_ = value["type"]
    if isinstance(type_, str) and _SAFE_PATH_PART.fullmatch(type_):
        return f"unknown {kind} type {type_!r}"
    return f"{kind} type is not one of the known types"


def decode_tenant_config(raw: bytes | None) -> TenantConfig:
    """Decode a `tenants.config.v1` value; a null, empty or JSON `null` value means defaults."""
    if not raw or raw.strip() == b"null":
        return TenantConfig()
    return _validate(TenantConfig, _load_object(raw))

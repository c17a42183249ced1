"""Which Redis index entries a contact snapshot has (SPEC §4): pure, no Redis.

An entry is a name under the tenant's prefix (`cs:{t}:`): the segment sets
(`marketing`, `status:…`, `tier:…`, `list:…`, `trash`), the filter sets
(`source:…`, `owner:…`, `tag:…`, `field:{name}:{value}`) and the sorted set
`created`. The read model passes a snapshot's entries to its Lua script as
KEYS; the script removes the contact from the entries its previous snapshot
had and this one has not, so what one write adds and removes is the
difference of two of these lists (`index_changes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from stream.domain.timefmt import to_ms

DEFAULT_FILTERABLE_FIELDS: tuple[str, ...] = ("city", "company")
# A longer field value is not indexed (SPEC §4): it would make a key of its own.
MAX_FIELD_INDEX_CHARS = 256
CREATED = "created"


def tenant_prefix(prefix: str, tenant_id: str) -> str:
    """`cs:{acme}`: the braces are a Redis Cluster hash tag, one slot per tenant."""
    return f"{prefix}:{{{tenant_id}}}"


def segment_names(snap: dict[str, Any]) -> list[str]:
    """The segment sets a contact belongs to (SPEC §4): live ones only, trashed in `trash`."""
    state = snap.get("state")
    if state == "trashed":
        return ["trash"]
    if state != "live":
        return []
    names = []
    if snap.get("marketing", {}).get("active"):
        names.append("marketing")
    engagement = snap.get("engagement", {})
    if engagement.get("campaign_status"):
        names.append(f"status:{engagement['campaign_status']}")
    if engagement.get("tier"):
        names.append(f"tier:{engagement['tier']}")
    names += [f"list:{list_id}" for list_id in snap.get("lists", [])]
    return names


def field_index_value(value: Any) -> str | None:
    """A field value as its index names it: JSON text (strings unquoted), case-folded.

    None for a value that is not indexed: null, or longer than 256 characters.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > MAX_FIELD_INDEX_CHARS:
        return None
    return text.casefold()


def filter_names(snap: dict[str, Any], filterable_fields: Sequence[str]) -> list[str]:
    """The filter sets of a live contact: source, owner, tags and the filterable fields."""
    if snap.get("state") != "live":
        return []
    names = []
    if snap.get("source") is not None:
        names.append(f"source:{snap['source']}")
    if snap.get("owner") is not None:
        names.append(f"owner:{snap['owner']}")
    names += [f"tag:{tag}" for tag in snap.get("tags", [])]
    fields = snap.get("fields", {})
    for name in dict.fromkeys(filterable_fields):
        value = field_index_value(fields.get(name))
        if value is not None:
            names.append(f"field:{name}:{value}")
    return names


def index_names(
    snap: dict[str, Any], filterable_fields: Sequence[str], filters: bool = True
) -> list[str]:
    """Every index entry of a snapshot, `created` (the sorted set) last when it has one.

    `filters=False` leaves the filter sets and `created` out (the benchmark's
    "indexes off").
    """
    names = segment_names(snap)
    if filters and snap.get("state") == "live":
        names += filter_names(snap, filterable_fields)
        if snap.get("created_at") is not None:  # always, on the wire
            names.append(CREATED)
    return list(dict.fromkeys(names))


def created_ms(snap: dict[str, Any]) -> int:
    """`created_at` as epoch milliseconds: the contact's score in `created`."""
    return to_ms(datetime.fromisoformat(snap["created_at"]))


def index_changes(
    before: dict[str, Any] | None, after: dict[str, Any], filterable_fields: Sequence[str]
) -> tuple[set[str], set[str]]:
    """The entries a write of `after` over `before` adds, and those it removes."""
    old = set() if before is None else set(index_names(before, filterable_fields))
    new = set(index_names(after, filterable_fields))
    return new - old, old - new

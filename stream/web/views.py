"""HTTP views (SPEC §5): health, a contact, a lookup by email or phone, a tenant's quota,
and finding contacts (search, history, saved filters, segment sizes).

A contact and an identifier each live on one partition, so the view routes
the request to the worker that owns the key (Faust's table router, which
forwards the request's headers) and only answers it from its own table when
it is that worker. The finding views read the Redis read model
(stream/projection/search.py), so any worker answers them. Errors are JSON
with a status: 400 for bad input (with `parameter` naming a bad search
parameter), 401 without the bearer token (when `CS_HTTP_TOKEN` is set), 404
for unknown, 503 while Redis does not answer.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from faust.exceptions import SameNode
from faust.types import TableT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from stream.app import app, settings
from stream.domain.contact import PURGED, snapshot
from stream.domain.normalize import Kind, normalize_identifiers
from stream.domain.timefmt import format_ms
from stream.models import is_valid_tenant_id
from stream.projection import search
from stream.projection.service import REDIS_DOWN
from stream.tables.codec import decode_contact
from stream.tables.contacts import contact_key, contacts
from stream.tables.identities import decode_entry, identities, identity_key
from stream.tables.quota import quota_holders, quota_index
from stream.tables.tenant_configs import tenant_configs

LOCK_WAIT_STEP, LOCK_WAIT_STEPS = 0.05, 40  # up to 2 s


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "app": app.conf.id})


def _error(view: View, status: int, error: str, detail: str) -> Response:
    return view.json({"error": error, "detail": detail}, status=status)


def _refused(view: View, request: Request, tenant: str) -> Response | None:
    """401 without the configured token (none configured: open), 400 for a bad tenant id."""
    token = settings.http_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(view, 401, "unauthorized", "a bearer token is required")
    if not is_valid_tenant_id(tenant):
        return _error(view, 400, "bad_request", "tenant: not a tenant id")
    return None


async def _routed(
    view: View, request: Request, table: TableT[Any, Any], key: str
) -> Response | None:
    """The owner's answer when another worker owns `key`; None when this one does."""
    try:
        return await app.router.route_req(table.name, key, view.web, request)
    except SameNode:
        return None


@app.page("/v1/tenants/{tenant}/contacts/{contact_id}")
class ContactView(View):
    async def get(self, request: Request, tenant: str, contact_id: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused
        key = contact_key(tenant, contact_id)
        if (answer := await _routed(self, request, contacts, key)) is not None:
            return answer
        raw = contacts.get(key)
        contact = None if raw is None else decode_contact(raw)
        if contact is None or contact.state == PURGED:
            return _error(self, 404, "unknown_contact", "no contact has this id")
        # A merged contact answers with its tombstone: `merged_into` names the survivor.
        return self.json(snapshot(contact))


@app.page("/v1/tenants/{tenant}/lookup")
class LookupView(View):
    async def get(self, request: Request, tenant: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused
        email, phone = request.query.get("email"), request.query.get("phone")
        if (email is None) == (phone is None):
            return _error(self, 400, "bad_request", "give exactly one of email, phone")
        config = tenant_configs.get(tenant)
        ids = normalize_identifiers(
            [email] if email is not None else [],
            [phone] if phone is not None else [],
            config.default_region,
            config.blocked_values,
        )
        if ids.emails:
            kind, value = Kind.EMAIL, ids.emails[0]
        elif ids.phones:
            kind, value = Kind.PHONE, ids.phones[0]
        else:
            name = "email" if email is not None else "phone"
            return _error(self, 400, "bad_request", f"{name}: invalid or blocked")
        key = identity_key(tenant, kind.value, value)
        if (answer := await _routed(self, request, identities, key)) is not None:
            return answer
        entry = decode_entry(identities.get(key))
        # An operation holding the identifier may be about to set its owner (a
        # new contact is published before its identifiers' unlocks land):
        # wait a little for it, as an engagement does, rather than answer 404.
        for _ in range(LOCK_WAIT_STEPS):
            if entry.lock is None:
                break
            await asyncio.sleep(LOCK_WAIT_STEP)
            entry = decode_entry(identities.get(key))
        if entry.lock is not None:
            return self.json(
                {"error": "busy", "detail": "an operation holds this identifier; retry"},
                status=503,
                headers={"Retry-After": "1"},
            )
        owner = entry.owner
        if owner is None:
            return _error(self, 404, "unknown_contact", f"no contact holds this {kind.value}")
        return self.json({"contact_id": owner, "kind": kind.value})


@app.page("/v1/tenants/{tenant}/quota")
class QuotaView(View):
    """Used, limit and the coming slot releases, from the tenant's quota partition."""

    async def get(self, request: Request, tenant: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused
        # The quota's entries live on the partition of the tenant's key.
        if (answer := await _routed(self, request, quota_holders, tenant)) is not None:
            return answer
        return self.json(
            {
                "tenant_id": tenant,
                "used": quota_index.used(tenant),
                "limit": tenant_configs.get(tenant).marketing_limit,
                "releases": [
                    {"contact_id": contact_id, "at": format_ms(at)}
                    for at, contact_id in quota_index.releases(tenant)
                ],
            }
        )


@app.page("/metrics")
class Metrics(View):
    """Prometheus text format: this worker's counters (stream/metrics.py) and process metrics."""

    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@cache
def _redis() -> Redis:
    """The worker's Redis client for the finding views, built at the first request."""
    return Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
    )


async def _from_redis(view: View, answer: Callable[[Redis], Awaitable[Response]]) -> Response:
    """`answer` with the Redis client; 503 while Redis does not answer."""
    try:
        return await answer(_redis())
    except REDIS_DOWN:
        return view.json(
            {"error": "unavailable", "detail": "the read model does not answer; retry"},
            status=503,
            headers={"Retry-After": "1"},
        )


def _bad_query(view: View, bad: search.BadQuery) -> Response:
    return view.json(
        {"error": "bad_request", "detail": str(bad), "parameter": bad.parameter}, status=400
    )


async def _search(
    view: View, tenant: str, pairs: list[tuple[str, str]], paging: list[tuple[str, str]]
) -> Response:
    """The search answer for criteria `pairs` and the `limit`/`cursor` pairs in `paging`."""
    fields = tenant_configs.get(tenant).filterable_fields
    try:
        query, _ = search.parse_query(pairs, fields, paging=False)
        _, page = search.parse_query(paging, fields)
    except search.BadQuery as bad:
        return _bad_query(view, bad)

    async def answer(client: Redis) -> Response:
        found = await search.search(client, settings.redis_prefix, tenant, query, page)
        return view.json(found)

    return await _from_redis(view, answer)


def _split_paging(
    pairs: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    criteria = [(k, v) for k, v in pairs if k not in search.PAGING]
    return criteria, [(k, v) for k, v in pairs if k in search.PAGING]


@app.page("/v1/tenants/{tenant}/contacts")
class ContactSearchView(View):
    """Live contacts matching every given criterion, in (created_at, contact_id) order."""

    async def get(self, request: Request, tenant: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused
        criteria, paging = _split_paging(search.query_pairs(request.rel_url.raw_query_string))
        return await _search(self, tenant, criteria, paging)


@app.page("/v1/tenants/{tenant}/contacts/{contact_id}/history")
class ContactHistoryView(View):
    """A contact's change events, newest first (`limit`: default 50, at most 500)."""

    async def get(self, request: Request, tenant: str, contact_id: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused
        text = request.query.get("limit", str(search.DEFAULT_HISTORY_LIMIT))
        if not text.isdigit() or not 1 <= int(text) <= search.MAX_LIMIT:
            return _bad_query(self, search.BadQuery("limit", f"1 to {search.MAX_LIMIT}"))

        async def answer(client: Redis) -> Response:
            events = await search.contact_history(
                client, settings.redis_prefix, tenant, contact_id, int(text)
            )
            if events is None:
                return _error(self, 404, "unknown_contact", "no contact has this id")
            return self.json({"contact_id": contact_id, "changes": events})

        return await _from_redis(self, answer)


@app.page("/v1/tenants/{tenant}/segments")
class SegmentsView(View):
    """The size of every marketing, status, tier, list, source and trash set."""

    async def get(self, request: Request, tenant: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused

        async def answer(client: Redis) -> Response:
            return self.json(await search.segment_counts(client, settings.redis_prefix, tenant))

        return await _from_redis(self, answer)


@app.page("/v1/tenants/{tenant}/filters")
class FiltersView(View):
    """Every saved filter of the tenant: name → query string."""

    async def get(self, request: Request, tenant: str) -> Response:
        if (refused := _refused(self, request, tenant)) is not None:
            return refused

        async def answer(client: Redis) -> Response:
            found = await search.saved_filters(client, settings.redis_prefix, tenant)
            return self.json({"filters": found})

        return await _from_redis(self, answer)


def _filter_refused(view: View, request: Request, tenant: str, name: str) -> Response | None:
    """As `_refused`, and 400 for a filter name that is not 1 to 64 of [A-Za-z0-9_.-]."""
    if (refused := _refused(view, request, tenant)) is not None:
        return refused
    if search.FILTER_NAME.fullmatch(name):
        return None
    return _error(view, 400, "bad_request", "name: 1 to 64 of A-Z a-z 0-9 _ . -")


@app.page("/v1/tenants/{tenant}/filters/{name}")
class FilterView(View):
    """A saved filter: PUT its query string (validated; no limit or cursor), GET, DELETE."""

    async def put(self, request: Request, tenant: str, name: str) -> Response:
        if (refused := _filter_refused(self, request, tenant, name)) is not None:
            return refused
        text = (await request.text()).strip()
        try:
            search.parse_query(
                search.query_pairs(text), tenant_configs.get(tenant).filterable_fields, paging=False
            )
        except search.BadQuery as bad:
            return _bad_query(self, bad)

        async def answer(client: Redis) -> Response:
            await search.save_filter(client, settings.redis_prefix, tenant, name, text)
            return self.json({"name": name, "query": text})

        return await _from_redis(self, answer)

    async def get(self, request: Request, tenant: str, name: str) -> Response:
        if (refused := _filter_refused(self, request, tenant, name)) is not None:
            return refused

        async def answer(client: Redis) -> Response:
            text = await search.saved_filter(client, settings.redis_prefix, tenant, name)
            if text is None:
                return _error(self, 404, "unknown_filter", "no filter has this name")
            return self.json({"name": name, "query": text})

        return await _from_redis(self, answer)

    async def delete(self, request: Request, tenant: str, name: str) -> Response:
        if (refused := _filter_refused(self, request, tenant, name)) is not None:
            return refused

        async def answer(client: Redis) -> Response:
            if not await search.delete_filter(client, settings.redis_prefix, tenant, name):
                return _error(self, 404, "unknown_filter", "no filter has this name")
            return self.json({"name": name, "deleted": True})

        return await _from_redis(self, answer)


@app.page("/v1/tenants/{tenant}/filters/{name}/contacts")
class FilterContactsView(View):
    """The search of a saved filter; `limit` and `cursor` as for the search."""

    async def get(self, request: Request, tenant: str, name: str) -> Response:
        if (refused := _filter_refused(self, request, tenant, name)) is not None:
            return refused
        criteria, paging = _split_paging(search.query_pairs(request.rel_url.raw_query_string))
        if criteria:
            return _bad_query(
                self,
                search.BadQuery(criteria[0][0], "only limit and cursor go with a saved filter"),
            )

        async def answer(client: Redis) -> Response:
            text = await search.saved_filter(client, settings.redis_prefix, tenant, name)
            if text is None:
                return _error(self, 404, "unknown_filter", "no filter has this name")
            return await _search(self, tenant, search.query_pairs(text), paging)

        return await _from_redis(self, answer)

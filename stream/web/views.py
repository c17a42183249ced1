"""HTTP views (SPEC §5): health, a contact, a lookup by email or phone, a tenant's quota.

A contact and an identifier each live on one partition, so the view routes
the request to the worker that owns the key (Faust's table router, which
forwards the request's headers) and only answers it from its own table when
it is that worker. Errors are JSON with a status: 400 for bad input, 401
without the bearer token (when `CS_HTTP_TOKEN` is set), 404 for unknown.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from faust.exceptions import SameNode
from faust.types import TableT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.app import app, settings
from stream.domain.contact import PURGED, snapshot
from stream.domain.normalize import Kind, normalize_identifiers
from stream.domain.timefmt import format_ms
from stream.models import is_valid_tenant_id
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

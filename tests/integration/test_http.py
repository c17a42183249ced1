"""SPEC §5: a contact and a lookup over HTTP, answered by the worker that owns the key.

Two workers, 8 partitions: every contact and identifier is asked of both
workers, so half of the answers are forwarded by Faust's table router to
the owner. With `CS_HTTP_TOKEN` set the views want the bearer token.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Env, Worker, wait_for
from tests.integration.test_identity_races import send_all
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration

TOKEN = "test-token-1"  # noqa: S105 (a test value)


async def get(
    session: aiohttp.ClientSession, worker: Worker, path: str, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}{path}"
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_contacts_and_lookups_are_answered_by_any_worker_for_the_owner(
    env: Env, producer, reader
) -> None:
    workers = await env.started_workers("a", "b", CS_PARTITIONS="8", CS_HTTP_TOKEN=TOKEN)
    changes = await reader(env.topic("contacts.changes.v1"))
    people = [(f"h{n}@example.com", f"6001112{n:02d}") for n in range(8)]
    await send_all(producer, env, [intake("acme", [e], [p]) for e, p in people])
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 8)
    ids = {c["data"]["contact"]["emails"][0]: c["contact_id"] for c in created}
    async with aiohttp.ClientSession() as session:
        for email, phone in people:
            for worker in workers:
                status, body = await get(session, worker, f"/v1/tenants/acme/contacts/{ids[email]}")
                assert status == 200, body
                assert body["emails"] == [email] and body["phones"] == [f"+34{phone}"]
                status, body = await get(
                    session, worker, f"/v1/tenants/acme/lookup?email={email.upper()}"
                )
                assert (status, body.get("contact_id")) == (200, ids[email]), body
                status, body = await get(session, worker, f"/v1/tenants/acme/lookup?phone={phone}")
                assert (status, body.get("contact_id")) == (200, ids[email]), body

        a = workers[0]
        unknown = "00000000-0000-4000-8000-000000000000"
        cases = [
            (f"/v1/tenants/acme/contacts/{unknown}", 404, "unknown_contact"),
            ("/v1/tenants/acme/lookup?email=nobody@example.com", 404, "unknown_contact"),
            ("/v1/tenants/acme/lookup?email=not-an-email", 400, "bad_request"),
            ("/v1/tenants/acme/lookup", 400, "bad_request"),
            ("/v1/tenants/ac%20me/contacts/x", 400, "bad_request"),
            # The same email in another tenant is another identity (SPEC §6 isolation).
            ("/v1/tenants/other/lookup?email=h1@example.com", 404, "unknown_contact"),
        ]
        for path, expected, error in cases:
            status, body = await get(session, a, path)
            assert (status, body["error"]) == (expected, error), path
        path = f"/v1/tenants/acme/contacts/{ids['h0@example.com']}"
        assert (await get(session, a, path, token=None))[0] == 401
        assert (await get(session, a, path, token="wrong"))[0] == 401  # noqa: S106
        assert (await get(session, a, "/health", token=None))[0] == 200


async def test_metrics_count_inputs_changes_dead_letters_and_operation_times(
    env: Env, producer, reader
) -> None:
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    dead = await reader(env.topic("contacts.deadletter.v1"))
    topic = env.topic("contacts.intake.v1")
    await send_all(producer, env, [intake("acme", [f"m{n}@example.com"]) for n in range(3)])
    await producer.send_and_wait(topic, b"\xffnot json")
    await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 3)
    await dead.wait_until(lambda v: len(v) >= 1)
    url = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}/metrics"
    samples: dict[str, float] = {}

    async def settled() -> bool:
        # The lag is end offset minus committed offset: it reaches 0 at the
        # worker's next commit; the locks are released by the last unlock hop.
        samples.clear()
        samples.update(await scrape(url))
        lags = [v for k, v in samples.items() if k.startswith("cs_consumer_lag{") and topic in k]
        return bool(lags) and sum(lags) == 0 and samples["cs_identity_locks_held"] == 0

    await wait_for(settled, 30, what="intake lag 0 and no identifier lock held")
    assert samples[f'cs_input_events_total{{topic="{topic}"}}'] == 4
    assert samples['cs_change_events_total{type="contact.created"}'] == 3
    assert samples['cs_dead_letters_total{reason="invalid_json"}'] == 1
    assert samples['cs_operation_seconds_count{kind="intake"}'] == 3
    changes_out = sum(v for k, v in samples.items() if k.startswith("cs_change_events_total{"))
    assert samples[f'cs_output_events_total{{topic="{env.topic("contacts.changes.v1")}"}}'] == (
        changes_out
    )
    letters = f'cs_output_events_total{{topic="{env.topic("contacts.deadletter.v1")}"}}'
    assert samples[letters] == 1
    assert samples["cs_identity_parked_waiting"] == 0


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }

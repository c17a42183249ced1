"""The operator commands against real servers: `send` a JSONL file, `rebuild-projection`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import ROOT, Env, wait_for
from tests.integration.test_intake_path import intake, of_type
from tests.integration.test_read_model import dump

pytestmark = pytest.mark.integration


def run_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    worker_env = env.worker_env()
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_send_validates_a_file_sends_the_good_lines_and_reports_the_bad(
    env: Env, reader, tmp_path: Path
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    lines: list[bytes] = []
    bad: dict[int, str] = {}
    for n in range(1, 1001):
        if n % 20 == 0:  # 50 bad lines of five kinds
            kind = (n // 20) % 5
            good = intake("acme", [f"x{n}@example.com"])
            line, reason = [
                (b"{not json", "invalid_json"),
                (orjson.dumps({**good, "tenant_id": "bad tenant!"}), "unknown_tenant_format"),
                (orjson.dumps({**good, "source": "pigeon"}), "schema"),
                (orjson.dumps([good]), "invalid_json"),
                (orjson.dumps({**good, "pad": "x" * 70_000}), "too_large"),
            ][kind]
            bad[n] = reason
        else:
            line = orjson.dumps(intake("acme", [f"p{n}@example.com"], event_id=f"e{n}"))
        lines.append(line)
    path = tmp_path / "intakes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rejects = tmp_path / "rejects.jsonl"

    done = await asyncio.to_thread(
        run_cli, env, "send", str(path), "--topic", "intake", "--rejects", str(rejects)
    )
    assert done.returncode == 1, done.stderr  # some lines were rejected
    assert "950 sent" in done.stdout and "50 rejected" in done.stdout, done.stdout
    report = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert {r["line"]: r["reason"] for r in report} == bad
    assert "@example.com" not in done.stderr  # the report never quotes a line

    values = await changes.wait_until(
        lambda v: len(of_type(v, "contact.created")) >= 950, timeout=120
    )
    created = {c["cause"]["event_id"] for c in of_type(values, "contact.created")}
    assert created == {f"e{n}" for n in range(1, 1001) if n not in bad}


async def test_rebuild_projection_restores_a_tenants_read_model(
    env: Env, producer, reader, redis_client
) -> None:
    await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    for n in range(20):
        value = orjson.dumps(intake(tenant, [f"r{n}@example.com"], source="form"))
        await producer.send_and_wait(env.topic("contacts.intake.v1"), value)
    await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 20)
    prefix = f"{env.redis_prefix}:{{{tenant}}}"

    per_contact = Counter(
        v["contact_id"]
        for v in await changes.read_to_end()
        if v["tenant_id"] == tenant and v["version"] > 0
    )

    async def projected() -> Any:
        # Every contact marketing, and every change of each in its history list.
        if await redis_client.scard(f"{prefix}:marketing") != 20:
            return False
        for contact_id, count in per_contact.items():
            if await redis_client.llen(f"{prefix}:h:{contact_id}") != count:
                return False
        return True

    await wait_for(projected, 30, what="the projection of 20 marketing contacts and histories")
    before = await dump(redis_client, f"{prefix}:")
    await redis_client.delete(*[k async for k in redis_client.scan_iter(f"{prefix}:*")])

    done = await asyncio.to_thread(run_cli, env, "rebuild-projection", "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    assert await dump(redis_client, f"{prefix}:") == before


async def test_lookup_prints_the_contact_an_email_names(env: Env, producer, reader) -> None:
    worker = await env.started_worker()
    changes = await reader(env.topic("contacts.changes.v1"))
    await producer.send_and_wait(
        env.topic("contacts.intake.v1"), orjson.dumps(intake("acme", ["ana@example.com"]))
    )
    contact_id = (await changes.wait_until(lambda v: len(v) >= 1))[0]["contact_id"]
    url = f"http://127.0.0.1:{worker.env['CS_WEB_PORT']}"
    found = await asyncio.to_thread(
        run_cli, env, "lookup", "--tenant", "acme", "--email", "ANA@example.com", "--url", url
    )
    assert found.returncode == 0, found.stderr
    assert orjson.loads(found.stdout)["contact_id"] == contact_id
    missing = await asyncio.to_thread(
        run_cli, env, "lookup", "--tenant", "acme", "--email", "nobody@example.com", "--url", url
    )
    assert missing.returncode == 1
    assert orjson.loads(missing.stdout)["error"] == "unknown_contact"

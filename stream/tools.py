"""Operator commands: `send` a JSONL file, `lookup` and `find` contacts, `rebuild-projection`.

    contact-stream send FILE.jsonl --topic intake|engagement|commands [--rejects OUT.jsonl]
    contact-stream lookup --tenant T (--email E | --phone P) [--url http://127.0.0.1:6066]
    contact-stream find --tenant T [--tag X]... [--tier dormant] [--field city=Madrid]...
    contact-stream rebuild-projection --tenant T [--clear]

`send` validates every line with the worker's own decoding checks (SPEC
§2.7: size, JSON, tenant id, type, schema) before anything is produced (the
identifier checks need the tenant's config: the worker dead-letters those),
sends the valid ones (key: the event id) with a
progress line, and reports each rejected line (number, reason, detail; never
the line's content: it may hold emails and phones). Exit status 1 when some
line was rejected, 0 otherwise.

`find` asks a worker's search (`GET /v1/tenants/{t}/contacts`, SPEC §5) and
prints the matching contacts as a table, following the cursor up to
`--max` rows; exit status 1 on an error answer.

`rebuild-projection` rewrites a tenant's Redis read model from the snapshots
topic (compacted: the latest state of every contact, as the contacts table
holds it) and the quota records on it, indexing the fields the tenant's
config (read from its topic) names filterable; then the contacts' histories
from `contacts.changes.v1`, as far as its retention goes. `--clear` deletes
the tenant's keys first. Writes are version-checked, and a history takes an
event only above its head, so a rebuild beside a running projection is safe
and a second one changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from stream.models import (
    InputKind,
    InputRejected,
    TenantConfig,
    decode_input,
    decode_tenant_config,
)
from stream.projection.read_model import ReadModel, latest_per_contact
from stream.security import client_options
from stream.settings import Settings
from stream.topic_reader import assign_from_beginning, reached

TOPICS: dict[str, tuple[str, InputKind]] = {
    "intake": ("contacts.intake.v1", "intake"),
    "engagement": ("contacts.engagement.v1", "engagement"),
    "commands": ("contacts.commands.v1", "command"),
}


class Progress:
    """One line on stderr, rewritten in place on a terminal, every half second at most."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.last = total, what, 0.0
        self.tty = sys.stderr.isatty()

    def show(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.5:
            return
        self.last = now
        line = f"{self.what} {done}/{self.total}"
        if self.tty:
            sys.stderr.write(f"\r{line}" + ("\n" if final else ""))
        elif final or done == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def validate_lines(lines: list[bytes], kind: InputKind) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The valid lines, and a report entry for each rejected one (1-based line numbers)."""
    valid: list[bytes] = []
    rejects: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue  # blank lines are no input
        try:
            decode_input(kind, raw)
        except InputRejected as rejected:
            rejects.append({"line": number, "reason": rejected.reason, "detail": rejected.detail})
            continue
        valid.append(raw)
    return valid, rejects


async def send_file(
    settings: Settings, path: Path, topic_name: str, kind: InputKind
) -> dict[str, Any]:
    lines = path.read_bytes().splitlines(keepends=True)
    valid, rejects = validate_lines(lines, kind)
    topic = settings.topic(topic_name)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=20,
        acks="all",
        **client_options(settings),
    )
    await producer.start()
    progress = Progress(len(valid), f"sent to {topic}")
    try:
        pending = []
        for n, raw in enumerate(valid, start=1):
            key = str(orjson.loads(raw).get("event_id", "")).encode()
            pending.append(await producer.send(topic, raw, key=key))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
            progress.show(n)
        await asyncio.gather(*pending)
        progress.show(len(valid), final=True)
    finally:
        await producer.stop()
    return {"topic": topic, "lines": len(lines), "sent": len(valid), "rejected": rejects}


def send_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="contact-stream send", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--topic", required=True, choices=sorted(TOPICS))
    parser.add_argument(
        "--rejects", type=Path, help="also write the rejected lines' report here (JSONL)"
    )
    args = parser.parse_args(argv)
    topic_name, kind = TOPICS[args.topic]
    report = asyncio.run(send_file(Settings(), args.file, topic_name, kind))
    rejected = report["rejected"]
    for entry in rejected:
        sys.stderr.write(f"line {entry['line']}: {entry['reason']}: {entry['detail']}\n")
    print(
        f"{report['sent']} sent to {report['topic']}, {len(rejected)} rejected "
        f"(of {report['lines']} lines)"
    )
    if args.rejects is not None:
        args.rejects.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in rejected))
    return 1 if rejected else 0


async def lookup(
    url: str, tenant: str, kind: str, value: str, token: str | None
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(
            f"{url}/v1/tenants/{tenant}/lookup", params={kind: value}, headers=headers
        ) as response:
            found = await response.json(content_type=None)
            if response.status != 200:
                return response.status, found
        path = f"{url}/v1/tenants/{tenant}/contacts/{found['contact_id']}"
        async with session.get(path, headers=headers) as response:
            return response.status, await response.json(content_type=None)


def lookup_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="contact-stream lookup")
    parser.add_argument("--tenant", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--email")
    which.add_argument("--phone")
    parser.add_argument("--url", help="a worker's web address (default: this machine's port)")
    args = parser.parse_args(argv)
    settings = Settings()
    url = args.url or f"http://127.0.0.1:{settings.web_port}"
    kind, value = ("email", args.email) if args.email is not None else ("phone", args.phone)
    token = None if settings.http_token is None else settings.http_token.get_secret_value()
    status, body = asyncio.run(lookup(url, args.tenant, kind, value, token))
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return 0 if status == 200 else 1


def _group_less_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(settings),
    )


async def read_topic(
    settings: Settings, topic: str, apply: Callable[[list[Any]], Awaitable[None]]
) -> int:
    """Every record of `topic` now, from its beginning, to `apply` in batches; returns the count."""
    consumer = _group_less_consumer(settings)
    await consumer.start()
    read = 0
    try:
        try:
            ends = await assign_from_beginning(consumer, topic, attempts=50)
        except LookupError:
            raise SystemExit(f"no topic {topic}: is CS_TOPIC_PREFIX right?") from None
        progress = Progress(sum(ends.values()), f"read from {topic}")
        while not await reached(consumer, ends):
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            records = [r for tp in sorted(batches, key=lambda t: t.partition) for r in batches[tp]]
            read += len(records)
            await apply(records)
            progress.show(read)
        progress.show(read, final=True)
    finally:
        await consumer.stop()
    return read


async def tenant_config(settings: Settings, tenant: str) -> TenantConfig:
    """The tenant's config as its compacted topic holds it now (defaults if none or invalid)."""
    found: list[TenantConfig] = [TenantConfig()]

    async def keep(records: list[Any]) -> None:
        for record in records:
            if record.key == tenant.encode():
                try:
                    found.append(decode_tenant_config(record.value))
                except InputRejected:
                    continue  # the worker keeps the previous config too

    await read_topic(settings, settings.topic("tenants.config.v1"), keep)
    return found[-1]


async def rebuild_projection(settings: Settings, tenant: str, clear: bool) -> dict[str, int]:
    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=10)
    config = await tenant_config(settings, tenant)
    model = ReadModel(
        client, settings.redis_prefix, filterable_fields=lambda _: config.filterable_fields
    )
    removed = written = events = 0

    def of_tenant(records: list[Any]) -> list[bytes]:
        return [
            r.value
            for r in records
            if r.value and r.key is not None and r.key.decode().split(":", 1)[0] == tenant
        ]

    async def write_snapshots(records: list[Any]) -> None:
        nonlocal written
        values = of_tenant(records)
        if values:
            written += await model.apply_snapshots(latest_per_contact(values))

    async def write_history(records: list[Any]) -> None:
        nonlocal events
        events += await model.apply_changes(of_tenant(records))

    try:
        if clear:
            pattern = f"{model.tenant_prefix(tenant)}:*"
            keys = [k async for k in client.scan_iter(pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                removed += cast(int, await client.delete(*keys[start : start + 1000]))
        read = await read_topic(
            settings, settings.topic("contact-stream.snapshots.v1"), write_snapshots
        )
        read_changes = await read_topic(
            settings, settings.topic("contacts.changes.v1"), write_history
        )
    finally:
        await client.aclose()
    return {
        "records_read": read,
        "written": written,
        "keys_removed": removed,
        "changes_read": read_changes,
        "history_added": events,
    }


def rebuild_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="contact-stream rebuild-projection")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--clear", action="store_true", help="delete the tenant's keys first")
    args = parser.parse_args(argv)
    result = asyncio.run(rebuild_projection(Settings(), args.tenant, args.clear))
    print(
        f"{result['written']} keys' records written from {result['records_read']} records read"
        f" ({result['keys_removed']} keys removed first); {result['history_added']} history"
        f" entries added from {result['changes_read']} change events"
    )
    return 0


FIND_COLUMNS = ("contact_id", "created_at", "source", "owner", "tier", "status", "email", "tags")


def find_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The search's query pairs from `find`'s options (repeated ones repeat)."""
    params: list[tuple[str, str]] = []
    for name in ("tag", "owner", "source", "status", "tier", "list"):
        params += [(name, value) for value in getattr(args, name) or ()]
    if args.marketing is not None:
        params.append(("marketing", args.marketing))
    for pair in args.field or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--field {pair!r}: NAME=VALUE")
        params.append((f"field.{name}", value))
    for name in ("created_from", "created_to"):
        if getattr(args, name) is not None:
            params.append((name, getattr(args, name)))
    return params


def find_row(snap: dict[str, Any]) -> tuple[str, ...]:
    engagement = snap.get("engagement", {})
    return (
        snap["contact_id"],
        snap["created_at"],
        snap.get("source") or "",
        snap.get("owner") or "",
        engagement.get("tier") or "",
        engagement.get("campaign_status") or "",
        (snap.get("emails") or [""])[0],
        ",".join(snap.get("tags", [])),
    )


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


async def find(
    url: str, tenant: str, params: list[tuple[str, str]], most: int, token: str | None
) -> tuple[int, Any]:
    """The search's status and, on success, `{"count", "contacts"}` (at most `most` of them)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while True:
            page = [*params, ("limit", str(min(500, most - len(found))))]
            if cursor is not None:
                page.append(("cursor", cursor))
            async with session.get(
                f"{url}/v1/tenants/{tenant}/contacts", params=page, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    return response.status, body
            found += body["contacts"]
            cursor = body["next_cursor"]
            if cursor is None or len(found) >= most:
                return 200, {"count": body["count"], "contacts": found}


def find_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="contact-stream find", description="Live contacts matching every given criterion."
    )
    parser.add_argument("--tenant", required=True)
    for name in ("tag", "owner", "source", "status", "tier", "list"):
        parser.add_argument(f"--{name}", action="append", help="repeatable: each must hold")
    parser.add_argument("--marketing", choices=("true", "false"))
    parser.add_argument("--field", action="append", metavar="NAME=VALUE", help="repeatable")
    parser.add_argument("--created-from", help="inclusive: RFC 3339 or YYYY-MM-DD")
    parser.add_argument("--created-to", help="exclusive: RFC 3339 or YYYY-MM-DD")
    parser.add_argument("--max", type=int, default=50, help="rows to print (default 50)")
    parser.add_argument("--url", help="a worker's web address (default: this machine's port)")
    args = parser.parse_args(argv)
    if args.max < 1:
        parser.error("--max: at least 1")
    settings = Settings()
    url = args.url or f"http://127.0.0.1:{settings.web_port}"
    token = None if settings.http_token is None else settings.http_token.get_secret_value()
    status, body = asyncio.run(find(url, args.tenant, find_params(args), args.max, token))
    if status != 200:
        sys.stderr.write(f"{status}: {body.get('detail', body)}\n")
        return 1
    rows = [find_row(snap) for snap in body["contacts"]]
    print(table(FIND_COLUMNS, rows))
    print(f"{len(rows)} of {body['count']} contacts")
    return 0

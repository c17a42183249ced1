"""`contact-stream demo`: a seeded tenant's intakes flowing through a real worker, watched live.

The demo starts the local stack (unless servers are given), one worker
process, a seeded feeder of realistic intakes (form, landing page and import
sources with overlapping emails and phones, a little garbage), and a terminal
view of what comes out: contacts created, change events by type and their
rate, dead letters by reason, the tenant's marketing quota (its plan allows
fewer marketing contacts than the crowd has, so activations start being
refused), what the Redis read model holds and the size of every segment
(marketing, campaign status, recency tier, lists, sources, trash) as it
changes. The feed also sends a marketer's commands (trash, restore,
marketing on, a tag, a list) for contacts it has seen created.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from stream.projection.search import segment_counts
from stream.security import client_options
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FIRST_NAMES = ["Ana", "Luis", "Marta", "Jorge", "Lucía", "Pablo", "Elena", "Diego", "Sara", "Raúl"]
LAST_NAMES = ["García", "López", "Martín", "Sánchez", "Pérez", "Gómez", "Ruiz", "Díaz"]
CITIES = ["Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao", None]
SOURCES = ["form", "landing_page", "import", "facebook_lead_ads", "api", "manual"]
TAGS = ["webinar", "ebook", "newsletter", "black-friday", "trial"]


INTAKE, ENGAGEMENT, COMMANDS = (
    "contacts.intake.v1",
    "contacts.engagement.v1",
    "contacts.commands.v1",
)
COMMAND_KINDS = [
    "delete_contact",
    "restore_contact",
    "set_marketing",
    "update_contact",
    "add_to_list",
]
TENANT_CONFIG = "tenants.config.v1"
# The demo tenant's plan: fewer marketing slots than people who will ask for one.
DEMO_CONFIG = {"marketing_limit": 250}


@dataclass
class DemoPerson:
    first: str
    last: str
    emails: list[str]
    phone: str


ENGAGEMENT_TYPES = ["sent", "sent", "open", "open", "click", "high_intent_visit", "bounce_soft"]


def demo_inputs(
    seed: int, tenant: str, run: str, people: int = 400, known: Sequence[str] = ()
) -> Iterator[tuple[str, bytes]]:
    """An endless, seeded stream of intakes, engagement events and commands, each with its topic.

    The same seed gives the same intakes and engagement events. Engagement
    events name people by email or phone; one whose contact does not exist
    yet is dead-lettered `unknown_contact`, as in production. Commands (a
    marketer's edits: trash, restore, marketing on, a tag, a list) name
    contacts from `known`, the ids the caller has seen created so far: which
    ones depends on timing, so they are not part of the seeded contents.

    `run` goes into every `event_id`, so a second demo run is not taken for a
    replay of the first (repeated event ids within `dedup_days` have no effect).
    """
    rng = random.Random(seed)
    crowd = [
        DemoPerson(
            first=rng.choice(FIRST_NAMES),
            last=rng.choice(LAST_NAMES),
            emails=[f"person{i}@example-shop.es", f"p{i}.work@corp{i % 7}.com"],
            phone=f"6{rng.randrange(10_000_000, 99_999_999)}",
        )
        for i in range(people)
    ]
    n = 0
    while True:
        n += 1
        if rng.random() < 0.03:
            yield INTAKE, rng.choice([b"{not json", b'{"tenant_id": "bad tenant!"}', b"[]"])
            continue
        if known and rng.random() < 0.06:
            yield COMMANDS, orjson.dumps(demo_command(rng, f"demo-{seed}-{run}-{n}", tenant, known))
            continue
        person = rng.choice(crowd)
        if rng.random() < 0.35:
            by_phone = rng.random() < 0.3
            event: dict[str, Any] = {
                "event_id": f"demo-{seed}-{run}-{n}",
                "tenant_id": tenant,
                "type": rng.choice(ENGAGEMENT_TYPES),
                **({"phone": person.phone} if by_phone else {"email": person.emails[0]}),
            }
            yield ENGAGEMENT, orjson.dumps(event)
            continue
        emails = rng.sample(person.emails, k=rng.randint(0, 2))
        phones = [person.phone] if rng.random() < 0.6 or not emails else []
        if rng.random() < 0.02:
            emails, phones = ["noreply@example.com"], []  # blocked: dead-lettered
        intake: dict[str, Any] = {
            "event_id": f"demo-{seed}-{run}-{n}",
            "tenant_id": tenant,
            "source": rng.choice(SOURCES),
            "emails": emails,
            "phones": phones,
            "fields": {
                "first_name": person.first,
                "last_name": person.last,
                "city": rng.choice(CITIES),
            },
            "tags": rng.sample(TAGS, k=rng.randint(0, 2)),
        }
        if intake["source"] == "import":
            intake["on_match"] = rng.choice(["update", "skip"])
        yield INTAKE, orjson.dumps(intake)


def demo_command(
    rng: random.Random, event_id: str, tenant: str, known: Sequence[str]
) -> dict[str, Any]:
    """One marketer's edit of a known contact (SPEC §2.4)."""
    ids = [rng.choice(known)]
    envelope = {"event_id": event_id, "tenant_id": tenant}
    kind = rng.choices(COMMAND_KINDS, weights=[25, 15, 25, 20, 15])[0]
    if kind == "set_marketing":
        return {**envelope, "type": kind, "contact_ids": ids, "marketing": True, "via": "profile"}
    if kind == "update_contact":
        return {**envelope, "type": kind, "contact_id": ids[0], "tags_add": [rng.choice(TAGS)]}
    if kind == "add_to_list":
        return {**envelope, "type": kind, "list_id": "vip", "contact_ids": ids}
    return {**envelope, "type": kind, "contact_ids": ids}


@dataclass
class Tally:
    sent: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    redis_contacts: int = 0
    redis_error: str | None = None
    segments: dict[str, Any] = field(default_factory=dict)  # search.segment_counts
    quota: str = "-"
    started: float = field(default_factory=time.monotonic)
    known: list[str] = field(default_factory=list)  # contact ids created, for the commands
    recent: deque[float] = field(default_factory=deque)  # when the last changes arrived

    def change_rate(self, window: float = 5.0) -> float:
        now = time.monotonic()
        while self.recent and self.recent[0] < now - window:
            self.recent.popleft()
        return len(self.recent) / window


async def feed(
    settings: Settings, tally: Tally, seed: int, tenant: str, rate: float, stop: asyncio.Event
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, **client_options(settings)
    )
    await producer.start()
    try:
        kinds = (INTAKE, ENGAGEMENT, COMMANDS, TENANT_CONFIG)
        topics = {kind: settings.topic(kind) for kind in kinds}
        # The worker creates its topics (the broker does not auto-create them):
        # wait for it rather than fail the first send.
        while not stop.is_set():
            try:
                for topic in topics.values():
                    await producer.partitions_for(topic)
                break
            except KafkaError:
                await asyncio.sleep(1)
        await producer.send(topics[TENANT_CONFIG], orjson.dumps(DEMO_CONFIG), key=tenant.encode())
        inputs = demo_inputs(seed, tenant, run=f"{time.time_ns():x}", known=tally.known)
        for kind, raw in inputs:
            if stop.is_set():
                break
            await producer.send(topics[kind], raw)
            tally.sent += 1
            await asyncio.sleep(1 / rate)
    finally:
        await producer.stop()


async def watch_topics(settings: Settings, tally: Tally, stop: asyncio.Event) -> None:
    changes, dead = settings.topic("contacts.changes.v1"), settings.topic("contacts.deadletter.v1")
    consumer = AIOKafkaConsumer(
        changes,
        dead,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"contact-stream-demo-view-{os.getpid()}",
        auto_offset_reset="latest",
        isolation_level="read_committed",  # what the change relay committed
        metadata_max_age_ms=2000,
        **client_options(settings),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    value = orjson.loads(record.value)
                    if tp.topic == changes:
                        tally.changes[value["type"]] += 1
                        tally.recent.append(time.monotonic())
                        if value["type"] == "contact.created":
                            tally.known.append(value["contact_id"])
                    else:
                        tally.dead[value["reason"]] += 1
    finally:
        await consumer.stop()


async def watch_redis(settings: Settings, tally: Tally, tenant: str, stop: asyncio.Event) -> None:
    """What the read model holds: contact keys, and every segment's size (the emBlue panel)."""
    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=2)
    pattern = f"{settings.redis_prefix}:{{{tenant}}}:c:*"
    try:
        while not stop.is_set():
            try:
                tally.redis_contacts = sum([1 async for _ in client.scan_iter(pattern, count=1000)])
                tally.segments = await segment_counts(client, settings.redis_prefix, tenant)
                tally.redis_error = None
            except OSError as exc:
                tally.redis_error = type(exc).__name__
            await asyncio.sleep(1)
    finally:
        await client.aclose()


async def watch_quota(settings: Settings, tally: Tally, tenant: str, stop: asyncio.Event) -> None:
    """The tenant's quota as the worker's HTTP view shows it (SPEC §5)."""
    url = f"http://127.0.0.1:{settings.web_port}/v1/tenants/{tenant}/quota"
    token = settings.http_token
    headers = {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while not stop.is_set():
            try:
                async with session.get(url, headers=headers) as response:
                    body = await response.json(content_type=None)
                releases = body.get("releases", [])
                coming = f", next release {releases[0]['at']}" if releases else ""
                tally.quota = f"{body['used']} used of {body['limit']}{coming}"
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                tally.quota = "(worker not answering yet)"
            await asyncio.sleep(1)


def render(tally: Tally, tenant: str) -> str:
    elapsed = time.monotonic() - tally.started
    total_changes = sum(tally.changes.values())
    lines = [
        f"contact-stream demo — tenant {tenant} — {elapsed:5.0f}s",
        "",
        f"  inputs sent           {tally.sent:>8}   ({tally.sent / max(elapsed, 1):.0f}/s)",
        f"  contacts created      {tally.changes['contact.created']:>8}",
        f"  marketing quota       {tally.quota}",
        f"  change events         {total_changes:>8}   ({tally.change_rate():.0f}/s now)",
    ]
    lines += [f"    {kind:<30}{count:>8}" for kind, count in sorted(tally.changes.items())]
    lines.append(f"  dead letters          {sum(tally.dead.values()):>8}")
    lines += [f"    {reason:<30}{count:>8}" for reason, count in sorted(tally.dead.items())]
    redis_line = tally.redis_error or str(tally.redis_contacts)
    lines.append(f"  contacts in Redis     {redis_line:>8}")
    lines += segment_lines(tally.segments)
    lines += ["", "  Ctrl-C to stop"]
    return "\n".join(lines)


def segment_lines(segments: dict[str, Any]) -> list[str]:
    """Segment sizes as the read model has them now (GET …/segments has the same)."""
    if not segments:
        return []

    def row(title: str, sizes: dict[str, int]) -> str:
        shown = "  ".join(f"{name} {size}" for name, size in sizes.items() if size)
        return f"    {title:<10}{shown or '-'}"

    return [
        "  segments (live contacts; trash apart)",
        f"    {'live':<10}{segments['contacts']}   marketing {segments['marketing']}"
        f"   trash {segments['trash']}",
        row("status", segments["status"]),
        row("tier", segments["tier"]),
        row("lists", segments["lists"]),
        row("sources", segments["sources"]),
    ]


async def show(tally: Tally, tenant: str, stop: asyncio.Event, seconds: float | None) -> None:
    tty = sys.stdout.isatty()
    while not stop.is_set():
        if seconds is not None and time.monotonic() - tally.started >= seconds:
            stop.set()
        text = render(tally, tenant)
        if tty:
            sys.stdout.write("\x1b[2J\x1b[H" + text + "\n")
        else:
            sys.stdout.write(" | ".join(line.strip() for line in text.splitlines()[2:6]) + "\n")
        sys.stdout.flush()
        await asyncio.sleep(1 if tty else 5)
    sys.stdout.write(render(tally, tenant) + "\n")


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    env["CS_REDIS_URL"] = settings.redis_url.get_secret_value()
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "-l", "info"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def run_demo(args: argparse.Namespace) -> int:
    settings = Settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = None
    if not args.no_worker:
        log_path = ROOT / ".stack" / "demo-worker.log"
        worker = start_worker(settings, log_path)
        print(f"worker pid {worker.pid}, log {log_path}")
    tally = Tally()
    try:
        await asyncio.gather(
            feed(settings, tally, args.seed, args.tenant, args.rate, stop),
            watch_topics(settings, tally, stop),
            watch_redis(settings, tally, args.tenant, stop),
            watch_quota(settings, tally, args.tenant, stop),
            show(tally, args.tenant, stop, args.seconds),
        )
    finally:
        if worker is not None:
            worker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)
            if worker.poll() is None:
                worker.kill()
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=50.0, help="intakes per second")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser("contact-stream demo")
    parser.add_argument("--no-stack", action="store_true", help="servers are already given")
    parser.add_argument("--no-worker", action="store_true", help="a worker is already running")
    args = parser.parse_args(argv)
    # aiokafka warns about every topic the worker has not created yet, for
    # seconds at the start: noise over the live view.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    if not args.no_stack and not os.environ.get("CS_KAFKA_BOOTSTRAP"):
        subprocess.run([str(ROOT / "scripts" / "stack"), "up"], check=True)
        env = subprocess.run(
            [str(ROOT / "scripts" / "stack"), "env"], check=True, capture_output=True, text=True
        ).stdout
        for line in env.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            os.environ[name] = value
    return asyncio.run(run_demo(args))


def feed_main(argv: list[str]) -> int:
    """Only the feeder (docker-compose's demo service): intakes into the configured broker."""
    args = _parser("contact-stream demo-feed").parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        await feed(Settings(), Tally(), args.seed, args.tenant, args.rate, stop)

    asyncio.run(run())
    return 0

"""A worker restores the contacts table from its changelog a fetched batch at a time
(stream/tables/recovery.py): each key ends at the changelog's last value for it, a
tombstone deletes, and the offset kept with the data makes a later start read only
what it has not restored."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import Env, Servers, send_json
from tests.integration.test_intake_path import intake, of_type

PARTITIONS = 4
OFFSET_KEY = b"__faust\0offset__"  # Faust's persisted offset, in every partition's db


async def create_changelog(servers: Servers, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()


async def write(
    producer: AIOKafkaProducer,
    topic: str,
    records: list[tuple[int, bytes, bytes | None]],
    expected: list[dict[bytes, bytes]],
    ends: list[int],
) -> None:
    """Each (partition, key, value) in order; `expected` and `ends` follow the changelog."""
    for partition, key, value in records:
        await producer.send(topic, key=key, value=value, partition=partition)
        if value is None:
            expected[partition].pop(key, None)
        else:
            expected[partition][key] = value
        ends[partition] += 1
    await producer.flush()


def batch(rng: random.Random, round_: int, count: int) -> list[tuple[int, bytes, bytes | None]]:
    """Puts, overwrites, tombstones and keys put again after their tombstone.

    Keys are applied-record keys (`tenant|…`): the due index's scan skips them.
    Values of ~1 KB, so a partition's records span several fetches.
    """
    out: list[tuple[int, bytes, bytes | None]] = []
    for n in range(count):
        partition = n % PARTITIONS
        key = f"tenant|rec-{rng.randrange(count // 3)}".encode()
        value = None if rng.random() < 0.2 else f"{round_}:{n}:".encode() + b"x" * 1000
        out.append((partition, key, value))
    for partition in range(PARTITIONS):  # every partition ends with a tombstone
        out.append((partition, b"tenant|rec-0", None))
    return out


def table_files(datadir: Path) -> dict[int, dict[bytes, bytes]]:
    """Each contacts partition's RocksDB contents, the worker stopped."""
    found: dict[int, dict[bytes, bytes]] = {}
    for path in datadir.rglob("contacts-*.db"):
        partition = int(path.name.removeprefix("contacts-").removesuffix(".db"))
        options = rocksdict.Options(raw_mode=True)
        db = rocksdict.Rdict(str(path), options=options)
        try:
            found[partition] = dict(db.items())
        finally:
            db.close()
    return found


def check(
    datadir: Path, expected: list[dict[bytes, bytes]], ends: list[int]
) -> dict[int, dict[bytes, bytes]]:
    tables = table_files(datadir)
    assert sorted(tables) == list(range(PARTITIONS))
    for partition, contents in tables.items():
        offset = contents.pop(OFFSET_KEY)
        assert int(offset) == ends[partition] - 1, f"partition {partition}"
        assert contents == expected[partition], f"partition {partition}"
    return tables


async def test_restored_tables_equal_the_changelogs_last_values_cold_then_warm(
    env: Env, servers: Servers, producer: AIOKafkaProducer
) -> None:
    topic = f"cs-{env.prefix}-contacts-changelog"
    await create_changelog(servers, topic)
    rng = random.Random(11)
    expected: list[dict[bytes, bytes]] = [{} for _ in range(PARTITIONS)]
    ends = [0] * PARTITIONS
    await write(producer, topic, batch(rng, 1, 12_000), expected, ends)
    assert all(expected) and all(len(e) < end for e, end in zip(expected, ends, strict=True))

    # Cold: an empty data dir, everything comes from the changelog.
    worker = await env.started_worker("data")
    log = worker.log_text()
    assert "Restoring state from changelog topics" in log
    assert re.search(r"restored [1-9]\d* changelog records by batches", log)
    # The product's store: the end-of-recovery flush is started, not waited for.
    assert re.search(r"flushing [1-4] restored partitions \(0 waited for\)", log)
    assert "Error in recovery" not in log
    worker.stop()
    check(env.tmp_path / "data", expected, ends)

    # Warm: the same data dir after a clean stop; the changelog moved on meanwhile,
    # deleting and rewriting keys restored by the first start.
    await write(producer, topic, batch(rng, 2, 4_000), expected, ends)
    worker = env.worker("data")
    worker.start()
    await worker.wait_ready()
    worker.stop()
    assert "Error in recovery" not in worker.log_text()
    check(env.tmp_path / "data", expected, ends)


async def test_a_worker_killed_right_after_its_restore_keeps_every_restored_record(
    env: Env, servers: Servers, producer: AIOKafkaProducer
) -> None:
    """The restore writes without RocksDB's write-ahead log and, on Faust's store, whose
    agents' writes are logged, waits for its flush when it ends
    (stream/tables/recovery.py): a SIGKILL once the worker is ready, before any
    close could flush, must find every record and its offset on disk. (The
    product's store logs nothing and does not wait: the cold start test.)"""
    topic = f"cs-{env.prefix}-contacts-changelog"
    await create_changelog(servers, topic)
    expected: list[dict[bytes, bytes]] = [{} for _ in range(PARTITIONS)]
    ends = [0] * PARTITIONS
    await write(producer, topic, batch(random.Random(12), 1, 8_000), expected, ends)

    worker = await env.started_worker("data", CS_STORE="rocksdb://")
    worker.kill()
    log = worker.log_text()
    assert re.search(r"flushing ([1-4]) restored partitions \(\1 waited for\)", log)
    assert "Error in recovery" not in log
    assert "not found in cluster metadata" not in log  # stream/topics.py, ensure_topics
    check(env.tmp_path / "data", expected, ends)


async def test_the_agents_writes_are_on_disk_after_a_clean_stop_and_none_went_to_the_log(
    env: Env, producer: AIOKafkaProducer, reader: Any
) -> None:
    """The tables' store writes without RocksDB's write-ahead log (stream/tables/store.py):
    while the worker runs, no log file has a byte of what the agents stored; once it
    stopped cleanly (SIGTERM), the contacts are in the table files."""
    worker = await env.started_worker("data")
    changes = await reader(env.topic("contacts.changes.v1"))
    for n in range(20):
        await send_json(
            producer, env.topic("contacts.intake.v1"), intake("acme", [f"person{n}@example.com"])
        )
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 20)
    created = of_type(values, "contact.created")
    # While the worker runs: what it stored is in no log file (Faust's store logs it).
    logs = list((env.tmp_path / "data").rglob("contacts-*.db/*.log"))
    assert logs and all(f.stat().st_size == 0 for f in logs)

    worker.stop()
    assert list((env.tmp_path / "data").rglob("clean-shutdown"))  # stream/tables/local_state.py
    stored = {
        key
        for contents in table_files(env.tmp_path / "data").values()
        for key in contents
        if b"|" not in key and not key.startswith(b"__faust")
    }
    assert stored == {f"acme:{c['contact_id']}".encode() for c in created}

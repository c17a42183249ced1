"""Our transport (stream/transport.py) under a rebalance while the drain loop waits in a callback.

The drain loop starts the conductor's callback in place and only hands it to
`wait_first` when it has to wait for room in an agent's buffer. A rebalance
must interrupt that wait as it does in Faust's own loop: no record may be
lost, none processed twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Servers, create_topics, wait_committed

pytestmark = pytest.mark.integration

RECORDS = 1000  # 20 ms each: ~20 s of work, the second worker joins after ~1 s


def slow_env(
    servers: Servers, app_id: str, source: str, sink: str, transport: str | None = None
) -> dict[str, str]:
    """slow_app.py's environment: its app id, topics and transport (TEST_SLOW_TRANSPORT)."""
    return {
        **os.environ,
        "CS_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "SLOW_APP_ID": app_id,
        "SLOW_TRANSPORT": transport or os.environ.get("TEST_SLOW_TRANSPORT", "cskafka"),
        "SLOW_IN": source,
        "SLOW_OUT": sink,
        "PYTHONUNBUFFERED": "1",
    }


def start_slow_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "integration" / "slow_app.py"),
            "worker",
            "-l",
            os.environ.get("TEST_SLOW_LOG", "warn"),
            "--without-web",
        ],
        cwd=log.parent,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_a_rebalance_during_a_blocked_callback_loses_and_repeats_nothing(
    servers: Servers, producer, reader, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    source, sink = f"slow-in-{run}", f"slow-out-{run}"
    await create_topics(servers, source, sink)
    for i in range(RECORDS):
        await producer.send(source, str(i).encode(), key=str(i).encode())
    await producer.flush()
    env = slow_env(servers, f"slow-{run}", source, sink)
    out = await reader(sink)
    logs = [tmp_path / "a" / "worker.log", tmp_path / "b" / "worker.log"]
    for log in logs:
        log.parent.mkdir()
    workers = [start_slow_worker({**env, "CS_DATADIR": str(logs[0].parent)}, logs[0])]
    try:
        # The first worker has all 4 partitions and is busy, its buffers full.
        await out.wait_until(lambda v: len(v) >= 60, timeout=90)
        workers.append(start_slow_worker(env, logs[1]))
        await out.wait_until(lambda v: len(v) >= RECORDS, timeout=120)
        await wait_committed(servers, f"slow-{run}", source, timeout=60)
        values = await out.read_to_end()
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)
    processed = Counter(v["n"] for v in values)
    by_worker = Counter(v["pid"] for v in values)
    assert set(processed) == {str(i) for i in range(RECORDS)}, "records lost"
    twice = {k: n for k, n in processed.items() if n > 1}
    assert not twice, f"{len(twice)} records processed more than once: {sorted(twice)[:10]}"
    # The second worker really took partitions over mid-stream.
    assert len(by_worker) == 2, by_worker


async def test_a_partition_whose_commits_stopped_behind_a_dead_hole_is_read_again(
    servers: Servers, producer, reader, tmp_path: Path
) -> None:
    """Transport fix 6: the worker's second commit loses its offsets (SLOW_LOSE_COMMIT), so
    its partitions' commits stop behind records processed but never committed. The watch
    sees it after CS_COMMIT_STALL_SECONDS and rebalances; every partition is then
    committed to its end, and nothing is lost (the records of the hole are processed again).
    """
    run = uuid.uuid4().hex[:8]
    source, sink, records = f"lossy-in-{run}", f"lossy-out-{run}", 400
    await create_topics(servers, source, sink)
    for i in range(records):
        await producer.send(source, str(i).encode(), key=str(i).encode())
    await producer.flush()
    env = slow_env(servers, f"lossy-{run}", source, sink, transport="cskafka")
    env["SLOW_LOSE_COMMIT"] = "2"
    env["CS_COMMIT_STALL_SECONDS"] = os.environ.get("TEST_COMMIT_STALL_SECONDS", "4")
    out = await reader(sink)
    log = tmp_path / "worker.log"
    worker = start_slow_worker(env, log)
    try:
        await out.wait_until(lambda v: len(v) >= records, timeout=120)
        await wait_committed(servers, f"lossy-{run}", source, timeout=90)
        values = await out.read_to_end()
    finally:
        worker.terminate()
        worker.wait(30)
    text = log.read_text(errors="replace")
    assert "slow-app lost the commit of" in text, text[-3000:]
    assert "commits stopped at offset" in text, text[-3000:]
    assert set(v["n"] for v in values) == {str(i) for i in range(records)}, "records lost"

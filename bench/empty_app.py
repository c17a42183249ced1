"""A Faust app whose one agent does nothing: the cost of Faust's per-record path alone.

Run by bench/empty_agent.py as `python bench/empty_app.py worker -l warn`, with
BENCH_TRANSPORT (`kafka` = Faust's stock driver, `cskafka` = ours), BENCH_TOPIC,
BENCH_RECORDS and BENCH_OUT (where it writes its figures when every record
has arrived). Settings as the product's (stream/app.py): library loggers at
WARNING, no web server, memory store.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import faust
import orjson

BOOTSTRAP = os.environ.get("CS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
TRANSPORT = os.environ["BENCH_TRANSPORT"]
RECORDS = int(os.environ["BENCH_RECORDS"])
OUT = Path(os.environ["BENCH_OUT"])

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"{TRANSPORT}://{BOOTSTRAP}",
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    value_serializer="raw",
    producer_linger=0.005,
)
topic = app.topic(os.environ["BENCH_TOPIC"], value_serializer="raw")
seen: dict[str, Any] = {"n": 0}


@app.on_worker_init.connect
def _quiet(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    for name in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


@app.agent(topic)
async def nothing(stream: Any) -> None:
    async for _ in stream:
        n = seen["n"] = seen["n"] + 1
        if n == 1:
            seen["first"] = time.perf_counter()
            seen["cpu"] = time.process_time()
        if n == RECORDS:
            elapsed = time.perf_counter() - seen["first"]
            cpu = time.process_time() - seen["cpu"]
            OUT.write_bytes(orjson.dumps({"records": n, "seconds": elapsed, "cpu": cpu}))


if __name__ == "__main__":
    app.main()

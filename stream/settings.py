"""Settings from environment variables (prefix `CS_`), one place for every knob."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of a worker; see README "Configuration" for each variable."""

    model_config = SettingsConfigDict(env_prefix="CS_", extra="ignore")

    app_id: str = Field("contact-stream", description="Kafka consumer group and table prefix")
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="host:port[,host:port]")
    kafka_transport: str = Field(
        "cskafka",
        description="Faust transport: cskafka (ours, stream/transport.py) or kafka (stock)",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:16379/0"), description="may carry a password"
    )
    # Kafka security (SPEC §6): TLS, SASL (PLAIN, SCRAM) or both; every client
    # of the worker uses them (stream/security.py).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers")
    kafka_ssl_certfile: str | None = Field(None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_password: SecretStr | None = Field(None, description="of the client key")
    redis_prefix: str = "cs"
    store: str = Field(
        "csrocksdb://",
        description="table store: csrocksdb:// (ours: RocksDB without its write-ahead log,"
        " stream/tables/store.py), rocksdb:// (Faust's) or memory://",
    )
    datadir: str = Field("./.stack/worker-data", description="tables' local state")
    partitions: int = Field(4, ge=1, description="partitions of every topic the app creates")
    replication_factor: int = Field(1, ge=1)
    topic_prefix: str = Field("", description="prefixed to every topic name")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    http_token: SecretStr | None = Field(
        None, description="when set, the /v1 views require `Authorization: Bearer <token>`"
    )
    # exactly_once stalled here with no event processed (faust 0.15.3, aiokafka
    # 0.14, Kafka 4.1): at_least_once until the reliability issue settles it.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    session_timeout: float = Field(
        60.0, gt=0, description="seconds before the group gives up on a silent worker"
    )
    # 0: the contact operations' follow-ups go out behind a producer flush,
    # which waits out the linger (bench: 18 intakes/s at 0.05 s, 314 at 0,
    # when each operation waited for its own flush).
    producer_linger: float = Field(0.0, ge=0, description="seconds a produce batch may wait")
    # aiokafka's default (and Faust's) is 16 KiB. A partition's batch that is
    # full makes the next send wait until the sender has taken it; with the
    # agents taking batches (CS_AGENT_BATCH) a snapshot-sized record or ten
    # filled one (docs/performance.md, session 23: engagement workload
    # 1,190 / 1,159 / 1,258 -> 1,573 / 1,471 / 1,450 inputs/s at 256 KiB).
    producer_max_batch_bytes: int = Field(
        256 * 1024, ge=1024, description="bytes of one partition's produce batch"
    )
    # Faust's default. Shorter: less to replay after a kill, more commit requests.
    commit_interval: float = Field(
        2.8, gt=0, description="seconds between offset commits of processed records"
    )
    stream_buffer_maxsize: int = Field(
        4096, ge=1, description="events buffered per partition before its fetching pauses"
    )
    # Faust's default is 1 MiB. 4 MiB: a cold start restoring 1 M contacts
    # fetched ~5,000 records per round trip to the consumer thread at 1 MiB
    # (cold starts by hand: 9.45-11.08 s -> 9.11-9.86 s to ready with this
    # alone; docs/performance.md, session 20).
    consumer_max_fetch_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="bytes fetched per partition per fetch request"
    )
    # Faust's value. aiokafka keeps one fetch in flight per broker, and it asks
    # only for partitions with nothing buffered: while it waits on idle ones
    # for up to this long, a busy partition drained meanwhile is not fetched.
    # 0.02: at 2,000 live events/s the change event's p50 1.9 / 3.2 s against
    # 8.1 / 4.9 s, but an idle worker's CPU 6.6-7.4 % of a core against 1.6 %
    # (docs/performance.md, session 27).
    fetch_max_wait: float = Field(
        1.5, gt=0, description="seconds the broker may hold a fetch with no new records"
    )
    # docs/performance.md, session 23; stream/agents/batches.py.
    agent_batch: int = Field(
        500, ge=1, description="events an agent takes at a time (1: Faust's one at a time)"
    )
    agent_batch_wait: float = Field(
        0.005, gt=0, description="seconds an agent waits to fill a batch before taking it"
    )
    # docs/performance.md, session 30; stream/agents/applied.py.
    contact_cache: int = Field(
        50_000,
        ge=0,
        description="decoded contacts a worker keeps of those it last read or wrote (0: none)",
    )
    # docs/performance.md, session 31; stream/tables/identities.py.
    identity_cache: int = Field(
        50_000,
        ge=0,
        description="decoded identity entries a worker keeps of those it last read or wrote",
    )
    library_log_level: str = Field(
        "WARNING", description="level of the faust, mode and aiokafka loggers"
    )
    faust_monitor: bool = Field(
        False,
        description="keep Faust's Monitor sensor (its per-event statistics; ~3 % of the CPU)",
    )
    outputs_in_worker: bool = Field(
        True,
        description="run the change relay and the Redis projection in the worker; "
        "false: in `contact-stream outputs`, a process of their own (stream/outputs.py)",
    )
    outputs_metrics_port: int = Field(
        6067, description="Prometheus /metrics of `contact-stream outputs` (0: none)"
    )
    projection_retry_max: float = Field(5.0, gt=0, description="max seconds between Redis retries")
    # Python's default is 0.005. The worker's two threads (the agents' and
    # Faust's consumer thread) hand records over; a thread waiting for the GIL
    # waits up to this long (docs/performance.md, session 22: change-event p99 at
    # 300 events/s 100 / 98 ms at 0.005, 64 / 61 ms at 0.0005).
    switch_interval: float = Field(
        0.0005, gt=0, description="seconds a thread may hold the GIL while another waits"
    )
    gc_freeze: bool = Field(
        True,
        description="once tables are recovered, collect and move every live object out of "
        "the collector's sight (gc.freeze): full collections then skip the startup heap",
    )
    loop_stats_seconds: float = Field(
        0.0,
        ge=0,
        description="log each thread's event-loop load this often (0: off; stream/diagnostics.py)",
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

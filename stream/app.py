"""The faust.App, built from Settings; nothing else lives here."""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import faust
from faust.app._attached import Attachments
from faust.exceptions import ProducerSendError
from faust.types import TP, AgentT
from faust.types.tuples import RecordMetadata
from mode import ServiceT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from stream import diagnostics, logmask, metrics
from stream.partitioner import KafkaPartitioner
from stream.security import broker_credentials
from stream.settings import get_settings
from stream.tables.local_state import mark_clean, open_local_state
from stream.tables.recovery import TableManager
from stream.transport import refused

settings = get_settings()
# The worker's exit status when an agent failed (EX_SOFTWARE).
EXIT_AGENT_FAILED = 70


def _quiet_library_loggers() -> None:
    # The Faust worker turns the root logger to DEBUG; its and aiokafka's debug
    # records cost a large share of the per-message time (DESIGN.md, Speed).
    for name in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(name).setLevel(settings.library_log_level.upper())


class BarrierAttachments(Attachments):
    """Faust's attached messages, published at a commit after the app's commit barriers.

    Every offset commit (periodic, on a rebalance, on stop) goes through
    `Consumer._handle_attached`, which calls this for each partition about to
    be committed, on either transport: a barrier awaited here completes
    before the offsets are committed (stream/agents/follow_ups.py).
    """

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.barriers: list[Callable[[], Awaitable[None]]] = []

    async def publish_for_tp_offset(self, tp: TP, offset: int) -> list[Awaitable[RecordMetadata]]:
        try:
            for barrier in self.barriers:
                await barrier()
        except Exception as exc:  # Faust's consumer crashes on this one: nothing committed
            raise ProducerSendError(f"a commit barrier failed: {type(exc).__name__}") from exc
        return await super().publish_for_tp_offset(tp, offset)


class FlowControl(FlowControlEvent):
    """Faust's flow control of the stream buffers; resuming a running flow clears nothing.

    `FlowControlEvent.resume` empties every agent's stream buffer. Faust's
    recovery resumes the flow when the restore starts and again when it
    completes (`Recovery.on_recovery_completed`), and the second time comes
    after it has resumed the stream partitions and sought them to their
    committed offsets: a record fetched in between was delivered to its
    agent's buffer, under this assignment, and then cleared. Its position
    had moved past it and it was never acknowledged, so nothing read it
    again until the next rebalance (CI, stop 33: a command sent as a
    restarted worker said ready was never processed; its agent was still
    waiting for the tenant configs, so the record sat in the buffer). What
    the clear is for, the events of a previous assignment, is cleared when a
    rebalance suspends the flow, and at the resume that ends the suspension:
    while the flow is suspended, the conductor holds every record back
    (`FlowControlEvent.acquire`), so only such events can be in the buffers.
    """

    def resume(self) -> None:
        if self.is_active():
            return  # running already: the buffers hold this assignment's records
        super().resume()


class App(faust.App):
    """Faust's App, except that an agent's failure stops the worker at once.

    Bad input never raises (it is dead-lettered), so an exception in an agent
    is a bug or a broken dependency. Faust's default commits the consumer's
    offsets and restarts the actor, skipping the failed event; a graceful
    crash commits it too (the stream acks the event as it unwinds; seen in a
    test). So the worker exits like a SIGKILL, which recovery must survive
    anyway: nothing is committed, and the event is retried on restart.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._attachments = BarrierAttachments(self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """The stream buffers' flow control: ours, which keeps a running flow's records."""
        return FlowControl(loop=self.loop)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        dependencies = super().on_init_dependencies()  # adds the Monitor to the sensors
        if not settings.faust_monitor:
            # Its per-event bookkeeping (the sensor calls on every record in and
            # out) costs ~3 % of the worker's CPU; nothing of ours reads it, and
            # Faust's direct calls to it (commits, end offsets) still work.
            self.sensors.remove(self.monitor)
        return dependencies

    def before_commit(self, barrier: Callable[[], Awaitable[None]]) -> None:
        """Await `barrier` before every offset commit of this worker's consumer."""
        cast(BarrierAttachments, self._attachments).barriers.append(barrier)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        # These modules import this one.
        from stream.tables.tenant_configs import TenantConfigFollower
        from stream.topics import ensure_topics

        logmask.install()  # the worker's handlers exist by now, whatever their order
        diagnostics.install(self)
        sys.setswitchinterval(settings.switch_interval)
        if settings.loop_stats_seconds:
            diagnostics.LoopStats(settings.loop_stats_seconds).install()
        if not self.client_only:
            open_local_state(self.conf.tabledir)
        await ensure_topics()
        # Every worker follows every tenant's config; agents wait until it is
        # read. Started beside the app, not before it: its start (a client, the
        # end offsets) was ~0.6 s of every worker start, and nothing before
        # the agents needs it (the table recovery does not read configs).
        follower = TenantConfigFollower()
        self.add_dependency(follower)
        self.add_future(self._start_beside(follower))

    async def _start_beside(self, service: ServiceT) -> None:
        """Start `service` without holding up the app's start; its failure crashes the app."""
        try:
            await service.maybe_start()
        except Exception as exc:
            await self.crash(exc)

    async def on_stop(self) -> None:
        await super().on_stop()  # streams drained, offsets committed, producer flushed
        # A refused changelog record left the local state ahead of the
        # changelog: the next start must restore from the changelog.
        if not self.client_only and self.crash_reason is None and not refused():
            mark_clean(self.conf.tabledir)

    async def _on_agent_error(self, agent: AgentT[Any], exc: BaseException) -> None:
        # The traceback without the exception's message: a message may quote a
        # table key, and keys hold emails and phones.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logging.getLogger("stream.app").critical(
            "agent %s failed with %s; stopping the worker, the event will be retried\n%s",
            agent.name,
            type(exc).__name__,
            frames,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_AGENT_FAILED)


app = App(
    settings.app_id,
    broker=[f"{settings.kafka_transport}://{host}" for host in settings.kafka_bootstrap.split(",")],
    store=settings.store,
    datadir=settings.datadir,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    processing_guarantee=settings.processing_guarantee,
    producer_linger=settings.producer_linger,
    producer_max_batch_size=settings.producer_max_batch_bytes,
    # Kafka's default partitioner with a compiled murmur2 (stream/partitioner.py).
    producer_partitioner=KafkaPartitioner(),
    broker_commit_interval=settings.commit_interval,
    web_bind=settings.web_host,
    # The URL other workers forward a request to when this one owns the key.
    web_host=settings.web_host,
    web_port=settings.web_port,
    consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=settings.stream_buffer_maxsize,
    consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
    broker_session_timeout=settings.session_timeout,
    broker_credentials=broker_credentials(settings),
    # Restores a changelog batch at a time (stream/tables/recovery.py).
    TableManager=TableManager,
)


_quiet_library_loggers()
# Not in `contact-stream outputs`, which imports the app but never starts it.
metrics.watch_consumer_lag(lambda: metrics.consumer_lags(app.consumer) if app.started else {})


@app.on_worker_init.connect
def _on_worker_init(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    # Again once the worker has set up logging: it raises the root logger.
    _quiet_library_loggers()
    logmask.install()


@app.on_rebalance_complete.connect
async def _on_rebalance_complete(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    if settings.gc_freeze:
        # What is alive now (modules, the app, its tables' state) mostly lives for
        # good: full collections stop walking it (55-118 ms each, every ~5 s,
        # before). Unfrozen and collected first, so what an earlier freeze kept
        # and has died since (a revoked partition's objects) is freed now.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    # Tests and operators wait for this line: partitions assigned, tables recovered.
    logging.getLogger("stream.app").info("contact-stream ready: tables recovered")

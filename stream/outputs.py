"""`contact-stream outputs`: the change relay and the Redis projection in a process of their own.

A worker runs the contact agents and, by default, the two output services
beside them: the change relay (stream/relay.py: the outbox onto the changes
topic, in transactions) and the Redis projection (stream/projection/service.py).
Neither is a Faust agent: each has a consumer group of its own, so it can
run anywhere. With `CS_OUTPUTS_IN_WORKER=false` the workers leave them out
and this command runs them, so their CPU is not taken from the agents'
event loop (from a backlog the worker's main thread is the bottleneck:
docs/performance.md).

What it runs: the tenant-config follower (the projection's filter indexes
follow each tenant's `filterable_fields`), the relay and the projection,
after creating any missing topic as a worker does; Prometheus metrics on
`CS_OUTPUTS_METRICS_PORT`. Run one or more such processes: the relay's and
the projection's groups share the partitions among them, as with workers.
SIGTERM stops it cleanly: the relay finishes the transaction in flight.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence

from mode import Service, ServiceT, Worker
from prometheus_client import start_http_server

log = logging.getLogger(__name__)


class Outputs(Service):
    """The relay and the projection, once the topics exist and beside the config follower."""

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        from stream.projection.service import Projection
        from stream.relay import ChangeRelay
        from stream.tables.tenant_configs import TenantConfigFollower

        return [TenantConfigFollower(), ChangeRelay(), Projection()]

    async def on_first_start(self) -> None:
        from stream import logmask
        from stream.app import settings
        from stream.topics import ensure_topics

        logmask.install()
        await ensure_topics()
        if settings.outputs_metrics_port:
            start_http_server(settings.outputs_metrics_port, addr=settings.web_host)

    async def on_started(self) -> None:
        log.info("contact-stream outputs running: change relay and Redis projection")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="contact-stream outputs", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("-l", "--loglevel", default="info")
    args = parser.parse_args(list(argv))
    import stream.worker  # noqa: F401 - the app's tables: ensure_topics creates their changelogs
    from stream.app import _quiet_library_loggers, settings

    if settings.outputs_in_worker:
        log.warning(
            "CS_OUTPUTS_IN_WORKER is true: the workers run the relay and the projection too"
        )
    worker = Worker(Outputs(), loglevel=args.loglevel, redirect_stdouts=False)
    _quiet_library_loggers()
    worker.execute_from_commandline()  # exits the process
    return 0

"""Everything a worker runs: importing this module registers it on the app."""

from stream import relay  # noqa: F401
from stream.agents import (  # noqa: F401
    command,
    contact,
    engagement,
    identity,
    intake,
    quota,
    tenants,
    timers,
)
from stream.app import app
from stream.projection import service  # noqa: F401
from stream.web import views  # noqa: F401

__all__ = ["app"]

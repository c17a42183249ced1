"""Follow-up messages sent once what came before them is durable, behind one shared flush.

A contact operation's follow-ups (unlocks, quota releases, merge hops) may
only be sent once its effects (tables, change events, snapshot) are
acknowledged by the broker: no identifier may name a contact whose state is
not yet durable. Waiting for that flush inside the operation held the
contact partitions' actor for a broker round trip per operation (~12 ms
here, so ~80 lock-holding operations/s per worker).

Here the actor hands an operation's follow-ups over and goes on to the next
operation; one pump flushes the producer and then sends every follow-up
handed over before that flush began, in order. Under load one flush serves
many operations; alone, an operation waits as long as before.

Two things keep this as safe as the flush inside the operation:

- **No commit passes an unsent follow-up.** An operation is acknowledged
  when the actor takes the next one, so its offset may be committed before
  the pump has sent its follow-ups, and a crash then would lose them (an
  identifier locked for ever). `drain` is a commit barrier
  (stream/app.py): every commit first waits for what was handed over.
- **Order.** A message the actor sends itself that must come after an
  earlier operation's follow-ups (a slot request after a slot release, a
  re-routed operation, a merge hop) is sent after `drain`.

A follow-up sent and then lost to a crash before the commit is sent again:
the operation is redelivered and repeats its stored follow-ups
(stream/agents/applied.py); a repeated unlock or release is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Entry = list[Any]


class FollowUps:
    """Entries handed over in order; each sent after a flush that began after it was handed over."""

    def __init__(
        self,
        flush: Callable[[], Awaitable[None]],
        send: Callable[[Entry], Awaitable[None]],
        on_error: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._flush = flush
        self._send = send
        self._on_error = on_error
        self._pending: deque[Entry] = deque()
        self._lock = asyncio.Lock()  # one sender at a time: the pump or a drain
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def put(self, entries: list[Entry]) -> None:
        """Hand over an operation's follow-ups; the pump sends them behind the next flush."""
        if not entries:
            return
        self._pending.extend(entries)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._run())

    async def drain(self) -> None:
        """Return once everything handed over so far is flushed and sent."""
        async with self._lock:
            await self._send_pending()

    async def stop(self) -> None:
        """Stop the pump (what is pending stays for a `drain`)."""
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                async with self._lock:
                    await self._send_pending()
            except Exception as exc:  # not a cancellation: that is a BaseException
                # Unsent follow-ups stay pending, and every commit drains them
                # first: nothing is committed past them. The worker stops.
                log.error("sending follow-ups failed: %s", type(exc).__name__)
                await self._on_error(exc)
                return

    async def _send_pending(self) -> None:
        while self._pending:
            count = len(self._pending)  # what the flush below makes safe to send
            await self._flush()
            # Removed one by one as each is sent: a cancelled or failed send
            # leaves the rest (and itself) for the next drain.
            for _ in range(count):
                await self._send(self._pending[0])
                self._pending.popleft()

"""The read model's Lua scripts, called in one packed round trip per batch.

redis-py's pipeline costs the projection more than the writes: each call
goes through the command stack with its options, the encoder once per
argument, `pack_commands`, a `SCRIPT EXISTS` round trip before every
execute, a retry wrapper and per-command response callbacks. In the
engagement workload's profile that was half of the projection's CPU
(docs/performance.md, session 27). The projection only ever runs its own
scripts, so they are packed here (RESP, one `b"".join` per call) and sent on
a connection of the client's pool with redis-py's `send_packed_command` and
`read_response`.

Each batch starts with `SCRIPT LOAD` of the scripts it calls: a Redis that
restarted (its script cache empty) runs the batch all the same, and a cached
script costs the server one SHA-1 of its text. A failure of the connection
closes it, as redis-py does, and reaches the caller, which retries the
batch: the scripts are version-checked, so a batch written twice changes
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

Arg = bytes | str | int


def pack(args: Sequence[Arg]) -> bytes:
    """One command in the Redis protocol (RESP2): bytes as they are, str as UTF-8, int as digits."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"a Redis argument is bytes, str or int, not {type(arg).__name__}")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Script:
    """A Lua script: `call` packs one EVALSHA of it, `load` is its SCRIPT LOAD."""

    def __init__(self, body: str) -> None:
        text = body.encode()
        # Redis names a script by the SHA-1 of its text (not a security use).
        self.sha = hashlib.sha1(text, usedforsecurity=False).hexdigest().encode()
        self.load = pack([b"SCRIPT", b"LOAD", text])

    def call(self, keys: Sequence[Arg], args: Iterable[Arg]) -> bytes:
        return pack([b"EVALSHA", self.sha, len(keys), *keys, *args])


# Items are counted (ARGV[1]), then each gives its key count, its argument
# count and its arguments; KEYS holds the items' keys in order. The item's
# own script runs as a function whose parameters KEYS and ARGV shadow the
# call's, so its text is unchanged.
_BATCHED_HEAD = """
local function one(KEYS, ARGV)
"""
_BATCHED_TAIL = """
end
local replies = {}
local k, a = 0, 2
for item = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local keys, args = {}, {}
  for i = 1, nk do keys[i] = KEYS[k + i] end
  for i = 1, na do args[i] = ARGV[a + 1 + i] end
  replies[item] = one(keys, args)
  k = k + nk
  a = a + 2 + na
end
return replies
"""

Item = tuple[Sequence[Arg], Sequence[Arg]]


class Batched(Script):
    """A script written for one item (its KEYS and ARGV), run over many in one call.

    The reply is the list of the items' replies. Each call is one EVALSHA
    instead of one per item: the client packs and reads one command, and
    Redis runs the script once. All of a call's keys must share a Redis
    Cluster slot (the read model's items of one tenant do).
    """

    def __init__(self, body: str) -> None:
        super().__init__(_BATCHED_HEAD + body + _BATCHED_TAIL)

    def call_items(self, items: Sequence[Item]) -> bytes:
        args: list[Arg] = [len(items)]
        for keys, item_args in items:
            args += (len(keys), len(item_args), *item_args)
        return self.call([key for keys, _ in items for key in keys], args)


async def run(client: Redis, scripts: Sequence[Script], calls: Sequence[bytes]) -> list[Any]:
    """Loads `scripts`, then sends `calls` (packed by `Script.call`) in one round trip.

    Returns the calls' replies in order. A script's error is raised after
    every reply is read, so the connection stays in step and goes back to
    the pool; any other failure closes the connection first.
    """
    if not calls:
        return []
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    try:
        await conn.send_packed_command(b"".join([*(s.load for s in scripts), *calls]))
        replies = []
        for _ in range(len(scripts) + len(calls)):
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies[len(scripts) :]

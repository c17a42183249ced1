"""The read model's RESP packing (stream/projection/scripts.py) against redis-py's own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from stream.projection.scripts import Script, pack

ARGS = st.lists(
    st.one_of(st.binary(max_size=300), st.text(max_size=300), st.integers(-(2**63), 2**63)),
    max_size=20,
)


@given(ARGS)
def test_a_command_is_packed_byte_for_byte_as_redis_py_packs_it(
    args: list[bytes | str | int],
) -> None:
    # redis-py splits its first argument at spaces (`"SCRIPT LOAD"`); ours is a fixed name.
    command = [b"EVALSHA", *args]
    assert pack(command) == b"".join(Connection().pack_command(*command))


def test_an_argument_of_another_type_is_refused_not_sent() -> None:
    for bad in (1.5, True, None):
        with pytest.raises(TypeError):
            pack([b"EVALSHA", bad])  # type: ignore[list-item]


def test_a_script_call_names_it_by_the_sha1_redis_gives_it() -> None:
    script = Script("return 1")
    assert script.sha == b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # SCRIPT LOAD "return 1"
    assert script.call(["k1", "k2"], [7, b"x"]) == pack(
        [b"EVALSHA", script.sha, 2, "k1", "k2", 7, b"x"]
    )
    assert script.load == pack([b"SCRIPT", b"LOAD", b"return 1"])

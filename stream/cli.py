"""`contact-stream`: the Faust CLI of the app, plus the project's own commands.

`contact-stream worker|tables|...` are Faust's; `demo`, `demo-feed`,
`export-schemas`, `outputs` (the change relay and the Redis projection in a
process of their own: stream/outputs.py), `send` (a JSONL file, validated first: it replaces Faust's
one-message `send`), `lookup`, `find` and `rebuild-projection` are ours (argparse,
no Faust app context needed; stream/tools.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def _export_schemas(argv: Sequence[str]) -> int:
    from stream.schemas import main as schemas_main

    return schemas_main(list(argv))


def _demo(argv: Sequence[str]) -> int:
    from stream.demo import main as demo_main

    return demo_main(list(argv))


def _demo_feed(argv: Sequence[str]) -> int:
    from stream.demo import feed_main

    return feed_main(list(argv))


def _outputs(argv: Sequence[str]) -> int:
    from stream.outputs import main as outputs_main

    return outputs_main(argv)


def _tool(name: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        from stream import tools

        main: Callable[[list[str]], int] = getattr(tools, name)
        return main(list(argv))

    return run


OWN_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "demo": _demo,
    "demo-feed": _demo_feed,
    "outputs": _outputs,
    "export-schemas": _export_schemas,
    "send": _tool("send_main"),
    "lookup": _tool("lookup_main"),
    "find": _tool("find_main"),
    "rebuild-projection": _tool("rebuild_main"),
}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in OWN_COMMANDS:
        raise SystemExit(OWN_COMMANDS[args[0]](args[1:]))
    import stream.worker  # noqa: F401 - registers agents, tables and views
    from stream.app import app

    sys.argv = [sys.argv[0], *args]
    app.main()


if __name__ == "__main__":
    main()

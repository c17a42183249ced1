"""`dataclasses.replace` for the domain's frozen, slotted records, at a third of its cost.

`dataclasses.replace` walks the class's fields on every call (`fields()`,
a check and a `getattr` per field, a keyword dict) and then runs the frozen
`__init__`, which stores each field through `object.__setattr__`. An
engagement replaces its contact and its engagement state ~4 times, and in
`bench/hotpath.py` that was ~30 % of the domain step (docs/performance.md,
session 28).

Here each class gets, once, a function written for its fields: a new
instance, and each slot set straight through its descriptor, from `changes`
when named there, else from the old instance. What it gives is what
`dataclasses.replace` gives: an unknown field name raises `TypeError`, and a
class this shortcut cannot copy exactly (a `__post_init__` to run, a field
with `init=False`, no slots) goes through `dataclasses.replace` itself.

Type checkers see `dataclasses.replace` (the `TYPE_CHECKING` branch), so a
call naming a field the class lacks still fails `mypy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataclasses import replace as replace
else:

    def replace(obj: Any, /, **changes: Any) -> Any:
        """`dataclasses.replace(obj, **changes)`, by a function made for `obj`'s class."""
        return _replacer(type(obj))(obj, changes)


Replacer = Callable[[Any, dict[str, Any]], Any]


@cache
def _replacer(cls: type) -> Replacer:
    fields = dataclasses.fields(cls)
    slots = [getattr(cls, f.name, None) for f in fields]
    setters = [s for s in slots if isinstance(s, MemberDescriptorType)]
    if hasattr(cls, "__post_init__") or any(not f.init for f in fields) or setters != slots:
        return lambda obj, changes: dataclasses.replace(obj, **changes)
    names = frozenset(f.name for f in fields)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_names": names}
    lines = [
        "def replace(obj, changes):",
        "    if not changes.keys() <= _names:",
        "        _unknown(_cls, changes.keys() - _names)",
        "    new = _new(_cls)",
    ]
    for i, (f, setter) in enumerate(zip(fields, setters, strict=True)):
        namespace[f"_set{i}"] = setter.__set__
        name = repr(f.name)
        lines.append(f"    _set{i}(new, changes[{name}] if {name} in changes else obj.{f.name})")
    lines.append("    return new")
    namespace["_unknown"] = _unknown
    exec("\n".join(lines), namespace)  # noqa: S102 - the source is built from field names only
    made: Replacer = namespace["replace"]
    return made


def _unknown(cls: type, names: Any) -> None:
    raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {min(names)!r}")

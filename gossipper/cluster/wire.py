"""What crosses between the driver and the nodes: gossipper's frozen dataclasses, pickled.

The settings and the scenario model are frozen dataclasses, and most of their modules are
compiled with mypyc (setup.py). A compiled class has no instance __dict__, so pickle's
default rebuilds an instance attribute by attribute through setattr, which a frozen
dataclass refuses. Registered here, such a class is rebuilt by setting its fields beneath
the frozen __setattr__, as the dataclass' own __init__ does. Ray's serializer (cloudpickle)
reads the same copyreg table.
"""

from __future__ import annotations

import copyreg
import dataclasses
import sys
from typing import Any

_registered: set[type] = set()


def _rebuild(cls: Any, state: dict[str, Any]) -> Any:
    instance = cls.__new__(cls)
    for name, value in state.items():
        object.__setattr__(instance, name, value)
    return instance


def _reduce(instance: Any) -> tuple[Any, tuple[type[Any], dict[str, Any]]]:
    state = {item.name: getattr(instance, item.name) for item in dataclasses.fields(instance)}
    return _rebuild, (type(instance), state)


def register_frozen_dataclasses() -> None:
    """Every frozen dataclass of gossipper's modules imported so far; called before a send,
    on whichever side sends, since a module imported later brings classes of its own."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "gossipper" or name.startswith("gossipper.")):
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and value not in _registered
                and dataclasses.is_dataclass(value)
                and value.__dataclass_params__.frozen  # type: ignore[attr-defined]
            ):
                copyreg.pickle(value, _reduce)
                _registered.add(value)

"""Minimal valid wire objects of the service's messages, for stand-in services in tests.

``sample_wire(cls)`` is the smallest JSON object ``cls.from_wire`` accepts: every required field
with a plain value of its type (``"x"``, ``1``, ``1.0``, ``true``, ``[]``, a nested sample).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from workbench.service.messages import Event, Message


def sample_wire(cls: type[Message]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    data: dict[str, Any] = {"event": cls.KIND} if issubclass(cls, Event) else {}
    for item in dataclasses.fields(cls):
        required = (
            item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        )
        if required:
            data[str(item.metadata.get("wire", item.name))] = _value(hints[item.name])
    return data


def _value(hint: Any) -> Any:
    if hint is str:
        return "x"
    if hint is bool:
        return True
    if hint is int:
        return 1
    if hint is float:
        return 1.0
    if hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return None
    if origin is tuple:
        return []
    if origin is dict:
        return {}
    if isinstance(hint, type) and issubclass(hint, Message):
        return sample_wire(hint)
    raise TypeError(hint)

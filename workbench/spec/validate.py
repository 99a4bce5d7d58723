"""Turning a composed spec into a ``ProjectSpec``, with errors and warnings that name lines.

Pydantic reports a problem as a path of keys and indexes; users need a line in their file. The
composed node tree maps one onto the other. Keys Workbench does not know are not errors (a newer
AI Workbench may write them): they are kept and reported as ``SpecWarning``s.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from workbench.errors import SpecError
from workbench.spec.models import ProjectSpec, SpecModel
from workbench.spec.nodes import KeyPath, dotted, line_of, to_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpecWarning:
    """Something in the spec that works but deserves a look, such as a key Workbench ignores."""

    field: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """For ``-o json`` output, shaped like an error's details."""
        return {"field": self.field, "line": self.line, "message": self.message}


def validate(root: MappingNode, filename: str) -> tuple[ProjectSpec, list[SpecWarning]]:
    """Validate the composed spec; ``SpecError`` names the first problem's line and field."""
    data = to_data(root, filename)
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, root, filename) from exc
    return spec, list(_unknown_keys(root, ProjectSpec, ()))


def _spec_error(exc: ValidationError, root: Node, filename: str) -> SpecError:
    located = sorted(
        ((line_of(root, err["loc"]), err) for err in exc.errors()), key=lambda pair: pair[0]
    )
    for line, err in located:
        log.debug("%s:%d: %s: %s", filename, line, dotted(err["loc"]), err["msg"])
    line, first = located[0]
    message, expected = _describe(first)
    if len(located) > 1:
        more = len(located) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(
        message, file=filename, line=line, field=dotted(first["loc"]), expected=expected
    )


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "dict_type": "a mapping of keys to values",
}


def _describe(err: ErrorDetails) -> tuple[str, str | None]:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing", None
    got = _shown(err.get("input"))
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind == "literal_error":
        return f"got {got}", f"one of {ctx.get('expected')}"
    if kind == "greater_than_equal":
        return f"got {got}", f"a number of at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"got {got}", f"a number of at most {ctx.get('le')}"
    if kind == "workbench_rule":
        return f"got {got}: {ctx.get('reason')}", str(ctx.get("expected"))
    if kind in _EXPECTED:
        return f"got {got}", _EXPECTED[kind]
    return f"got {got}: {err['msg']}", None


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _unknown_keys(node: Node, model: type[SpecModel], path: KeyPath) -> Iterator[SpecWarning]:
    if not isinstance(node, MappingNode):
        return
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, ScalarNode) else ""
        here = (*path, key)
        field = fields.get(key)
        if field is None:
            yield SpecWarning(dotted(here), key_node.start_mark.line + 1, _unknown_message(key))
            continue
        sub, is_list = _model_in(field.annotation)
        if sub is None:
            continue
        if is_list and isinstance(value_node, SequenceNode):
            for i, item in enumerate(value_node.value):
                yield from _unknown_keys(item, sub, (*here, i))
        elif not is_list:
            yield from _unknown_keys(value_node, sub, here)


def _unknown_message(key: str) -> str:
    elsewhere = _known_paths().get(key, [])
    message = "unknown key, kept as it is but not used by Workbench"
    if 0 < len(elsewhere) <= 3:
        message += "; it is known at " + " and ".join(elsewhere)
    return message


def _model_in(annotation: object) -> tuple[type[SpecModel] | None, bool]:
    """The spec model an annotation holds (``X``, ``X | None``, ``list[X]``), and if in a list."""
    origin = typing.get_origin(annotation)
    if origin is list:
        inner, _ = _model_in(typing.get_args(annotation)[0])
        return inner, True
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _model_in(arg)
    if isinstance(annotation, type) and issubclass(annotation, SpecModel):
        return annotation, False
    return None, False


_KNOWN: dict[str, list[str]] = {}


def _known_paths() -> dict[str, list[str]]:
    """Every key the models know, and the dotted places it belongs (``[]`` for list items)."""
    if not _KNOWN:
        _collect(ProjectSpec, "")
    return _KNOWN


def _collect(model: type[SpecModel], prefix: str) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        place = f"{prefix}.{key}" if prefix else key
        _KNOWN.setdefault(key, []).append(place)
        sub, is_list = _model_in(field.annotation)
        if sub is not None:
            _collect(sub, place + ("[]" if is_list else ""))

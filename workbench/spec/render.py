"""Rendering new values as YAML text that reads back as exactly the value meant.

Only what an edit adds is rendered here; nothing already in the file is ever re-rendered. A
string is written plain only when every YAML reader (1.1, as Go's decoder partly is, and 1.2)
would read it back as that same string; otherwise it is double-quoted, so ``"8080"``, ``"yes"``,
``""`` and ``"a: b"`` stay strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

# Words YAML 1.1 reads as booleans or null; yaml.v3 still honours some of them.
_YAML11_WORDS = re.compile(r"(?i)y|yes|n|no|true|false|on|off|null|~|nan|inf")
_PLAIN_START = re.compile(r"[A-Za-z_/$(]")
_resolver = VersionedResolver(version=(1, 2))

Value = object


@dataclass(frozen=True)
class Style:
    """How a document indents: the step of nested mappings and the dash offset of sequences."""

    indent: int = 2
    # Columns between a key and the dash of the block sequence under it (0: "key:\n- item").
    seq_offset: int = 0
    # Columns between a dash and the item's content ("- key: v" is 2).
    dash_gap: int = 2


def scalar(value: Value) -> str:
    """One scalar as YAML text for block context."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        return value if _plain_ok(value) else double_quoted(value)
    raise TypeError(f"cannot write a {type(value).__name__} as a YAML scalar")


def _plain_ok(text: str) -> bool:
    if not text or text != text.strip() or not text.isprintable():
        return False
    if not _PLAIN_START.match(text) or _YAML11_WORDS.fullmatch(text):
        return False
    if ": " in text or " #" in text or text.endswith(":") or "\t" in text:
        return False
    tag = _resolver.resolve(ScalarNode, text, (True, False))
    return bool(tag == "tag:yaml.org,2002:str")


def double_quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def flow(value: Value) -> str:
    """A value in flow style, for appending to ``[a, b]`` or ``{a: 1}`` as written by hand."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{scalar(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, str):
        # Commas and brackets end a plain scalar in flow context, so strings are always quoted.
        return double_quoted(value)
    return scalar(value)


def mapping_lines(data: Mapping[str, Value], column: int, style: Style) -> list[str]:
    """Block lines for the entries of ``data``, keys at ``column``."""
    lines: list[str] = []
    for key, value in data.items():
        lines.extend(entry_lines(key, value, column, style))
    return lines


def entry_lines(key: str, value: Value, column: int, style: Style) -> list[str]:
    """Block lines for ``key: value``, the key at ``column``."""
    head = " " * column + scalar(str(key)) + ":"
    if isinstance(value, Mapping) and value:
        return [head, *mapping_lines(value, column + style.indent, style)]
    if isinstance(value, list | tuple) and value:
        return [head, *sequence_lines(value, column + style.seq_offset, style)]
    return [f"{head} {inline(value)}"]


def sequence_lines(items: Sequence[Value], column: int, style: Style) -> list[str]:
    """Block lines for a sequence, dashes at ``column``."""
    lines: list[str] = []
    for item in items:
        lines.extend(item_lines(item, column, style))
    return lines


def item_lines(item: Value, column: int, style: Style) -> list[str]:
    """Block lines for one sequence item, its dash at ``column``."""
    dash = " " * column + "-" + " " * (style.dash_gap - 1)
    if isinstance(item, Mapping) and item:
        body = mapping_lines(item, column + style.dash_gap, style)
        return [dash + body[0].lstrip(" "), *body[1:]]
    return [dash + inline(item)]


def inline(value: Value) -> str:
    """A value that fits on its key's line: a scalar, or an empty collection."""
    if isinstance(value, Mapping | list | tuple):
        return flow(value)
    return scalar(value)

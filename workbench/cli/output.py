"""Rendering command results as a table, JSON or JSON lines: the CLI's only printer.

Shapes are stable and documented in ``docs/cli.md``: a list command prints a JSON array of
objects, any other command one JSON object; ``jsonl`` prints one object per line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

FORMATS = ("table", "json", "jsonl")

Column = tuple[str, str]  # (header, key in each row)


@dataclass
class Result:
    """What a command hands back: data for machines, a message and columns for people."""

    data: dict[str, Any] | list[dict[str, Any]] | None = None
    columns: Sequence[Column] = ()
    message: str | None = None
    exit_code: int = 0
    # Keys shown as "key: value" lines when ``data`` is one object and there are no columns.
    fields: Sequence[Column] = field(default_factory=tuple)


def render(result: Result, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        payload: Any = result.data if result.data is not None else {"message": result.message}
        out.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    if fmt == "jsonl":
        rows = result.data if isinstance(result.data, list) else [result.data or {}]
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return
    if isinstance(result.data, list) and result.columns:
        out.write(table(result.data, result.columns))
    elif isinstance(result.data, dict) and result.fields:
        width = max(len(h) for h, _ in result.fields)
        for header, key in result.fields:
            out.write(f"{header + ':':<{width + 1}} {cell(result.data.get(key))}\n")
    if result.message:
        out.write(result.message + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    if not rows:
        return "(none)\n"
    grid = [[h for h, _ in columns]] + [[cell(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in grid
    ]
    return "\n".join(lines) + "\n"

"""Limits on YAML written by strangers, checked before anything builds a tree from it.

A project's ``.project/spec.yaml`` comes with whatever repository was cloned. Three shapes cost
far more to read than their size suggests: an alias bomb (nine aliases of nine aliases, eight
levels deep: a few hundred bytes that expand to 43 million nodes, a minute and a gigabyte), deep
nesting (3,000 ``[`` overflow the recursive composer with an internal ``RecursionError``) and
sheer size. :func:`check_yaml` walks the parser's event stream, which is flat and cheap, counts
depth and the nodes the document holds once every alias is expanded, and raises a ``SpecError``
naming the line before any tree is composed.

The limits are far above real specs (the public AI Workbench specs are under 7 KB, 8 levels and
400 values) and far below what hurts. This module lives outside ``workbench.spec`` so that
listing projects, which reads specs shallowly, need not import pydantic.
"""

from __future__ import annotations

from workbench.errors import SpecError

MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000  # after aliases are expanded


def check_size(size: int, filename: str) -> None:
    """``SpecError`` when a spec of ``size`` bytes (or characters) is larger than allowed."""
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"is larger than {MAX_SPEC_BYTES // 1024} KiB ({size / 1024 / 1024:.1f} MiB); a spec "
            "this large is not read",
            file=filename,
        )


def check_yaml(text: str, filename: str) -> None:
    """Raise ``SpecError`` when ``text`` is too large, too deep, or expands to too many nodes.

    Malformed YAML is left for the composer, which reports it with its line.
    """
    check_size(len(text), filename)
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        CollectionEndEvent,
        CollectionStartEvent,
        ScalarEvent,
    )

    sizes: dict[str, int] = {}  # anchor -> nodes under it, aliases expanded
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, nodes so far)
    total = 0
    aliases = False
    try:
        # The C parser where ruamel.yaml.clib is installed (20x faster), else the pure one.
        for event in YAML(typ="safe").parse(text):
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise _error(f"is nested deeper than {MAX_DEPTH} levels", event, filename)
                stack.append((event.anchor, 1))
                continue
            if isinstance(event, ScalarEvent):
                count = 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, AliasEvent):
                count = sizes.get(event.anchor, 1)
                aliases = True
            elif isinstance(event, CollectionEndEvent) and stack:
                anchor, count = stack.pop()
                if anchor:
                    sizes[anchor] = count
                if stack:
                    parent_anchor, parent_count = stack[-1]
                    stack[-1] = (parent_anchor, parent_count + count)
                continue
            else:
                continue
            total += count
            if stack:
                anchor, so_far = stack[-1]
                stack[-1] = (anchor, so_far + count)
            if total > MAX_NODES:
                what = " once its aliases are expanded (an alias bomb?)" if aliases else ""
                raise _error(f"holds more than {MAX_NODES:,} values{what}", event, filename)
    except YAMLError:
        return  # the composer reports it, with its line


def _error(message: str, event: object, filename: str) -> SpecError:
    mark = getattr(event, "start_mark", None)
    line = mark.line + 1 if mark is not None else None
    return SpecError(message, file=filename, line=line)

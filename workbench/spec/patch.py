"""Minimal text patches on a YAML document, placed by the positions of its composed nodes.

Re-serialising a document loses what the user wrote (comments, quoting, indentation, key order),
so every edit here rewrites only the characters it must: a scalar's span, a few new lines after
the last entry of a mapping or sequence, or the lines of one removed item. New lines copy the
indentation their siblings use. The caller re-parses and re-validates the result.

Positions: block collections' end marks point at the *next* token (past trailing comments and
blank lines), so "where a collection ends" is taken from its last leaf value instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from workbench.errors import SpecError
from workbench.spec import render
from workbench.spec.nodes import PathItem, child, dotted, key_node
from workbench.spec.render import Style


def detect_style(root: MappingNode) -> Style:
    """The indentation the document mostly uses, for lines that have no sibling to copy."""
    indents: Counter[int] = Counter()
    offsets: Counter[int] = Counter()
    gaps: Counter[int] = Counter()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode) and not node.flow_style:
            for key, value in node.value:
                if isinstance(value, MappingNode) and not value.flow_style:
                    indents[value.start_mark.column - key.start_mark.column] += 1
                elif _is_block_seq(value):
                    offsets[value.start_mark.column - key.start_mark.column] += 1
                stack.append(value)
        elif isinstance(node, SequenceNode) and not node.flow_style:
            for item in node.value:
                if item.start_mark.line == node.start_mark.line:
                    gaps[item.start_mark.column - node.start_mark.column] += 1
            stack.extend(node.value)
    style = Style()
    return Style(
        indent=_mode(indents, style.indent),
        seq_offset=_mode(offsets, style.seq_offset),
        dash_gap=_mode(gaps, style.dash_gap),
    )


def _mode(counts: Counter[int], default: int) -> int:
    positive = Counter({k: v for k, v in counts.items() if k >= 0})
    return positive.most_common(1)[0][0] if positive else default


def _is_block_seq(node: Node) -> bool:
    return isinstance(node, SequenceNode) and not node.flow_style and bool(node.value)


def _is_block(node: Node) -> bool:
    return isinstance(node, CollectionNode) and not node.flow_style and bool(node.value)


class Patcher:
    """Edits of one LF-only text whose composed tree is ``root``; each returns the new text."""

    def __init__(self, text: str, root: MappingNode) -> None:
        self.text = text
        self.root = root
        self.style = detect_style(root)

    # -- what the document API uses -------------------------------------------------------

    def set_value(self, path: Sequence[PathItem], value: object) -> str:
        """Set the value at ``path`` (a scalar, or a collection where none is yet)."""
        if not path:
            raise SpecError("cannot replace the whole spec", field="")
        parent, key = self._parent(path)
        if parent is None:
            return self._create(path, value)
        node = child(parent, key)
        if node is None:
            if isinstance(parent, MappingNode):
                return self._add_entry(parent, str(key), value, path[:-1])
            raise SpecError("no such item", field=dotted(path))
        if isinstance(value, Mapping | list | tuple) and value:
            if isinstance(parent, MappingNode) and _empty(node):
                return self._fill(parent, str(key), value)
            raise SpecError(
                "only a value or an empty collection can be replaced", field=dotted(path)
            )
        if _is_block(node):
            raise SpecError("a mapping or list cannot be replaced by a value", field=dotted(path))
        if isinstance(parent, MappingNode) and _implicit_null(node):
            colon = self._colon(parent, str(key))
            return self._splice(colon + 1, colon + 1, " " + render.inline(value))
        return self._splice(node.start_mark.index, node.end_mark.index, render.inline(value))

    def append(self, path: Sequence[PathItem], item: object) -> str:
        """Add ``item`` as the last element of the sequence at ``path`` (created if missing)."""
        parent, key = self._parent(path)
        node = child(parent, key) if parent is not None else None
        if node is None or _empty(node):
            return self.set_value(path, [item])
        if not isinstance(node, SequenceNode):
            raise SpecError("not a list", field=dotted(path), expected="a list")
        if node.flow_style:
            at = node.value[-1].end_mark.index
            return self._splice(at, at, ", " + render.flow(item))
        first = node.value[0]
        gap = first.start_mark.column - node.start_mark.column
        if first.start_mark.line != node.start_mark.line:
            gap = self.style.dash_gap
        style = Style(self.style.indent, self.style.seq_offset, gap)
        lines = render.item_lines(item, node.start_mark.column, style)
        return self._insert_lines(self._after(node), lines)

    def remove_item(self, path: Sequence[PathItem], index: int) -> str:
        """Remove element ``index`` of the sequence at ``path``; the last one leaves ``[]``."""
        parent, key = self._parent(path)
        seq = child(parent, key) if parent is not None else None
        if not isinstance(seq, SequenceNode) or not 0 <= index < len(seq.value):
            raise SpecError("no such item", field=dotted((*path, index)))
        items = seq.value
        item = items[index]
        if seq.flow_style:
            if len(items) == 1:
                return self._splice(item.start_mark.index, item.end_mark.index, "")
            if index < len(items) - 1:
                return self._splice(item.start_mark.index, items[index + 1].start_mark.index, "")
            return self._splice(items[index - 1].end_mark.index, item.end_mark.index, "")
        start = self._dash_line(item, seq.start_mark.column)
        end = self._after(item)
        if len(items) > 1 or not isinstance(parent, MappingNode):
            if end == len(self.text) and not self.text.endswith("\n") and start > 0:
                # The last line of a file without a final newline goes with the newline before it.
                start -= 1
            return self._splice(start, end, "")
        # Removing the only item: the key keeps an explicit empty list, not a null.
        colon = self._colon(parent, str(key))
        kept = self.text[colon + 1 : start]
        if kept.endswith("\n") and end == len(self.text) and not self.text.endswith("\n"):
            kept = kept[:-1]
        return self.text[: colon + 1] + " []" + kept + self.text[end:]

    # -- building blocks ------------------------------------------------------------------

    def _parent(self, path: Sequence[PathItem]) -> tuple[Node | None, PathItem]:
        node: Node | None = self.root
        for item in path[:-1]:
            node = child(node, item)
            if node is None:
                return None, path[-1]
        return node, path[-1]

    def _create(self, path: Sequence[PathItem], value: object) -> str:
        """Set a value whose parents are missing: add the nested keys under the deepest one."""
        node: Node = self.root
        depth = 0
        for depth, item in enumerate(path):  # noqa: B007 - depth is used after the loop
            nxt = child(node, item)
            if nxt is None or _empty(nxt):
                break
            node = nxt
        nested: object = value
        for item in reversed(path[depth + 1 :]):
            if isinstance(item, int):
                raise SpecError("no such item", field=dotted(path))
            nested = {item: nested}
        return self.set_value(path[: depth + 1], nested)

    def _add_entry(
        self, mapping: MappingNode, key: str, value: object, path: Sequence[PathItem]
    ) -> str:
        if mapping.flow_style:
            if not mapping.value:
                return self.set_value(path, {key: value})
            at = mapping.value[-1][1].end_mark.index
            return self._splice(at, at, f", {render.scalar(key)}: {render.flow(value)}")
        column = mapping.start_mark.column
        lines = render.entry_lines(key, value, column, self._style_under(mapping))
        return self._insert_lines(self._after(mapping), lines)

    def _style_under(self, mapping: MappingNode) -> Style:
        # Siblings are the best guide: copy how this mapping's own children are indented.
        for key, value in mapping.value:
            if isinstance(value, MappingNode) and not value.flow_style:
                step = value.start_mark.column - key.start_mark.column
                return Style(step, self.style.seq_offset, self.style.dash_gap)
        return self.style

    def _fill(self, mapping: MappingNode, key: str, value: object) -> str:
        """Give a key whose value is null, ``[]`` or ``{}`` a block value on the lines below."""
        key_at = key_node(mapping, key)
        node = child(mapping, key)
        assert key_at is not None and node is not None
        colon = self._colon(mapping, key)
        end = colon + 1 if _implicit_null(node) else node.end_mark.index
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end
        column = key_at.start_mark.column
        if isinstance(value, Mapping):
            lines = render.mapping_lines(
                value, column + self._style_under(mapping).indent, self.style
            )
        else:
            assert isinstance(value, list | tuple)
            lines = render.sequence_lines(value, column + self.style.seq_offset, self.style)
        rest = self.text[end:line_end]
        if rest.strip() and not rest.lstrip().startswith("#"):
            raise SpecError("unexpected text after the value", field=key)
        return (
            self.text[: colon + 1]
            + rest.rstrip(" ") * bool(rest.strip())
            + "\n"
            + "\n".join(lines)
            + self.text[line_end:]
        )

    def _colon(self, mapping: MappingNode, key: str) -> int:
        k = key_node(mapping, key)
        assert k is not None
        at = self.text.find(":", k.end_mark.index)
        if at < 0:
            raise SpecError("cannot find the ':' after a key", field=key)
        return at

    def _after(self, node: Node) -> int:
        """Index just past the line on which ``node``'s last value ends."""
        end = _leaf_end(node)
        if end > 0 and self.text[end - 1] == "\n":
            return end
        nl = self.text.find("\n", end)
        return len(self.text) if nl < 0 else nl + 1

    def _dash_line(self, item: Node, dash_column: int) -> int:
        """Start of the line holding the ``-`` that opens a block sequence item."""
        line_start = self.text.rfind("\n", 0, item.start_mark.index) + 1
        while True:
            line = self.text[line_start:]
            if line[:dash_column].strip() == "" and line[dash_column : dash_column + 1] == "-":
                return line_start
            if line_start == 0:
                raise SpecError("cannot find the '-' of a list item")
            line_start = self.text.rfind("\n", 0, line_start - 1) + 1

    def _insert_lines(self, at: int, lines: list[str]) -> str:
        block = "\n".join(lines) + "\n"
        if at == len(self.text) and not self.text.endswith("\n"):
            # A file without a final newline keeps lacking one.
            block = "\n" + block[:-1]
        return self._splice(at, at, block)

    def _splice(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]


def _leaf_end(node: Node) -> int:
    while _is_block(node):
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last
    return int(node.end_mark.index)


def _implicit_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.value == "" and node.style is None


def _empty(node: Node) -> bool:
    """A value that holds nothing yet: ``key:``, ``key: null``, ``key: []`` or ``key: {}``."""
    if isinstance(node, ScalarNode):
        return bool(node.tag == "tag:yaml.org,2002:null")
    return isinstance(node, CollectionNode) and not node.value

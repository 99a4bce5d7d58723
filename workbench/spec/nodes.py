"""The spec's YAML as a tree of positioned nodes: parsing, plain-data conversion and lookup.

Edits are text patches at node positions (see ``patch.py``) and validation errors point at lines,
so both need ruamel.yaml's *composed* tree, whose nodes carry exact start and end marks, rather
than the constructed Python objects, which forget where they came from.
"""

from __future__ import annotations

from collections.abc import Sequence

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from workbench.errors import SpecError
from workbench.yaml_limits import check_yaml

PathItem = str | int
KeyPath = tuple[PathItem, ...]

_TAG = "tag:yaml.org,2002:"
# A constructor bound to a loader, used only for single scalars: ints like 0x1F or 1_000 and
# floats like .inf are read exactly as ruamel.yaml reads them.
_scalars = YAML(typ="safe", pure=True).constructor


def compose(text: str, filename: str) -> MappingNode:
    """Parse ``text`` (LF line endings) into its node tree; the root must be a mapping.

    The text is first held to ``yaml_limits`` (size, depth, nodes with aliases expanded).
    """
    check_yaml(text, filename)
    try:
        root = YAML(typ="rt", pure=True).compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise SpecError(f"malformed YAML: {problem}", file=filename, line=line) from exc
    except YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", file=filename) from exc
    if not isinstance(root, MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise SpecError(
            "the spec must be a mapping of keys to values",
            file=filename,
            line=line,
            expected="a mapping such as 'specVersion: v2'",
        )
    return root


def to_data(node: Node, filename: str, path: KeyPath = ()) -> object:
    """Plain Python data (dict, list, str, int, float, bool, None) for validation."""
    if isinstance(node, MappingNode):
        data: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else None
            if key is None or key_node.tag == _TAG + "merge":
                raise SpecError(
                    "only plain keys are supported",
                    file=filename,
                    line=key_node.start_mark.line + 1,
                    field=dotted(path),
                )
            if key in data:
                raise SpecError(
                    "duplicate key",
                    file=filename,
                    line=key_node.start_mark.line + 1,
                    field=dotted((*path, key)),
                )
            data[key] = to_data(value_node, filename, (*path, key))
        return data
    if isinstance(node, SequenceNode):
        return [to_data(item, filename, (*path, i)) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: Node) -> object:
    tag = node.tag
    if tag in (_TAG + "int", _TAG + "float", _TAG + "bool"):
        value: object = _scalars.construct_object(node)
        return value
    if tag == _TAG + "null":
        return None
    # Timestamps and custom tags stay text: the models want strings there, as Go would give.
    return str(node.value)


def child(node: Node | None, item: PathItem) -> Node | None:
    """The value at ``item`` (a key of a mapping or an index of a sequence), if there is one."""
    if isinstance(item, str) and isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == item:
                found: Node = value_node
                return found
        return None
    if isinstance(item, int) and isinstance(node, SequenceNode):
        return node.value[item] if 0 <= item < len(node.value) else None
    return None


def key_node(mapping: MappingNode, key: str) -> Node | None:
    for k, _ in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k
    return None


def find(root: Node, path: Sequence[PathItem]) -> Node | None:
    node: Node | None = root
    for item in path:
        node = child(node, item)
        if node is None:
            return None
    return node


def deepest(root: Node, path: Sequence[PathItem]) -> tuple[Node, int]:
    """The deepest node along ``path`` that exists, and how many path items reached it."""
    node = root
    for depth, item in enumerate(path):
        nxt = child(node, item)
        if nxt is None:
            return node, depth
        node = nxt
    return node, len(path)


def line_of(root: Node, path: Sequence[PathItem]) -> int:
    """1-based line that best shows ``path``: its value, or else its nearest existing parent."""
    node, depth = deepest(root, path)
    if depth < len(path) and depth > 0 and isinstance(node, MappingNode | SequenceNode):
        # A missing key is best shown at the key that holds the mapping it is missing from.
        parent, _ = deepest(root, path[: depth - 1])
        owner = key_node(parent, str(path[depth - 1])) if isinstance(parent, MappingNode) else None
        if owner is not None:
            return int(owner.start_mark.line) + 1
    return int(node.start_mark.line) + 1


def dotted(path: Sequence[PathItem]) -> str:
    """``("execution", "mounts", 0, "type")`` as ``execution.mounts[0].type``."""
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else item)
    return out

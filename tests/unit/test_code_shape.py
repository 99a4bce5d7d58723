"""Code-shape rules that keep instance state where it belongs.

A class attribute that methods then assign through ``self`` stands in for instance state: it
reads as shared until the first write, which is how a loop flag once leaked between sessions in
other code bases, and it hides the state from ``__init__``, where a reader looks for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workbench", "contexts", "ui", "nvwb")
EXEMPT_BASES = {"Protocol", "Enum", "NamedTuple", "TypedDict", "Exception"}


def _decorated_as_dataclass(cls: ast.ClassDef) -> bool:
    for decorator in cls.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def _class_level_names(cls: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            names.update([stmt.target.id] if isinstance(stmt.target, ast.Name) else [])
    return names


def _assigned_through_self(cls: ast.ClassDef) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if (
                    isinstance(part, ast.Attribute)
                    and isinstance(part.value, ast.Name)
                    and part.value.id == "self"
                ):
                    found.add(part.attr)
    return found


def test_no_class_attribute_stands_in_for_instance_state() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in cls.bases}
                if _decorated_as_dataclass(cls) or bases & EXEMPT_BASES:
                    continue
                both = _class_level_names(cls) & _assigned_through_self(cls)
                if both:
                    where = path.relative_to(ROOT)
                    offenders.append(f"{where}: {cls.name}: {', '.join(sorted(both))}")
    assert offenders == [], "set these in __init__:\n" + "\n".join(offenders)


def test_the_sync_session_drives_its_engine_only_through_its_methods() -> None:
    """``SyncSession`` pauses, resumes and disconnects the engine by asking it
    (``SyncEngine.pause``/``resume``/``disconnect``), never by writing its fields or closing
    its parts; and ``session.py`` stays a readable size."""
    source = (ROOT / "workbench" / "sync" / "session.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    writes = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            text = ast.unparse(target)
            if "_engine." in text or "engine." in text.removeprefix("self._"):
                writes.append(f"line {node.lineno}: {text} = ...")
    calls = [
        f"line {node.lineno}: {ast.unparse(node.func)}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ".remote." in ast.unparse(node.func) + "."
        and "engine" in ast.unparse(node.func)
    ]
    assert writes == [] and calls == []
    assert len(source.splitlines()) < 400

"""Every Workbench error crosses the service's socket intact.

The service sends a failure as its ``to_dict()`` and the client rebuilds it with
``protocol.error_from_dict``, so ``nvwb`` prints, exits and writes ``-o json`` exactly as if the
error had been raised locally. These tests find every ``WorkbenchError`` subclass in the code
(importing each module of ``workbench`` and ``contexts``), build each one from its own
constructor with its optional fields left out and with them given, and send it through the same
JSON encoding the socket uses. A new subclass is covered without being named here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import contexts
import workbench
from workbench.errors import SpecError, WorkbenchError
from workbench.kinds.provision import Attempt
from workbench.service import protocol


def _all_error_classes() -> list[type[WorkbenchError]]:
    for package in (workbench, contexts):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    found: list[type[WorkbenchError]] = []
    todo: list[type[WorkbenchError]] = [WorkbenchError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


ERROR_CLASSES = _all_error_classes()

# A sample value per annotation seen in the constructors. A constructor with an annotation that is
# not here fails ``test_every_error_class_can_be_built_here``: add a sample for it.
_SAMPLES: dict[str, Any] = {
    "str": "sample text",
    "int": 7,
    "Path": Path("/sample/path"),
    "list[str]": ["first line", "second line"],
    "list[int]": [1, 2],
    "tuple[Attempt, ...]": (Attempt("g5.xlarge", False, "insufficient capacity"),),
}


def _sample(parameter: inspect.Parameter) -> Any:
    annotation = str(parameter.annotation).replace(" | None", "")
    if annotation not in _SAMPLES:
        raise LookupError(f"no sample for {parameter.name}: {parameter.annotation}")
    value = _SAMPLES[annotation]
    return f"{value} ({parameter.name})" if isinstance(value, str) else value


def _build(cls: type[WorkbenchError], *, optional: bool) -> WorkbenchError:
    """``cls`` from its constructor: required arguments sampled, optional ones too if asked."""
    kwargs: dict[str, Any] = {}
    args: list[Any] = []
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.default is not inspect.Parameter.empty and not optional:
            continue
        value = _sample(parameter)
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


def _over_the_wire(exc: WorkbenchError) -> WorkbenchError:
    """What a client rebuilds from the reply the service sends for ``exc``."""
    reply = json.loads(protocol.encode(protocol.workbench_error(1, exc)))
    return protocol.error_from_dict(reply["error"]["data"])


def _as_json(exc: WorkbenchError) -> Any:
    return json.loads(json.dumps(exc.to_dict(), default=str))


def _cases() -> list[Any]:
    return [
        pytest.param(cls, optional, id=f"{cls.__qualname__}-{'all' if optional else 'required'}")
        for cls in ERROR_CLASSES
        for optional in (False, True)
    ]


def test_every_error_class_can_be_built_here():
    for cls in ERROR_CLASSES:
        _build(cls, optional=True)
        _build(cls, optional=False)


def test_each_code_names_one_class():
    # The code is what the client rebuilds the type from: two classes with one code would come
    # back as whichever was found first, their own fields dropped and ``except`` clauses missed.
    by_code: dict[str, list[str]] = {}
    for cls in ERROR_CLASSES:
        by_code.setdefault(cls.code, []).append(cls.__qualname__)
    shared = {code: names for code, names in by_code.items() if len(names) > 1}
    assert not shared


@pytest.mark.parametrize(("cls", "optional"), _cases())
def test_an_error_rebuilt_from_the_wire_is_the_same_error(cls, optional):
    original = _build(cls, optional=optional)
    rebuilt = _over_the_wire(original)
    assert type(rebuilt) is cls
    assert rebuilt.exit_code == original.exit_code
    assert str(rebuilt) == str(original)
    assert rebuilt.hint == original.hint
    # What ``nvwb -o json`` prints and what the app reads.
    assert _as_json(rebuilt) == _as_json(original)
    assert json.loads(json.dumps(rebuilt.details(), default=str)) == json.loads(
        json.dumps(original.details(), default=str)
    )
    # Everything the error holds crossed: what is not in details() would be lost on the way.
    held = {key: value for key, value in vars(original).items() if not key.startswith("_")}
    assert json.loads(json.dumps({key: getattr(rebuilt, key) for key in held}, default=str)) == (
        json.loads(json.dumps(held, default=str))
    )


def test_a_spec_error_without_a_field_survives_the_wire():
    # The case that crashed ``nvwb list apps -o json``: a YAML syntax error has no field.
    rebuilt = _over_the_wire(SpecError("could not parse", file="/p/.project/spec.yaml", line=3))
    assert isinstance(rebuilt, SpecError)
    assert rebuilt.field is None and rebuilt.expected is None
    assert rebuilt.to_dict()["line"] == 3 and "field" not in rebuilt.to_dict()


def test_an_error_of_a_class_this_process_lacks_keeps_its_code_and_exit_code():
    data = {"code": "from_the_future", "message": "m", "exit_code": 42, "widget": "w"}
    rebuilt = protocol.error_from_dict(data)
    assert rebuilt.to_dict()["code"] == "from_the_future"
    assert rebuilt.exit_code == 42
    assert rebuilt.message == "m"


def test_every_module_with_an_error_class_is_listed_for_clients():
    assert {cls.__module__ for cls in ERROR_CLASSES} <= set(protocol.ERROR_MODULES)


def test_a_reply_cannot_replace_an_errors_methods():
    data = {"code": "spec", "message": "m", "details": "x", "to_dict": 1, "_secret": 2, "args": 3}
    rebuilt = protocol.error_from_dict(data)
    assert rebuilt.to_dict()["message"] == "m" and not hasattr(rebuilt, "_secret")


def test_a_client_that_never_imported_the_raising_module_still_rebuilds_the_type():
    # ``nvwb open`` does not load the container builder, yet a failed build must come back as
    # ``BuildFailed`` with its log tail. A fresh interpreter rebuilds every class from its dict.
    dicts = [_as_json(_build(cls, optional=True)) for cls in ERROR_CLASSES]
    script = (
        "import json, sys\n"
        "from workbench.service import protocol\n"
        "for data in json.load(sys.stdin):\n"
        "    exc = protocol.error_from_dict(data)\n"
        "    print(type(exc).__module__ + '.' + type(exc).__qualname__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(dicts),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [f"{cls.__module__}.{cls.__qualname__}" for cls in ERROR_CLASSES]

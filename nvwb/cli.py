"""The ``nvwb`` console script: the built-in kinds of context, then the core's CLI."""

from __future__ import annotations

from contexts import register_builtin


def run() -> None:
    register_builtin()
    from workbench.cli.main import run as main_run

    main_run()

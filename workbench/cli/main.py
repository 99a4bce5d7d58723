"""``nvwb``'s entry point and its one error funnel from exceptions to exit codes.

``main(argv, env)`` runs in-process (tests call it directly with their own env and streams);
``run()`` is the console script.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result, render
from workbench.errors import WorkbenchError

INTERNAL_ERROR = 70
Handler = Callable[[Invocation], Result]


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    cwd: Path | None = None,
) -> int:
    from workbench.cli.parser import _HelpShown, parse

    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    fmt = _early_format(argv)
    debug = "--debug" in argv
    try:
        try:
            args = parse(argv)
        except _HelpShown as shown:
            return shown.status
        fmt = args.output
        if args.debug:
            logging.basicConfig(
                level=logging.DEBUG,
                stream=err,
                format="%(asctime)s %(name)s %(levelname)s %(message)s",
            )
        if not getattr(args, "handler", None):
            from workbench.errors import UsageError

            raise UsageError("no command given", hint="see 'nvwb --help'")
        from workbench.paths import Paths

        # Workbench's own folders are the user's alone; an earlier version's loose modes are
        # tightened here (one stat per folder when nothing is wrong).
        Paths.from_env(env).secure()
        inv = Invocation(
            args=args,
            env=env,
            stdin=stdin or sys.stdin,
            stdout=out,
            stderr=err,
            cwd=cwd or Path.cwd(),
        )
        result = _load(args.handler)(inv)
        render(result, fmt, out)
        return result.exit_code
    except WorkbenchError as exc:
        return _report(exc, fmt, err, out, debug)
    except KeyboardInterrupt:
        err.write("nvwb: interrupted\n")
        return 130
    except Exception as exc:  # the funnel's last resort: never a bare traceback by default
        if debug:
            raise
        if fmt in ("json", "jsonl"):
            payload = {
                "code": "internal",
                "message": f"{type(exc).__name__}: {exc}",
                "exit_code": INTERNAL_ERROR,
            }
            out.write(json.dumps({"error": payload}) + "\n")
        err.write(
            f"nvwb: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback)\n"
        )
        return INTERNAL_ERROR


def _load(spec: str) -> Handler:
    module, _, name = spec.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def _early_format(argv: Sequence[str]) -> str:
    """The output format even when parsing fails, so errors come out as JSON when asked."""
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
        if arg.startswith("-o") and len(arg) > 2:
            return arg[2:]
    return "table"


def _report(exc: WorkbenchError, fmt: str, err: TextIO, out: TextIO, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exception(exc, file=err)
    if fmt in ("json", "jsonl"):
        out.write(json.dumps({"error": exc.to_dict()}, ensure_ascii=False) + "\n")
    line = f"nvwb: error: {exc.message}"
    if exc.hint:
        line += f"\n  hint: {exc.hint}"
    err.write(line + "\n")
    return exc.exit_code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()

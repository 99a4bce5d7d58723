"""``nvwb start|stop``: an app of the project (AI Workbench's ``nvwb start jupyterlab``), or a
context by hand (``nvwb start context NAME``)."""

from __future__ import annotations

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import UsageError


def _context_target(inv: Invocation) -> bool:
    if inv.args.target != "context":
        if inv.args.name:
            raise UsageError(
                f"unexpected argument '{inv.args.name}'",
                hint=f"'nvwb {inv.args.verb} APP' takes one app name",
            )
        return False
    if not inv.args.name:
        raise UsageError(f"'{inv.args.verb} context' needs the context's name")
    return True


def start(inv: Invocation) -> Result:
    if _context_target(inv):
        from workbench.cli.commands.service import start_context

        return start_context(inv)
    from workbench.cli.commands.run import start_app

    inv.args.app = inv.args.target
    return start_app(inv)


def stop(inv: Invocation) -> Result:
    if _context_target(inv):
        from workbench.cli.commands.service import stop_context

        return stop_context(inv)
    from workbench.cli.commands.run import stop_app

    inv.args.app = inv.args.target
    return stop_app(inv)

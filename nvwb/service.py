"""``python -m nvwb.service``: the per-user service, as clients spawn it, with the built-in kinds
of context registered (``workbench.service.__main__`` is the service itself)."""

from __future__ import annotations

import sys

from contexts import register_builtin


def main() -> int:
    register_builtin()
    from workbench.service.__main__ import main as service_main

    return service_main()


if __name__ == "__main__":
    sys.exit(main())

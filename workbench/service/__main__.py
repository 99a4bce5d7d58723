"""``python -m workbench.service``: the service process itself. Clients spawn ``nvwb.service``,
which registers the built-in kinds of context first; run directly, the kinds come from the
``workbench.context_kinds`` entry points.

It logs to ``service.log`` in the state dir (it has no terminal; the file is 0600, the state dir
0700) and exits quietly, status 0, when another service already holds this user's lock.
"""

from __future__ import annotations

import logging
import os
import sys

from workbench.osproc import on_shutdown_signals
from workbench.paths import Paths, open_private, private_dir
from workbench.service.protocol import AlreadyRunning
from workbench.service.server import Server

LOG_NAME = "service.log"


def main() -> int:
    env = dict(os.environ)
    paths = Paths.from_env(env)
    paths.secure()
    private_dir(paths.state_dir)
    log_file = paths.state_dir / LOG_NAME
    with open_private(log_file, append=True):
        pass  # created (or tightened) 0600 before the handler appends to it
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s"
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if env.get("NVWB_SERVICE_DEBUG") else logging.INFO)

    server = Server(paths, env)

    def on_signal(signum: int) -> None:
        logging.getLogger(__name__).info("signal %s: shutting down", signum)
        server.request_shutdown()

    on_shutdown_signals(on_signal)
    try:
        server.serve_forever()
    except AlreadyRunning as exc:
        logging.getLogger(__name__).info("%s; exiting", exc)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

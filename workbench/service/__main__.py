"""``python -m workbench.service``: the service process itself. Clients spawn ``nvwb.service``,
which registers the built-in kinds of context first; run directly, the kinds come from the
``workbench.context_kinds`` entry points.

It logs to ``service.log`` in the state dir (it has no terminal) and exits quietly, status 0,
when another service already holds this user's lock.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from workbench.paths import Paths
from workbench.service.protocol import AlreadyRunning
from workbench.service.server import Server

LOG_NAME = "service.log"


def main() -> int:
    env = dict(os.environ)
    paths = Paths.from_env(env)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(paths.state_dir / LOG_NAME, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s"
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if env.get("NVWB_SERVICE_DEBUG") else logging.INFO)

    server = Server(paths, env)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: shutting down", signum)
        server.request_shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.serve_forever()
    except AlreadyRunning as exc:
        logging.getLogger(__name__).info("%s; exiting", exc)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

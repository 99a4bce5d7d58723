"""A live sync session's knobs and vocabulary: its options, its states, its event callback.

Why this exists: they are shared by the session (``workbench.sync.session``, which re-exports
them), its loop's queue and what drives a session (the service, tests, benchmarks), which need
them without the session's machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EventCallback = Callable[[str, dict[str, Any]], None]

STATES = ("starting", "scanning", "syncing", "watching", "paused", "halted", "disconnected",
          "stopped")  # fmt: skip


@dataclass(frozen=True)
class SessionOptions:
    debounce: float = 0.015  # quiet time that closes a batch of changes
    max_batch_wait: float = 0.25  # a steady stream of changes still syncs this often
    full_rescan_interval: float = 600.0  # a full scan now and then, in case a watcher missed
    retry_initial: float = 0.5
    retry_max: float = 10.0
    prefer_openssh: bool = True
    remote_poll: bool = False  # make the agent poll (a remote without inotify)
    local_watch: bool = True
